# CUDA kernels: `make kernels` compiles kernels/*.cu into kernels/trm.fatbin
# (cubins for sm_80 and sm_90 plus compute_90 PTX for newer GPUs), which
# the cuda-tagged build embeds with go:embed. Included by the top Makefile.
#
# Variables (override on the command line):
#   NVCC            the compiler (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc)
#   KERNEL_GENCODE  the targets; e.g. on an H100/H200 with a newer nvcc:
#                   make kernels KERNEL_GENCODE='-gencode=arch=compute_90a,code=sm_90a' KERNEL_FATBIN=/tmp/trm-sm90a.fatbin
#                   and run with TRM_CUDA_FATBIN=/tmp/trm-sm90a.fatbin
#   KERNEL_FATBIN   the output file (default kernels/trm.fatbin)

NVCC           ?= $(shell command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)
KERNEL_GENCODE ?= -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90
KERNEL_FATBIN  ?= kernels/trm.fatbin
KERNEL_SRCS    := $(wildcard kernels/*.cu) $(wildcard kernels/*.cuh)
# No -lineinfo: Debian's nvcc 11.8 ptxas segfaults on it for sm_90.
# --threads 0 compiles the targets in parallel.
KERNEL_FLAGS   ?= -O3 -std=c++14 --threads 0

.PHONY: kernels

kernels: $(KERNEL_FATBIN)

# The host compiler: nvcc 11.x rejects gcc 12+, which is Debian 12's
# default; use g++-11 where installed (Debian's toolkit pulls it in), else
# let nvcc try the default with -allow-unsupported-compiler (only device
# code is compiled here, so the host compiler merely preprocesses).
$(KERNEL_FATBIN): $(KERNEL_SRCS) kernels/kernels.mk
	@command -v $(NVCC) >/dev/null 2>&1 || { echo "make kernels: nvcc not found (install the CUDA toolkit, see .ci/cuda-build)"; exit 1; }
	@ver=$$($(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'); \
	major=$${ver%%.*}; ccbin=""; \
	if [ "$$major" -lt 12 ] 2>/dev/null; then \
	  if command -v g++-11 >/dev/null 2>&1; then ccbin="-ccbin g++-11"; else ccbin="-allow-unsupported-compiler"; fi; \
	fi; \
	echo "kernels: nvcc $$ver ($(NVCC)), host compiler flag: $${ccbin:-default}"; \
	echo "kernels: targets $(KERNEL_GENCODE)"; \
	$(NVCC) $$ccbin $(KERNEL_FLAGS) $(KERNEL_GENCODE) -fatbin -o $@.tmp kernels/all.cu && mv $@.tmp $@ && \
	echo "kernels: wrote $@ ($$(wc -c < $@) bytes)"

# `make cuda`: trm-train with the CUDA backend (--device cuda:N), kernels
# embedded. Needs the toolkit to build and a driver to run.
.PHONY: cuda
cuda: kernels
	$(GO) build -tags cuda -o $(BIN) ./cmd/trm-train
