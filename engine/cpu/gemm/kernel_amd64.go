package gemm

import "golang.org/x/sys/cpu"

// Blocking for Zen 4 (32 KB L1d, 1 MB L2 per core). The loop order keeps one
// A micro-panel (mr x kc) resident in L1 while B micro-panels stream from the
// kc x nc packed block held in L2:
//   - AVX-512 14x32: each k step of the packed A panel is padded to 16
//     floats, so packing writes whole aligned 64-byte lines and the kernel's
//     broadcasts never straddle lines; kc = 256 puts the A micro-panel at
//     16 KB, half of L1, leaving room for the streaming 32 KB B micro-panel
//     to pass through without evicting it; nc = 512 makes the B block 512 KB,
//     half of L2.
//   - AVX2 6x16: the A micro-panel is only 6 KB at kc = 256.
//
// On the development machine (AMD family 1Ah, two 512-bit FMA pipes, 48 KB
// L1d) the 14x32 kernel alone sustains about 96% of the zmm FMA peak, and kc
// from 192 to 512 with nc from 256 to 1024 moved the large engine shapes by
// less than the run-to-run noise (BenchmarkBlocking), so the Zen 4 sizing
// above is kept: it is the one that also fits the smaller L1.
var (
	avx512Kernel = &kernel{name: "avx512", mr: 14, nr: 32, ms: 16, kc: 256, nc: 512, fn: kernelAVX512x14x32, edge: kernelAVX512x14x16, edgeN: 16, vecPack: true, strided: kernelAVX512x14x32S}
	avx2Kernel   = &kernel{name: "avx2", mr: 6, nr: 16, ms: 6, kc: 256, nc: 512, fn: kernelAVX2x6x16}
)

// registerArchKernels adds the vector kernels this CPU (and OS) supports;
// x/sys/cpu also checks that the OS saves the wide registers.
func registerArchKernels() {
	if avx512Available() {
		registerKernel(avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		registerKernel(avx2Kernel)
	}
}

// kernelAVX512x14x32 is the main AVX-512 micro-kernel (see kernel.fn).
//
//go:noescape
func kernelAVX512x14x32(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// kernelAVX512x14x32S is kernelAVX512x14x32 with the k steps of A and B
// sa and sb bytes apart (see kernel.strided).
//
//go:noescape
func kernelAVX512x14x32S(kc int, a, b, c *float32, ldc int, alpha, beta float32, sa, sb int)

// kernelAVX512x14x16 computes the left 16 columns of a 14x32 tile from the
// same packed panels; see kernel.edge.
//
//go:noescape
func kernelAVX512x14x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// kernelAVX2x6x16 is the AVX2/FMA micro-kernel (see kernel.fn).
//
//go:noescape
func kernelAVX2x6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// avx512Available reports whether the AVX-512 kernels and packing routines
// (AVX512F instructions only) can run.
func avx512Available() bool { return cpu.X86.HasAVX512F }
