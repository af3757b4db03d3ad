//go:build !amd64

package gemm

// roundTileAVX512 does not exist here: vecPackUsable reports false, so
// roundTile takes its Go loop.
func roundTileAVX512(d *uint16, ldd int, t *float32, ldt, rows, cols int, beta float32) {
	panic("gemm: no AVX-512 rounding on this architecture")
}
