// Package fmapeak measures the machine's float32 FMA peak with a loop of
// independent AVX-512 FMAs, and its bf16 peak with a loop of independent
// VDPBF16PS (AVX512_BF16), so that benchmarks can report efficiency
// against what the cores deliver in the same run (under the same load)
// rather than a datasheet figure. VDPBF16PS does two multiply-adds per
// lane, but a core need not issue it at the VFMADD231PS rate (some issue
// it at half that rate), so the bf16 peak is measured, not derived from
// the fp32 one. The loops are engine/cpu/gemm's (FMAPeak, BF16Peak), the
// ones its bf16 kernel choice times, so every figure measured here is of
// the same instructions.
package fmapeak

import (
	"runtime"
	"sync"
	"time"

	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// Measure runs the FMA loop on threads goroutines (each locked to its
// thread) for about d and returns the sum of their best rates in GFLOP/s;
// 0 where the CPU has no AVX-512.
func Measure(threads int, d time.Duration) float64 {
	if !gemm.HaveFMAPeak() {
		return 0
	}
	return measure(gemm.FMAPeak, gemm.FMAPeakFlopsPerIter, threads, d)
}

// MeasureBF16 is Measure for the VDPBF16PS loop, counting two flops per
// bf16 product (a multiply and an add, as for the fp32 FMA); 0 where the
// CPU has no AVX512_BF16.
func MeasureBF16(threads int, d time.Duration) float64 {
	if !gemm.HaveBF16Peak() {
		return 0
	}
	return measure(runBF16, gemm.BF16PeakFlopsPerIter, threads, d)
}

// runBF16 runs the bf16 loop on zero inputs.
func runBF16(iters int) {
	var a, b [16]uint32
	var out [gemm.BF16PeakChains * 16]float32
	gemm.BF16Peak(iters, &a, &b, &out)
}

// measure runs run(iters) on threads locked goroutines for about d and
// returns the sum of their best rates in GFLOP/s.
func measure(run func(iters int), flopsPerIter float64, threads int, d time.Duration) float64 {
	const iters = 1 << 18
	var wg sync.WaitGroup
	rates := make([]float64, threads)
	for i := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for end := time.Now().Add(d); time.Now().Before(end); {
				t := time.Now()
				run(iters)
				rates[i] = max(rates[i], iters*flopsPerIter/time.Since(t).Seconds())
			}
		}()
	}
	wg.Wait()
	total := 0.0
	for _, r := range rates {
		total += r
	}
	return total / 1e9
}
