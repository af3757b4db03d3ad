// Package blas compares the engine's GEMM (engine/cpu/gemm, Go assembly)
// with OpenBLAS side by side on the engine's matrix shapes, in the same
// run and under the same load. The OpenBLAS binding needs cgo and Debian's
// libopenblas-dev, so it only builds with the openblas tag:
//
//	apt-get install -y libopenblas-dev
//	go test -tags openblas ./bench/blas/ -run '^$' -bench . -benchtime 5x
//
// Debian's OpenBLAS 0.3.21 predates AMD Zen 5 and picks its AVX2 kernels
// there; the test binary sets OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs
// (its AVX-512 kernels, the fair comparison) and a short thread spin
// timeout (see TestMain) unless the environment already sets them, and the
// benchmark logs the kernels used.
//
// Without the tag the package is empty and the engine needs no C library.
package blas
