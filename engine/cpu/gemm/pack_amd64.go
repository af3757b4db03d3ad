package gemm

// packTransAVX512 writes dst[q*dstStride+i] = src[i*ld+q] for q < kc and
// i < rows, and zero for rows <= i < width (1 <= rows <= width <= 16).
// src must hold (rows-1)*ld+kc elements; nothing past them is read. With
// rs != 0 the values are rounded to bf16 values and the rows 2q and 2q+1
// of dst exchanged, an odd last row in place: the format of the fp32-FMA
// bf16 kernels (see roundSwapRows), in the same pass.
//
//go:noescape
func packTransAVX512(dst, src *float32, ld, rows, width, kc, dstStride, rs int)

// packCopyAVX512 writes dst[q*dstStride+j] = src[q*ld+j] for q < kc and
// j < cols, and zero for cols <= j < width (cols <= width <= 16).
//
//go:noescape
func packCopyAVX512(dst, src *float32, ld, cols, width, kc, dstStride int)

// vecPackUsable reports whether the AVX-512 packing routines can run here.
func vecPackUsable() bool { return avx512Available() }

// packCopyTiles packs tiles adjacent full micro-panels of the contiguous
// case row by row: for q < kc, t < tiles and v < vecs (1 or 2), the 16
// floats at src[q*ld+t*srcAdv+16v] (lanes outside mask read as zero) go to
// dst[t*dstAdv+q*step/4+16v]. Every lane in mask must be readable.
//
//go:noescape
func packCopyTiles(dst, src *float32, ld, kc, tiles, srcAdv, dstAdv, vecs, mask, step int)
