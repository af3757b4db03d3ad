//go:build openblas && cgo

package blas

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import "unsafe"

// CoreName is the kernel family OpenBLAS picked for this CPU (a CPU newer
// than the library may fall back to AVX2 kernels; OPENBLAS_CORETYPE
// overrides the choice, e.g. SkylakeX for its AVX-512 kernels).
func CoreName() string { return C.GoString(C.openblas_get_corename()) }

// SetThreads sets the number of OpenBLAS threads.
func SetThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// Sgemm is cblas_sgemm on row-major float32 matrices with the argument
// order of gemm.Sgemm: C = alpha op(A) op(B) + beta C, op(A) m x k, op(B)
// k x n. The slices must cover the matrices their leading dimensions
// describe.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	ta, tb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, C.enum_CBLAS_TRANSPOSE(ta), C.enum_CBLAS_TRANSPOSE(tb), C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda), (*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// SgemmStridedBatched runs Sgemm over batch matrices spaced by the given
// strides, one call each (this OpenBLAS has no batched entry point).
func SgemmStridedBatched(transA, transB bool, m, n, k int, alpha float32, a []float32, lda, strideA int, b []float32, ldb, strideB int, beta float32, c []float32, ldc, strideC int, batch int) {
	for i := range batch {
		Sgemm(transA, transB, m, n, k, alpha, a[i*strideA:], lda, b[i*strideB:], ldb, beta, c[i*strideC:], ldc)
	}
}
