//go:build !amd64

package cpu

// Off amd64 the attention kernels run in Go only.

func archQKTile(s []float32, lds int, ap []float32, hd int, bt []float32, ldb, n, groups int, scale float32) bool {
	return false
}

func archAxpyRows(o []float32, ldo int, c []float32, rs, ks int, x []float32, ldx, n, w, groups int) int {
	return 0
}

func archPack4(blk, src []float32, ld, hd int) int { return 0 }

func prefetch(x []float32, ld, rows, n int) {}

func prefetch16(x []uint16, ld, rows, n int) {}
