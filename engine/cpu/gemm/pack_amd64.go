package gemm

// packGatherAVX512 writes dst[q*dstStride+i] = src[i*ld+q] for q < kc and
// i < rows, and zero for rows <= i < width (rows <= width <= 16).
// src must hold (rows-1)*ld+kc elements when rows > 0; i*ld must fit in an
// int32 (the gather's index width), which vecPackOK checks.
//
//go:noescape
func packGatherAVX512(dst, src *float32, ld, rows, width, kc, dstStride int)

// packCopyAVX512 writes dst[q*dstStride+j] = src[q*ld+j] for q < kc and
// j < cols, and zero for cols <= j < width (cols <= width <= 16).
//
//go:noescape
func packCopyAVX512(dst, src *float32, ld, cols, width, kc, dstStride int)

const haveVecPack = true
