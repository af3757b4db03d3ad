package gemm

import (
	"runtime"
	"sync"
	"time"
)

// The peak loops exported for package fmapeak (bench/fmapeak), which
// reports them to the benchmarks outside this package: one copy of each
// loop backs both every %peak figure and the bf16 kernel choice
// (chooseBF16Kernel), so the two always time the same instructions; and
// one measurement of them (MeasurePeak) serves fmapeak and this package's
// benchmarks alike.
//
// The bf16 peak. The bf16 GEMM computes bf16 x bf16 products accumulated
// in fp32, and two instruction paths give exactly its bits: VDPBF16PS
// (bf16Kernel) and the fp32 FMA on bf16 values (bf16FMAKernel, see
// bf16fma.go). Its peak is therefore the higher of the two loops' rates
// measured in the same run (BF16GEMMPeak): the best rate at which the core
// can do the bf16 GEMM's arithmetic with the bits the engine produces. On
// a core that issues VDPBF16PS at the FMA's rate that is the VDPBF16PS
// peak, twice the FMA's; on one that issues it at half that rate the two
// are equal, and the FMA's is the bf16 peak.

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

// BF16GEMMPeak returns the bf16 peak from the FMA and VDPBF16PS peaks
// measured in the same run (GFLOP/s, 0 for a loop that cannot run): the
// higher of the two, since the bf16 GEMM gives the same bits on either
// instruction (see the bf16 peak above).
func BF16GEMMPeak(fma, dpbf16 float64) float64 { return max(fma, dpbf16) }

// PeakRate is a peak loop's measured throughput, in GFLOP/s.
type PeakRate struct {
	// GFLOPS is the throughput of all the threads running the loop at the
	// same time: in a round, every thread runs the same number of
	// iterations, all released together, and the round's rate is its
	// flops over the span from the first thread's start to the last
	// one's end; GFLOPS is the best round's. Two hardware threads of one
	// core share its FMA pipes and report that core's peak, two cores
	// report twice a core's.
	GFLOPS float64
	// Mean is the throughput over all the rounds together (their flops
	// over the sum of their spans): below GFLOPS where some rounds were
	// slowed by other work on the cores, it is the rate the threads had
	// during the measurement, what a benchmark that samples the peak in
	// alternation with its own work compares against.
	Mean float64
	// PerThread is the best rate one thread reached over its own part of
	// a round. A thread that ran while the others were descheduled or
	// done gets a whole core, so Threads*PerThread overstates what the
	// threads deliver together where they share cores; it is an upper
	// bound (GFLOPS <= Threads*PerThread), not a throughput.
	PerThread float64
	// Threads is the number of threads measured; Rounds the rounds run.
	Threads, Rounds int
}

// peakSpan is one thread's part of a round: when it started and ended.
type peakSpan struct{ start, end time.Time }

// roundRate returns the rate of one round in GFLOP/s, all threads
// together (their flops over the span from the earliest start to the
// latest end) and the best single thread's (its flops over its own span),
// each thread having done flops flops, and the round's span in seconds.
func roundRate(spans []peakSpan, flops float64) (all, perThread, secs float64) {
	first, last := spans[0].start, spans[0].end
	for _, s := range spans {
		if s.start.Before(first) {
			first = s.start
		}
		if s.end.After(last) {
			last = s.end
		}
		if d := s.end.Sub(s.start).Seconds(); d > 0 {
			perThread = max(perThread, flops/d/1e9)
		}
	}
	secs = last.Sub(first).Seconds()
	if secs > 0 {
		all = float64(len(spans)) * flops / secs / 1e9
	}
	return all, perThread, secs
}

// peakRoundTime is the length a measurement round aims at on a thread
// that has a core to itself: long against the tens of microseconds a
// parked thread can take to wake on a virtual machine, short enough for
// several rounds in the GEMM benchmarks' 20 ms samples.
const peakRoundTime = 5 * time.Millisecond

// MeasurePeak measures the concurrent throughput of a peak loop (run does
// iters iterations of flopsPerIter flops each) on threads goroutines, each
// locked to its OS thread: rounds of the same number of iterations per
// thread, started together, repeated for about d (at least one round);
// see PeakRate. It is what package fmapeak and this package's benchmarks
// report peaks with.
func MeasurePeak(run func(iters int), flopsPerIter float64, threads int, d time.Duration) PeakRate {
	threads = max(threads, 1)
	// Size the rounds: time a short run after a warm-up (the first wide
	// instructions after idling can run slower while the core powers up
	// its vector units).
	const probe = 1 << 10
	run(probe)
	t := time.Now()
	run(probe)
	per := max(time.Since(t), time.Microsecond) / probe
	iters := max(probe, int(min(peakRoundTime, max(d/4, 100*time.Microsecond))/per))

	type round struct {
		start       chan struct{}
		ready, done sync.WaitGroup
	}
	work := make([]chan *round, threads)
	spans := make([]peakSpan, threads)
	var exited sync.WaitGroup
	for i := range work {
		work[i] = make(chan *round, 1)
		exited.Add(1)
		go func() {
			defer exited.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for r := range work[i] {
				r.ready.Done()
				<-r.start
				s := time.Now()
				run(iters)
				spans[i] = peakSpan{s, time.Now()}
				r.done.Done()
			}
		}()
	}
	res := PeakRate{Threads: threads}
	flops := float64(iters) * flopsPerIter
	var secs float64
	for end := time.Now().Add(d); res.Rounds == 0 || time.Now().Before(end); res.Rounds++ {
		r := &round{start: make(chan struct{})}
		r.ready.Add(threads)
		r.done.Add(threads)
		for _, w := range work {
			w <- r
		}
		r.ready.Wait()
		close(r.start)
		r.done.Wait()
		all, one, t := roundRate(spans, flops)
		res.GFLOPS = max(res.GFLOPS, all)
		res.PerThread = max(res.PerThread, one)
		secs += t
	}
	if secs > 0 {
		res.Mean = min(res.GFLOPS, float64(res.Rounds*threads)*flops/secs/1e9)
	}
	for _, w := range work {
		close(w)
	}
	exited.Wait()
	return res
}
