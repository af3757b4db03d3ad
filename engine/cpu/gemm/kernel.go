package gemm

import "sync/atomic"

// kernel is one micro-kernel variant together with the blocking tuned for it.
//
// fn computes acc = sum over q < kc of a[q*ms+i] * b[q*nr+j] for an mr x nr
// tile, then stores t = alpha*acc into c (row stride ldc) when beta == 0, or
// c = beta*c + t otherwise, rounding after each of those three operations.
// a and b are packed micro-panels (see packA, packB).
type kernel struct {
	name   string
	mr, nr int
	ms     int // packed A floats per k step: mr, or more to keep each step aligned
	kc     int // K block depth: the mr*kc A micro-panel must stay in L1 during a sweep
	nc     int // N block width: the kc*nc packed B block should fit in L2
	fn     func(kc int, a, b, c *float32, ldc int, alpha, beta float32)

	// edge, when set, computes only the first edgeN columns of a tile with
	// the same packed panels and contract; it is used for the last panel of
	// C when no more than edgeN of its columns are valid (n = 97 leaves one
	// column in a 32-wide panel).
	edge  func(kc int, a, b, c *float32, ldc int, alpha, beta float32)
	edgeN int

	// vecPack selects the AVX-512 packing routines (mr, nr multiples of 16
	// or at most 16). Kernels that may run without AVX-512 leave it false
	// and use the Go loops, which their tests therefore keep covering.
	vecPack bool

	// strided, when set, is fn with the k steps of the A and B panels sa
	// and sb bytes apart (fn has them ms*4 and nr*4 apart), computing
	// exactly what fn computes; the driver uses it to read panels that
	// already exist in the caller's matrices in place (see plan.direct).
	strided func(kc int, a, b, c *float32, ldc int, alpha, beta float32, sa, sb int)

	// bf16 marks a kernel whose packed panels hold bf16 pairs, two k steps
	// per 32-bit slot (see bf16.go); packATiles and packBPanels pack for
	// it, and its fn and edge take kc in k steps.
	bf16 bool

	// bf16FMA marks a kernel that computes the bf16 kernel's results with
	// fp32 FMAs (see bf16fma.go): its panels are packed in the fp32
	// layout with every value rounded to a bf16 value and the k steps
	// exchanged in pairs (roundSwapRows), by the packing pass itself
	// where a vector routine packs whole panels.
	bf16FMA bool
}

// kernels lists the variants usable on this machine, fastest first; the
// portable Go kernel is always last.
var kernels []*kernel

var active atomic.Pointer[kernel]

func activeKernel() *kernel { return active.Load() }

func registerKernel(k *kernel) {
	kernels = append(kernels, k)
}

func init() {
	registerArchKernels()
	registerKernel(goKernel)
	active.Store(kernels[0])
}

// useKernel switches to the named variant (for tests and benchmarks) and
// returns the previous one; it reports false if the variant is unavailable.
func useKernel(name string) (prev *kernel, ok bool) {
	for _, k := range kernels {
		if k.name == name {
			return active.Swap(k), true
		}
	}
	return active.Load(), false
}
