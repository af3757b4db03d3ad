# trm: build, test, benchmark and lint. `make` builds bin/trm-train.
GO      ?= go
BIN     := bin/trm-train
PKGS    := ./...
# Stamped into the binary (trm-train version); a build without .git (a
# Docker context) passes them: make build VERSION=v1.2.3 REVISION=abc123.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.revision=$(REVISION)

.PHONY: all build test bench lint fmt clean

all: build

# CUDA kernels (make kernels): see kernels/kernels.mk.
include kernels/kernels.mk
# The CPU stand-in for the NVIDIA libraries (make standin): cuda/standin/standin.mk.
include cuda/standin/standin.mk

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/trm-train

# The test command README.md promises (CI runs exactly this).
test:
	$(GO) test $(PKGS)

# The demo trained on seeds 1, 2, 3 in fp32, with bf16 GEMMs, and with bf16
# GEMMs and activations: each bf16 mean held-out exact accuracy within one
# point of fp32's (nine trainings, minutes; the test skips on a CPU without
# AVX512_BF16). bench/demoseeds prints the table.
.PHONY: test-demo-bf16
test-demo-bf16:
	TRM_DEMO_AGREEMENT=1 $(GO) test -count=1 -timeout 30m -v -run '^TestBF16AgreesWithFP32$$' ./bench/demoseeds/

# One training step on the paper's shapes, then GEMM on the engine's shapes
# next to the measured FMA peak.
bench:
	$(GO) test ./bench/ -run '^$$' -bench Step -benchtime 3x
	$(GO) test ./engine/cpu/gemm/ -run '^$$' -bench . -benchtime 2s

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@# The pure-Go paths (every assembly routine has one) must keep building
	@# for CPUs without AVX: vet them as arm64 sees the tree.
	GOARCH=arm64 $(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
