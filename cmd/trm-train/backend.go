package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// cudaBackend is set by the cuda build (backend_cuda.go); nil otherwise.
var cudaBackend func(device int) (engine.Backend, error)

// openBackend resolves a --device value: "cpu", "cuda:N", or several GPUs
// ("cuda", "cuda:0,1") for data parallelism (see parallel.go).
func openBackend(spec string, threads int) (engine.Backend, error) {
	switch {
	case spec == "" || spec == "cpu":
		if _, err := wantsParallel("cpu"); err != nil {
			return nil, err
		}
		// TRM_CPU_GEMM=bf16 selects bf16 GEMM operands (AVX512_BF16 only)
		// and bf16 activations, TRM_CPU_ACTIVATIONS=fp32 operands only.
		return cpu.NewFromEnv(threads)
	case spec == "cuda" || strings.HasPrefix(spec, "cuda:"):
		if cudaBackend == nil {
			return nil, fmt.Errorf("--device %s: this trm-train was built without CUDA; build it with `make cuda` (go build -tags cuda) on a machine with the CUDA toolkit, or use --device cpu", spec)
		}
		devs := strings.TrimPrefix(strings.TrimPrefix(spec, "cuda"), ":")
		if devs == "" {
			devs = "0"
		}
		par, err := wantsParallel(spec)
		if err != nil {
			return nil, fmt.Errorf("--device %s: %w", spec, err)
		}
		if par && openParallel != nil {
			return openParallel(spec)
		}
		first, _, _ := strings.Cut(devs, ",")
		n, err := strconv.Atoi(first)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--device %s: %q is not a device index", spec, first)
		}
		return cudaBackend(n)
	}
	return nil, fmt.Errorf("--device %q: want cpu or cuda:N", spec)
}
