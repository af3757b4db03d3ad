package gemm

// roundTileAVX512 is roundTile's vector path (rows, cols >= 1): the full
// vectors of 16 of each row, then the cols%16 left over through a mask,
// which also keeps the loads and stores from touching the elements past
// cols.
//
//go:noescape
func roundTileAVX512(d *uint16, ldd int, t *float32, ldt, rows, cols int, beta float32)
