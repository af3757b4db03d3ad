package fmapeak

import (
	"math"
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

// TestMeasureBF16 is TestMeasure for the VDPBF16PS loop.
func TestMeasureBF16(t *testing.T) {
	if !availableBF16() {
		t.Skip("no AVX512_BF16")
	}
	if g := MeasureBF16(1, 50*time.Millisecond); g < 1 {
		t.Fatalf("bf16 peak %.2f GFLOP/s", g)
	}
}

// bf16 returns the bf16 bit pattern of x, which must be exact in bf16.
func bf16(t *testing.T, x float32) uint32 {
	u := math.Float32bits(x)
	if u&0xffff != 0 {
		t.Fatalf("%g is not a bf16 value", x)
	}
	return u >> 16
}

// TestLoopBF16Arithmetic: the bf16 loop really executes VDPBF16PS on all
// its accumulators: with lane i holding the pairs (i+1, -0.5) and
// (0.25*i, 3), each instruction adds (i+1)*0.25i - 1.5 to every lane (exact
// in fp32), so after n iterations each accumulator holds n times that. A
// loop of fp32 FMAs on the same bits, or one that skipped instructions or
// accumulators, would not.
func TestLoopBF16Arithmetic(t *testing.T) {
	if !availableBF16() {
		t.Skip("no AVX512_BF16")
	}
	var a, b [16]uint32
	for i := range a {
		a[i] = bf16(t, float32(i+1)) | bf16(t, -0.5)<<16
		b[i] = bf16(t, 0.25*float32(i)) | bf16(t, 3)<<16
	}
	for _, n := range []int{0, 1, 5, 1000} {
		var out [bf16Chains * 16]float32
		for i := range out {
			out[i] = float32(math.NaN())
		}
		loopBF16(n, &a, &b, &out)
		for r := 0; r < bf16Chains; r++ {
			for i := 0; i < 16; i++ {
				want := float32(n) * (float32(i+1)*0.25*float32(i) - 1.5)
				if got := out[r*16+i]; got != want {
					t.Fatalf("n=%d accumulator %d lane %d: %g, want %g", n, r, i, got, want)
				}
			}
		}
	}
}
