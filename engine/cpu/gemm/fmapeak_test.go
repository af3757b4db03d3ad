package gemm

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestBF16PeakLoop: the bf16 peak loop really executes VDPBF16PS on every
// one of its accumulators: after n iterations each lane of each
// accumulator holds n chained VDPBF16PS of the loop's inputs, bit for bit
// as dpbf16Model computes them (random bf16 pairs, so a loop of fp32 FMAs
// or one that skipped instructions would not match).
func TestBF16PeakLoop(t *testing.T) {
	skipNoBF16(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, 7, 100} {
		var a, b [16]uint32
		for i := range a {
			a[i], b[i] = pairOf(rng), pairOf(rng)
		}
		var out [bf16PeakChains * 16]float32
		for i := range out {
			out[i] = float32(math.NaN())
		}
		bf16PeakZMM(n, &a, &b, &out)
		for i := 0; i < 16; i++ {
			var want float32
			for range n {
				want = dpbf16Model(want, a[i], b[i])
			}
			for r := 0; r < bf16PeakChains; r++ {
				if got := out[r*16+i]; !sameFloat(got, want) {
					t.Fatalf("n=%d accumulator %d lane %d: got %g, model %g", n, r, i, got, want)
				}
			}
		}
	}
}

// bf16Exact returns the bf16 bit pattern of x, which must be exact in bf16.
func bf16Exact(t *testing.T, x float32) uint32 {
	u := math.Float32bits(x)
	if u&0xffff != 0 {
		t.Fatalf("%g is not a bf16 value", x)
	}
	return u >> 16
}

// TestBF16PeakExact: the exported loop (the one package fmapeak reports)
// runs VDPBF16PS on all its accumulators with values whose sums are exact
// in fp32: with lane i holding the pairs (i+1, -0.5) and (0.25*i, 3),
// each instruction adds (i+1)*0.25i - 1.5 to every lane, so after n
// iterations each accumulator holds n times that. A loop of fp32 FMAs on
// the same bits, or one that skipped instructions or accumulators, would
// not.
func TestBF16PeakExact(t *testing.T) {
	skipNoBF16(t)
	var a, b [16]uint32
	for i := range a {
		a[i] = bf16Exact(t, float32(i+1)) | bf16Exact(t, -0.5)<<16
		b[i] = bf16Exact(t, 0.25*float32(i)) | bf16Exact(t, 3)<<16
	}
	for _, n := range []int{0, 1, 5, 1000} {
		var out [BF16PeakChains * 16]float32
		for i := range out {
			out[i] = float32(math.NaN())
		}
		BF16Peak(n, &a, &b, &out)
		for r := 0; r < BF16PeakChains; r++ {
			for i := 0; i < 16; i++ {
				want := float32(n) * (float32(i+1)*0.25*float32(i) - 1.5)
				if got := out[r*16+i]; got != want {
					t.Fatalf("n=%d accumulator %d lane %d: %g, want %g", n, r, i, got, want)
				}
			}
		}
	}
}

// TestRoundRate: a round's rate is all threads' flops over the span from
// the first start to the last end, so two threads that took turns (each
// running while the other waited, as two hardware threads of one core
// can) count once, where summing each thread's own rate would count the
// core twice; threads that overlapped entirely count fully.
func TestRoundRate(t *testing.T) {
	at := func(us int) time.Time { return time.Unix(0, 0).Add(time.Duration(us) * time.Microsecond) }
	const flops = 1e8 // per thread: 100 GFLOP/s over 1 ms
	for _, c := range []struct {
		name           string
		spans          []peakSpan
		all, perThread float64
	}{
		{"one thread", []peakSpan{{at(0), at(1000)}}, 100, 100},
		{"together", []peakSpan{{at(0), at(1000)}, {at(0), at(1000)}}, 200, 100},
		{"in turn", []peakSpan{{at(0), at(1000)}, {at(1000), at(2000)}}, 100, 100},
		{"late start", []peakSpan{{at(500), at(1500)}, {at(0), at(2000)}}, 100, 100},
		{"shared core", []peakSpan{{at(0), at(2000)}, {at(0), at(2000)}}, 100, 50},
		{"empty span", []peakSpan{{at(0), at(0)}}, 0, 0},
	} {
		all, one, secs := roundRate(c.spans, flops)
		if math.Abs(all-c.all) > 1e-9 || math.Abs(one-c.perThread) > 1e-9 {
			t.Errorf("%s: all %g per thread %g, want %g and %g", c.name, all, one, c.all, c.perThread)
		}
		if all > 0 && math.Abs(secs-float64(len(c.spans))*flops/all/1e9) > 1e-12 {
			t.Errorf("%s: span %gs, rate %g", c.name, secs, all)
		}
	}
}

// TestMeasurePeak: the measurement runs whole rounds (at least one, even
// for d = 0) of the same loop on every thread, and its figures keep their
// structure whatever the machine's load: with one thread the all-threads
// rate is that thread's rate; with several it never exceeds threads times
// the best single thread's; the mean over the rounds is never above the
// best round, and is the best round when there was one. No speed is
// asserted (the cores are shared).
func TestMeasurePeak(t *testing.T) {
	var mu sync.Mutex
	calls := map[int]int{}
	spin := func(iters int) {
		x := 1.0
		for range iters {
			x = x*1.0000001 + 1e-9
		}
		if x < 0 {
			panic("unreachable")
		}
		mu.Lock()
		calls[iters]++
		mu.Unlock()
	}
	for _, c := range []struct {
		threads int
		d       time.Duration
	}{{1, 0}, {1, 5 * time.Millisecond}, {2, 0}, {2, 5 * time.Millisecond}, {3, time.Millisecond}} {
		clear(calls)
		r := MeasurePeak(spin, 2, c.threads, c.d)
		if r.Threads != c.threads || r.Rounds < 1 {
			t.Fatalf("threads=%d d=%v: %+v, want %d threads and a round at least", c.threads, c.d, r, c.threads)
		}
		if r.GFLOPS <= 0 || r.PerThread <= 0 || r.Mean <= 0 {
			t.Fatalf("threads=%d d=%v: %+v, want positive rates", c.threads, c.d, r)
		}
		if r.Mean > r.GFLOPS {
			t.Errorf("threads=%d: mean %g above the best round's %g", c.threads, r.Mean, r.GFLOPS)
		}
		if r.Rounds == 1 && math.Abs(r.Mean-r.GFLOPS) > 1e-9*r.GFLOPS {
			t.Errorf("threads=%d: one round, yet mean %g and best %g", c.threads, r.Mean, r.GFLOPS)
		}
		if c.threads == 1 && r.GFLOPS != r.PerThread {
			t.Errorf("one thread: all-threads rate %g differs from the thread's %g", r.GFLOPS, r.PerThread)
		}
		if r.GFLOPS > float64(c.threads)*r.PerThread*(1+1e-12) {
			t.Errorf("threads=%d: all-threads rate %g above %d x the best thread's %g", c.threads, r.GFLOPS, c.threads, r.PerThread)
		}
		// Two sizing runs, then every thread once per round.
		runs := 0
		for _, n := range calls {
			runs += n
		}
		if want := 2 + c.threads*r.Rounds; runs != want {
			t.Errorf("threads=%d: %d runs of the loop, want %d (%d rounds): %v", c.threads, runs, want, r.Rounds, calls)
		}
	}
}
