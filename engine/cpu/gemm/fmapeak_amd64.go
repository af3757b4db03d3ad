package gemm

// fmaPeakZMM runs iters iterations of 12 independent zmm FMAs (384 flops
// each). The benchmarks use it to measure this machine's FMA peak in the
// same run as the GEMM numbers, so efficiency is reported against what the
// cores deliver right now rather than a datasheet figure.
//
//go:noescape
func fmaPeakZMM(iters int)

// fmaPeakFlopsPerIter is the number of flops one fmaPeakZMM iteration does.
const fmaPeakFlopsPerIter = 12 * 16 * 2

// haveFMAPeak reports whether fmaPeakZMM can run here.
func haveFMAPeak() bool { return avx512Available() }
