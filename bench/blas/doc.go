// Package blas compares the engine's GEMM (engine/cpu/gemm, Go assembly)
// with OpenBLAS side by side on the engine's matrix shapes, in the same
// run and under the same load. The OpenBLAS binding needs cgo and Debian's
// libopenblas-dev, so it only builds with the openblas tag:
//
//	apt-get install -y libopenblas-dev
//	go test -tags openblas ./bench/blas/ -run '^$' -bench . -benchtime 5x
//
// Debian's OpenBLAS 0.3.21 predates AMD Zen 5 and picks its AVX2 kernels
// there (the benchmark logs the choice); OPENBLAS_CORETYPE=SkylakeX makes
// it use its AVX-512 ones, the fair comparison on such a CPU.
//
// Without the tag the package is empty and the engine needs no C library.
package blas
