package gemm

import (
	"math"
	"math/rand/v2"
	"testing"
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
