package gemm

// The peak loops exported for package fmapeak (bench/fmapeak), which
// reports them to the benchmarks outside this package: one copy of each
// loop backs both every %peak figure and the bf16 kernel choice
// (chooseBF16Kernel), so the two always time the same instructions.

// FMAPeak runs iters iterations of the fp32 peak loop: 12 independent
// zmm VFMADD231PS, FMAPeakFlopsPerIter flops each. Only where
// HaveFMAPeak reports true.
func FMAPeak(iters int) { fmaPeakZMM(iters) }

// FMAPeakFlopsPerIter is the number of flops one FMAPeak iteration does
// (0 where there is no loop).
const FMAPeakFlopsPerIter = fmaPeakFlopsPerIter

// HaveFMAPeak reports whether FMAPeak can run here (AVX-512).
func HaveFMAPeak() bool { return haveFMAPeak() }

// BF16PeakChains is the number of independent VDPBF16PS accumulators of
// the bf16 peak loop, each of 16 lanes.
const BF16PeakChains = bf16PeakChains

// BF16Peak runs iters iterations of the bf16 peak loop: BF16PeakChains
// independent zmm VDPBF16PS, every one adding the dot products of the
// bf16 pairs in a and b to its accumulator, BF16PeakFlopsPerIter flops in
// all; it stores the accumulators (zero at the start) to out, so that a
// test can check the loop computes what VDPBF16PS computes. Only where
// HaveBF16Peak reports true.
func BF16Peak(iters int, a, b *[16]uint32, out *[BF16PeakChains * 16]float32) {
	bf16PeakZMM(iters, a, b, out)
}

// BF16PeakFlopsPerIter is the number of flops one BF16Peak iteration
// does, two per bf16 product (0 where there is no loop).
const BF16PeakFlopsPerIter = bf16PeakFlopsPerIter

// HaveBF16Peak reports whether BF16Peak can run here (AVX512_BF16).
func HaveBF16Peak() bool { return haveBF16Peak() }
