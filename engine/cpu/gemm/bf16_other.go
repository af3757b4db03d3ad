//go:build !amd64

package gemm

// No bf16 kernel exists on this architecture: SgemmBF16 panics and
// BF16Supported reports false.
var bf16Kernel *kernel

func bf16Available() bool { return false }

func dpbf16ps(out *[32]float32, acc *[16]float32, a, b *[16]uint32) {
	panic("gemm: no bf16 kernel on this architecture")
}

func packPairsAVX512(dst, src *float32, ld, cols, width, kc, ds int) {
	panic("gemm: no bf16 kernel on this architecture")
}

func cvtRowsPairsAVX512(dst, src *float32, ld, rows, kc, ds int) {
	panic("gemm: no bf16 kernel on this architecture")
}

func packPairsTiles(dst, src *float32, ld, kc, tiles, srcAdv, dstAdv, vecs, mask, step int) {
	panic("gemm: no bf16 kernel on this architecture")
}

var bf16FMAKernel *kernel

func roundSwapPairsAVX512(p *float32, rows, w int) {
	panic("gemm: no bf16 kernel on this architecture")
}

func packCopyTilesRS(dst, src *float32, ld, kc, tiles, srcAdv, dstAdv, vecs, mask, step int) {
	panic("gemm: no bf16 kernel on this architecture")
}
