package fmapeak

import (
	"testing"
	"time"

	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// TestMeasure: each loop runs and gives a plausible rate (at least 1
// GFLOP/s per thread even on a loaded machine) where its instruction
// exists, and reports 0 where it does not. The bf16 loop's arithmetic is
// checked in engine/cpu/gemm (TestBF16PeakExact, TestBF16PeakLoop).
func TestMeasure(t *testing.T) {
	for _, c := range []struct {
		name    string
		measure func(threads int, d time.Duration) float64
		have    bool
	}{
		{"VFMADD231PS (AVX-512)", Measure, gemm.HaveFMAPeak()},
		{"VDPBF16PS (AVX512_BF16)", MeasureBF16, gemm.HaveBF16Peak()},
	} {
		g := c.measure(1, 50*time.Millisecond)
		switch {
		case !c.have && g != 0:
			t.Errorf("%s: not on this CPU, yet a peak of %.2f GFLOP/s", c.name, g)
		case !c.have:
			t.Logf("%s: not on this CPU, peak 0", c.name)
		case g < 1:
			t.Errorf("%s: peak %.2f GFLOP/s", c.name, g)
		}
	}
}
