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
