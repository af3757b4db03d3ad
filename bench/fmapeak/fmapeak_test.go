package fmapeak

import (
	"testing"
	"time"

	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// TestMeasure: each loop runs on one and on two threads and gives a
// plausible rate (at least 1 GFLOP/s even on a loaded machine) where its
// instruction exists, with the structure of a concurrent measurement
// (every thread measured, one thread's rate its own, the mean over the
// rounds never above the best round, two threads together never above
// twice the best one alone), and reports 0 where it does not.
// The loops' arithmetic is checked in engine/cpu/gemm (TestBF16PeakExact,
// TestBF16PeakLoop), the measurement's in TestRoundRate and
// TestMeasurePeak there.
func TestMeasure(t *testing.T) {
	for _, c := range []struct {
		name    string
		measure func(threads int, d time.Duration) gemm.PeakRate
		have    bool
	}{
		{"VFMADD231PS (AVX-512)", FMA, gemm.HaveFMAPeak()},
		{"VDPBF16PS (AVX512_BF16)", DPBF16, gemm.HaveBF16Peak()},
	} {
		for _, threads := range []int{1, 2} {
			r := c.measure(threads, 20*time.Millisecond)
			switch {
			case !c.have && r != (gemm.PeakRate{}):
				t.Errorf("%s: not on this CPU, yet measured %+v", c.name, r)
			case !c.have:
				t.Logf("%s: not on this CPU, peak 0", c.name)
			case r.Threads != threads || r.Rounds < 1:
				t.Errorf("%s on %d threads: %+v", c.name, threads, r)
			case r.GFLOPS < 1:
				t.Errorf("%s on %d threads: peak %.2f GFLOP/s", c.name, threads, r.GFLOPS)
			case threads == 1 && r.GFLOPS != r.PerThread:
				t.Errorf("%s on one thread: %.2f GFLOP/s, its thread %.2f", c.name, r.GFLOPS, r.PerThread)
			case r.Mean > r.GFLOPS:
				t.Errorf("%s on %d threads: mean %.2f GFLOP/s above the best round's %.2f", c.name, threads, r.Mean, r.GFLOPS)
			case r.GFLOPS > float64(threads)*r.PerThread*(1+1e-12):
				t.Errorf("%s on %d threads: %.2f GFLOP/s, above %d x the best thread's %.2f", c.name, threads, r.GFLOPS, threads, r.PerThread)
			}
		}
	}
	if m, b := Measure(1, time.Millisecond), MeasureBF16(1, time.Millisecond); (m > 0) != gemm.HaveFMAPeak() || (b > 0) != gemm.HaveBF16Peak() {
		t.Errorf("Measure %g, MeasureBF16 %g: not what the CPU's features say", m, b)
	}
}

// TestBF16: the bf16 peak is the higher of the two instructions' peaks,
// whichever it is, and a missing instruction (peak 0) leaves the other's.
func TestBF16(t *testing.T) {
	for _, c := range [][3]float64{{214, 110, 214}, {220, 440, 440}, {0, 0, 0}, {214, 0, 214}, {0, 90, 90}} {
		if got := BF16(c[0], c[1]); got != c[2] {
			t.Errorf("BF16(fma %g, dpbf16 %g) = %g, want %g", c[0], c[1], got, c[2])
		}
	}
}
