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
var (
	avx512Kernel = &kernel{name: "avx512", mr: 14, nr: 32, ms: 16, kc: 256, nc: 512, fn: kernelAVX512x14x32, edge: kernelAVX512x14x16, edgeN: 16, vecPack: true}
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

//go:noescape
func kernelAVX512x14x32(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// kernelAVX512x14x16 computes the left 16 columns of a 14x32 tile from the
// same packed panels; see kernel.edge.
//
//go:noescape
func kernelAVX512x14x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernelAVX2x6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

func avx512Available() bool { return cpu.X86.HasAVX512F }
