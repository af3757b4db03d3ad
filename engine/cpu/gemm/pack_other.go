//go:build !amd64

package gemm

// Without the AVX-512 packing routines every kernel packs with the Go loops;
// no kernel on this architecture sets vecPack, so these are never reached.
func vecPackUsable() bool { return false }

func packTransAVX512(dst, src *float32, ld, rows, width, kc, dstStride, rs int) {
	panic("gemm: no vector packing on this architecture")
}

func packCopyAVX512(dst, src *float32, ld, cols, width, kc, dstStride int) {
	panic("gemm: no vector packing on this architecture")
}

func packCopyTiles(dst, src *float32, ld, kc, tiles, srcAdv, dstAdv, vecs, mask, step int) {
	panic("gemm: no vector packing on this architecture")
}
