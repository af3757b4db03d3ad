package gemm

import "golang.org/x/sys/cpu"

// bf16Kernel is the AVX512_BF16 micro-kernel: the 14x32 tile of the fp32
// AVX-512 kernel with VDPBF16PS in place of VFMADD231PS, so each
// instruction does two k steps. kc counts k steps: at 512 the A
// micro-panel holds 256 pair steps of 64 bytes, 16 KB, the L1 share the
// fp32 kernel gets at kc = 256, and the touched part of the B block is
// 512 KB at nc = 512, as for fp32 (see kernel_amd64.go).
var bf16Kernel = &kernel{name: "bf16", mr: 14, nr: 32, ms: 16, kc: 512, nc: 512,
	fn: kernelBF16x14x32, edge: kernelBF16x14x16, edgeN: 16, vecPack: true, bf16: true}

// bf16Available reports whether the CPU (and OS: x/sys/cpu checks that
// the zmm state is saved) can run the bf16 kernel and its packing:
// AVX512_BF16 for VDPBF16PS, AVX512F for everything else.
func bf16Available() bool {
	return cpu.X86.HasAVX512F && cpu.X86.HasAVX512BF16
}

// kernelBF16x14x32 is the bf16 micro-kernel (see kernel.fn and bf16.go).
//
//go:noescape
func kernelBF16x14x32(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// kernelBF16x14x16 computes the left 16 columns of a bf16 14x32 tile; see
// kernel.edge.
//
//go:noescape
func kernelBF16x14x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// dpbf16ps runs one VDPBF16PS on acc, a and b twice, with two register
// assignments, into out[0:16] and out[16:32] (for TestDPBF16Model).
//
//go:noescape
func dpbf16ps(out *[32]float32, acc *[16]float32, a, b *[16]uint32)

// packPairsAVX512 writes dst[p*ds+j] = pairBF16(src[2p*ld+j],
// src[(2p+1)*ld+j]) for p < (kc+1)/2 and j < cols (the odd element 0 when
// 2p+1 == kc), and 0 for cols <= j < width (cols <= width <= 16).
//
//go:noescape
func packPairsAVX512(dst, src *float32, ld, cols, width, kc, ds int)

// cvtRowsPairsAVX512 writes dst[i*ds+p] = pairBF16(src[i*ld+2p],
// src[i*ld+2p+1]) for i < rows (rows >= 1) and p < (kc+1)/2, the odd
// element 0 when 2p+1 == kc.
//
//go:noescape
func cvtRowsPairsAVX512(dst, src *float32, ld, rows, kc, ds int)

// packPairsTiles packs tiles adjacent full micro-panels of the contiguous
// case in bf16 pairs, pair step by pair step across the panels: for
// p < (kc+1)/2, t < tiles and v < vecs (1 or 2), the 16 lanes (those
// outside mask read as zero) at src[2p*ld+t*srcAdv+16v], paired with the
// row below (zero past kc), go to dst[t*dstAdv+p*step/4+16v].
//
//go:noescape
func packPairsTiles(dst, src *float32, ld, kc, tiles, srcAdv, dstAdv, vecs, mask, step int)

// bf16FMAKernel computes bf16Kernel's results with fp32 FMAs (see
// bf16fma.go): the same tile, the same kc (so the same K blocks), panels
// in the fp32 layout. With kc = 512 a packed B block of nc = 256 columns
// is 512 KB, the fp32 kernel's L2 share; single-threaded on the engine's
// large shapes nc = 256 ran 2% to 12% faster than 512 and 1024 in one
// alternating sweep (the N blocking does not change results).
var bf16FMAKernel = &kernel{name: "bf16fma", mr: 14, nr: 32, ms: 16, kc: 512, nc: 256,
	fn: kernelBF16FMA14x32, edge: kernelBF16FMA14x16, edgeN: 16, vecPack: true, bf16FMA: true}

// kernelBF16FMA14x32 is the fp32-FMA bf16 micro-kernel (see kernel.fn and
// bf16fma.go).
//
//go:noescape
func kernelBF16FMA14x32(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// kernelBF16FMA14x16 computes the left 16 columns of a kernelBF16FMA14x32
// tile; see kernel.edge.
//
//go:noescape
func kernelBF16FMA14x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// roundSwapPairsAVX512 is roundSwapRows for a whole panel (rows rows of
// w = 16 or 32 floats, ds = width = w).
//
//go:noescape
func roundSwapPairsAVX512(p *float32, rows, w int)

// packCopyTilesRS is packCopyTiles in bf16FMAKernel's format: every value
// rounded to a bf16 value and the packed rows 2q and 2q+1 exchanged, an
// odd last row (odd kc) in place (see roundSwapRows), in the same pass.
//
//go:noescape
func packCopyTilesRS(dst, src *float32, ld, kc, tiles, srcAdv, dstAdv, vecs, mask, step int)
