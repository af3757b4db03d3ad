//go:build !amd64

package gemm

// widenRowsAVX512 does not exist here: no kernel on this architecture has
// vecPack set, so widenRows takes its Go loop.
func widenRowsAVX512(dst *float32, src *uint16, ld, rows, cols, ds int) {
	panic("gemm: no AVX-512 packing on this architecture")
}
