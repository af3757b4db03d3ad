// Package fmapeak measures the machine's float32 FMA peak with a loop of
// independent AVX-512 FMAs, and its VDPBF16PS peak with a loop of
// independent VDPBF16PS (AVX512_BF16), so that benchmarks can report
// efficiency against what the cores deliver in the same run (under the
// same load) rather than a datasheet figure. VDPBF16PS does two
// multiply-adds per lane, but a core need not issue it at the VFMADD231PS
// rate (some issue it at half that rate), so its peak is measured, not
// derived from the fp32 one. The loops and the measurement are
// engine/cpu/gemm's (FMAPeak, BF16Peak, MeasurePeak), the ones its bf16
// kernel choice and its own benchmarks time, so every figure measured
// here is of the same instructions, measured the same way.
//
// A peak is the throughput of all the threads running the loop at the
// same time (gemm.PeakRate): two hardware threads of one core report one
// core's peak, two cores two, whatever the threads would reach one at a
// time.
//
// The bf16 peak, against which a bf16 GEMM or training step is reported,
// is the higher of the FMA and VDPBF16PS peaks measured in the same run
// (BF16): the bf16 GEMM computes bf16 x bf16 products accumulated in fp32
// with the same bits on either instruction (engine/cpu/gemm/bf16fma.go),
// so the best rate at which the core can do its arithmetic is whichever
// instruction is faster there.
package fmapeak

import (
	"time"

	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// FMA measures the FMA loop's concurrent throughput on threads threads
// for about d; the zero PeakRate where the CPU has no AVX-512.
func FMA(threads int, d time.Duration) gemm.PeakRate {
	if !gemm.HaveFMAPeak() {
		return gemm.PeakRate{}
	}
	return gemm.MeasurePeak(gemm.FMAPeak, gemm.FMAPeakFlopsPerIter, threads, d)
}

// DPBF16 is FMA for the VDPBF16PS loop, counting two flops per bf16
// product (a multiply and an add, as for the fp32 FMA); the zero PeakRate
// where the CPU has no AVX512_BF16.
func DPBF16(threads int, d time.Duration) gemm.PeakRate {
	if !gemm.HaveBF16Peak() {
		return gemm.PeakRate{}
	}
	return gemm.MeasurePeak(runBF16, gemm.BF16PeakFlopsPerIter, threads, d)
}

// Measure returns the FMA peak of threads threads running together, in
// GFLOP/s, measured for about d (FMA); 0 where the CPU has no AVX-512.
func Measure(threads int, d time.Duration) float64 { return FMA(threads, d).GFLOPS }

// MeasureBF16 returns the VDPBF16PS peak of threads threads running
// together, in GFLOP/s, measured for about d (DPBF16); 0 where the CPU has
// no AVX512_BF16.
func MeasureBF16(threads int, d time.Duration) float64 { return DPBF16(threads, d).GFLOPS }

// BF16 returns the bf16 peak from the FMA and VDPBF16PS peaks measured in
// the same run (Measure, MeasureBF16): the higher of the two (see the
// package documentation).
func BF16(fma, dpbf16 float64) float64 { return gemm.BF16GEMMPeak(fma, dpbf16) }

// runBF16 runs the bf16 loop on zero inputs.
func runBF16(iters int) {
	var a, b [16]uint32
	var out [gemm.BF16PeakChains * 16]float32
	gemm.BF16Peak(iters, &a, &b, &out)
}
