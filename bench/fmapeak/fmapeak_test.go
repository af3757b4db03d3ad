package fmapeak

import (
	"testing"
	"time"
)

// TestMeasure: the loop runs and gives a plausible rate (at least 1
// GFLOP/s per thread even on a loaded machine) where AVX-512 exists.
func TestMeasure(t *testing.T) {
	if !available() {
		t.Skip("no AVX-512")
	}
	if g := Measure(1, 50*time.Millisecond); g < 1 {
		t.Fatalf("FMA peak %.2f GFLOP/s", g)
	}
}
