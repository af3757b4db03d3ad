// Package fmapeak measures the machine's float32 FMA peak with a loop of
// independent AVX-512 FMAs, so that benchmarks can report efficiency
// against what the cores deliver in the same run (under the same load)
// rather than a datasheet figure.
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
	const iters = 1 << 20
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
				loop(iters)
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
