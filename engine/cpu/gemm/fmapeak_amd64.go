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

// bf16PeakChains is the number of independent VDPBF16PS accumulators of
// the bf16PeakZMM loop.
const bf16PeakChains = 24

// bf16PeakZMM runs iters iterations of 24 independent VDPBF16PS on zmm
// registers, every one adding the dot products of the bf16 pairs in a and
// b to its accumulator, and stores the 24 accumulators (zero at the start)
// to out. It is the bf16 counterpart of fmaPeakZMM: the bf16 peak the
// bf16 GEMM's benchmarks report against is the higher of the two loops'
// rates (BF16GEMMPeak). Only where haveBF16Peak reports true.
//
//go:noescape
func bf16PeakZMM(iters int, a, b *[16]uint32, out *[bf16PeakChains * 16]float32)

// bf16PeakFlopsPerIter is the number of flops one bf16PeakZMM iteration
// does: 24 instructions of 16 lanes, two multiply-adds per lane.
const bf16PeakFlopsPerIter = bf16PeakChains * 16 * 2 * 2

// haveBF16Peak reports whether bf16PeakZMM can run here.
func haveBF16Peak() bool { return bf16Available() }
