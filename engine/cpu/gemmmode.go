package cpu

import (
	"fmt"
	"os"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// GemmMode selects the precision of the backend's matrix products, like
// the CUDA backend's mode of the same name.
type GemmMode int

// GEMM modes.
const (
	// GemmFP32 is true fp32 (package gemm's Sgemm): golden parity with the
	// PyTorch reference within float32 tolerances. The default.
	GemmFP32 GemmMode = iota
	// GemmBF16 rounds both operands of every product to bf16 and
	// accumulates in fp32 (gemm.SgemmBF16, VDPBF16PS): the reference's
	// bf16 training precision and the CUDA backend's default, about twice
	// the fp32 GEMM's arithmetic rate. It needs AVX512_BF16.
	GemmBF16
)

func (m GemmMode) String() string {
	switch m {
	case GemmFP32:
		return "fp32"
	case GemmBF16:
		return "bf16"
	}
	return fmt.Sprintf("GemmMode(%d)", int(m))
}

// GemmEnv is the environment variable NewFromEnv reads the GEMM mode from.
const GemmEnv = "TRM_CPU_GEMM"

// ParseGemmMode parses "fp32" or "bf16" (and "" as the default, fp32).
func ParseGemmMode(s string) (GemmMode, error) {
	switch s {
	case "", "fp32":
		return GemmFP32, nil
	case "bf16":
		return GemmBF16, nil
	}
	return 0, fmt.Errorf("%q: want fp32 or bf16", s)
}

// Options configure a Backend.
type Options struct {
	// Threads is the number of worker goroutines (0: all cores).
	Threads int
	// Gemm is the GEMM precision (default fp32).
	Gemm GemmMode
	// Activations is how a model on the backend stores its activations
	// between ops (engine.BF16Activations): engine.F32 (the zero value)
	// or engine.BF16, as the reference's bf16 training keeps them. BF16
	// needs the bf16 GEMM mode: its products round their operands to
	// bf16 anyway, and fp32 GEMMs over bf16 activations would be neither
	// precision.
	Activations engine.DType
}

// bf16Supported reports whether the bf16 GEMM can run here; a variable so
// that a test can play a CPU without AVX512_BF16.
var bf16Supported = gemm.BF16Supported

// NewWithOptions returns a CPU backend. Asking for bf16 GEMMs on a CPU
// without AVX512_BF16 is an error: there is no silent fallback to fp32,
// which would train at a different precision than asked.
func NewWithOptions(opt Options) (*Backend, error) {
	switch opt.Gemm {
	case GemmFP32:
	case GemmBF16:
		if !bf16Supported() {
			return nil, fmt.Errorf("cpu backend: bf16 GEMMs need a CPU with AVX512_BF16 (VDPBF16PS), and this one lacks it; use fp32")
		}
	default:
		return nil, fmt.Errorf("cpu backend: unknown GEMM mode %v", opt.Gemm)
	}
	switch opt.Activations {
	case engine.F32:
	case engine.BF16:
		if opt.Gemm != GemmBF16 {
			return nil, fmt.Errorf("cpu backend: bf16 activations need bf16 GEMMs (%s=bf16)", GemmEnv)
		}
	default:
		return nil, fmt.Errorf("cpu backend: activations can be stored in f32 or bf16, not %v", opt.Activations)
	}
	b := New(opt.Threads)
	b.gemm, b.act = opt.Gemm, opt.Activations
	return b, nil
}

// ActivationsEnv is the environment variable NewFromEnv reads the
// activation storage from.
const ActivationsEnv = "TRM_CPU_ACTIVATIONS"

// ParseActivations parses "fp32" or "bf16" into the element type of
// Options.Activations; "" is the default for GEMM mode g: bf16 with bf16
// GEMMs (the reference's bf16 training keeps its activations in bf16),
// fp32 otherwise.
func ParseActivations(s string, g GemmMode) (engine.DType, error) {
	switch s {
	case "":
		if g == GemmBF16 {
			return engine.BF16, nil
		}
		return engine.F32, nil
	case "fp32":
		return engine.F32, nil
	case "bf16":
		return engine.BF16, nil
	}
	return 0, fmt.Errorf("%q: want fp32 or bf16", s)
}

// NewFromEnv returns a backend with threads workers (0: all cores), the
// GEMM mode named by TRM_CPU_GEMM=fp32|bf16 (unset or empty: fp32) and
// the activation storage named by TRM_CPU_ACTIVATIONS=fp32|bf16 (unset
// or empty: bf16 with bf16 GEMMs, fp32 otherwise). An invalid value, bf16
// where the CPU lacks AVX512_BF16, or bf16 activations without bf16 GEMMs
// is an error.
func NewFromEnv(threads int) (*Backend, error) {
	mode, err := ParseGemmMode(os.Getenv(GemmEnv))
	if err != nil {
		return nil, fmt.Errorf("%s=%w", GemmEnv, err)
	}
	act, err := ParseActivations(os.Getenv(ActivationsEnv), mode)
	if err != nil {
		return nil, fmt.Errorf("%s=%w", ActivationsEnv, err)
	}
	b, err := NewWithOptions(Options{Threads: threads, Gemm: mode, Activations: act})
	if err != nil {
		return nil, fmt.Errorf("%s=%s %s=%s: %w", GemmEnv, os.Getenv(GemmEnv), ActivationsEnv, os.Getenv(ActivationsEnv), err)
	}
	return b, nil
}

// GemmMode returns the backend's GEMM precision.
func (b *Backend) GemmMode() GemmMode { return b.gemm }
