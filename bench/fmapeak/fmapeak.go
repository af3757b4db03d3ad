// Package fmapeak measures the machine's float32 FMA peak with a loop of
// independent AVX-512 FMAs, and its bf16 peak with a loop of independent
// VDPBF16PS (AVX512_BF16), so that benchmarks can report efficiency
// against what the cores deliver in the same run (under the same load)
// rather than a datasheet figure. VDPBF16PS does two multiply-adds per
// lane, but a core need not issue it at the VFMADD231PS rate (some issue
// it at half that rate), so the bf16 peak is measured, not derived from
// the fp32 one.
package fmapeak

import (
	"runtime"
	"sync"
	"time"
)

// Measure runs the FMA loop on threads goroutines (each locked to its
// thread) for about d and returns the sum of their best rates in GFLOP/s;
// 0 where the CPU has no AVX-512.
func Measure(threads int, d time.Duration) float64 {
	if !available() {
		return 0
	}
	return measure(loop, flopsPerIter, threads, d)
}

// MeasureBF16 is Measure for the VDPBF16PS loop, counting two flops per
// bf16 product (a multiply and an add, as for the fp32 FMA); 0 where the
// CPU has no AVX512_BF16.
func MeasureBF16(threads int, d time.Duration) float64 {
	if !availableBF16() {
		return 0
	}
	return measure(runBF16, bf16FlopsPerIter, threads, d)
}

// runBF16 runs the bf16 loop on zero inputs.
func runBF16(iters int) {
	var a, b [16]uint32
	var out [bf16Chains * 16]float32
	loopBF16(iters, &a, &b, &out)
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
