package gemm

// widenRowsAVX512 is widenRows' vector path: dst[i*ds+j] = the float32 of
// src[i*ld+j] (a NaN quieted) for i < rows (rows >= 1) and j < cols
// (cols >= 1), zero up to the next multiple of 16 of cols; no element of
// src past cols in a row is read.
//
//go:noescape
func widenRowsAVX512(dst *float32, src *uint16, ld, rows, cols, ds int)
