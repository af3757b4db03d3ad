package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/enginetest"
)

// forEachSIMD runs f under every variant this CPU supports, forcing each
// in turn, and restores the default.
func forEachSIMD(t *testing.T, f func(t *testing.T)) {
	names := []string{"go", "avx2", "avx512"}
	for level := simdGo; level <= bestSIMD(); level++ {
		old := setSIMD(level)
		t.Run(names[level], f)
		setSIMD(old)
	}
}

// simdLengths cover empty, shorter than a vector, exact widths and tails.
var simdLengths = []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 97, 200, 1023}

func randVec(rng *rand.Rand, n int, spread float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = spread * float32(rng.NormFloat64())
	}
	return v
}

// closeTo reports whether got is within rel of want (or abs near zero).
func closeTo(got, want, rel, abs float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)+abs
}

// TestSIMDExp: the vector exp meets exp32's accuracy bound over the whole
// useful range, and its edges (0, +Inf, NaN) match.
func TestSIMDExp(t *testing.T) {
	forEachSIMD(t, func(t *testing.T) {
		var xs []float32
		for x := float32(-87); x < 88.5; x += 0.001953125 {
			xs = append(xs, x)
		}
		xs = append(xs, -87.33, 88.72, 88.4, -87.336)
		y := append([]float32(nil), xs...)
		expShiftSum(y, 0)
		worst := 0.0
		for i, x := range xs {
			want := math.Exp(float64(x))
			if rel := math.Abs(float64(y[i])-want) / want; rel > worst {
				worst = rel
			}
		}
		t.Logf("vector length %d, worst relative error %.3g", vecLen(len(xs)), worst)
		if worst > 3e-7 {
			t.Fatalf("worst relative error %.3g", worst)
		}
		edge := []float32{-100, 100, 0, float32(math.NaN()), -87.34, 88.73, float32(math.Inf(-1)), float32(math.Inf(1)),
			-1e30, 1e30, 1, 2, 3, 4, 5, 6}
		expShiftSum(edge, 0)
		// Below -87.34 the true value is subnormal or 0: exp32 gives 0, the
		// AVX-512 code the rounded subnormal; either is accepted.
		tiny := func(v float32) bool { return v >= 0 && v < 0x1p-126 }
		if !tiny(edge[0]) || !math.IsInf(float64(edge[1]), 1) || edge[2] != 1 || edge[3] == edge[3] ||
			!tiny(edge[4]) || !math.IsInf(float64(edge[5]), 1) || edge[6] != 0 || !math.IsInf(float64(edge[7]), 1) ||
			edge[8] != 0 || !math.IsInf(float64(edge[9]), 1) {
			t.Fatalf("edges: %v", edge)
		}
		// sigmoid through swiglu with u = 1: saturates to exactly 0 and 1 (times g).
		g := []float32{-200, 200, -1e30, 0, -90, 90, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5}
		o := make([]float32, len(g))
		u := make([]float32, len(g))
		for i := range u {
			u[i] = 1
		}
		swiglu(o, g, u)
		if o[0] != 0 || o[1] != 200 || o[2] != 0 || o[3] != 0 || o[5] != 90 {
			t.Fatalf("silu edges: %v", o)
		}
		for i := 6; i < len(g); i++ {
			want := float64(g[i]) / (1 + math.Exp(-float64(g[i])))
			if !closeTo(float64(o[i]), want, 1e-6, 0) {
				t.Fatalf("silu(%v) = %v, want %v", g[i], o[i], want)
			}
		}
	})
}

// TestSIMDKernels checks every kernel of every variant against the pure-Go
// loop on lengths with and without tails.
func TestSIMDKernels(t *testing.T) {
	forEachSIMD(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 7))
		for _, n := range simdLengths {
			a, b, c := randVec(rng, n, 3), randVec(rng, n, 3), randVec(rng, n, 3)
			check := func(what string, got, want []float32, rel, abs float64) {
				t.Helper()
				for i := range want {
					if !closeTo(float64(got[i]), float64(want[i]), rel, abs) {
						t.Fatalf("%s n=%d [%d]: %v, want %v", what, n, i, got[i], want[i])
					}
				}
			}
			// expShiftSum and maxOf (the softmax pieces).
			if n > 0 {
				m := maxOf(a)
				wm := a[0]
				for _, v := range a {
					wm = max(wm, v)
				}
				if m != wm {
					t.Fatalf("maxOf n=%d: %v, want %v", n, m, wm)
				}
				x := append([]float32(nil), a...)
				s := expShiftSum(x, m)
				var ws float64
				want := make([]float32, n)
				for i, v := range a {
					want[i] = float32(math.Exp(float64(v - m)))
					ws += float64(want[i])
				}
				check("expShiftSum", x, want, 3e-7, 1e-37)
				if !closeTo(s, ws, 1e-6, 0) {
					t.Fatalf("expShiftSum n=%d: sum %v, want %v", n, s, ws)
				}
			}
			x := append([]float32(nil), a...)
			scale(x, 0.37)
			want := make([]float32, n)
			for i := range a {
				want[i] = a[i] * 0.37
			}
			check("scale", x, want, 0, 0)

			d := make([]float32, n)
			add(d, a, b)
			for i := range a {
				want[i] = a[i] + b[i]
			}
			check("add", d, want, 0, 0)
			x = append([]float32(nil), a...)
			add(x, x, b) // aliasing
			check("add aliased", x, want, 0, 0)

			var wdot, wss float64
			for i := range a {
				wdot += float64(a[i]) * float64(b[i])
				v := float64(a[i] + b[i])
				wss += v * v
			}
			if got := dot64(a, b); !closeTo(got, wdot, 1e-12, 1e-12) {
				t.Fatalf("dot64 n=%d: %v, want %v", n, got, wdot)
			}
			if got := addSumSq(d, a, b); !closeTo(got, wss, 1e-12, 1e-12) {
				t.Fatalf("addSumSq n=%d: %v, want %v", n, got, wss)
			}
			check("addSumSq sum", d, want, 0, 0)

			rmsBack(d, a, b, 0.7, -0.3)
			for i := range a {
				want[i] = 0.7 * (a[i] - b[i]*-0.3)
			}
			check("rmsBack", d, want, 1e-6, 1e-6)

			x = append([]float32(nil), a...)
			pdsub(x, b, 0.25)
			for i := range a {
				want[i] = b[i] * (a[i] - 0.25)
			}
			check("pdsub", x, want, 1e-6, 0)

			swiglu(d, a, b)
			for i := range a {
				g := float64(a[i])
				want[i] = float32(g / (1 + math.Exp(-g)) * float64(b[i]))
			}
			check("swiglu", d, want, 2e-6, 1e-30)

			dg, du := make([]float32, n), make([]float32, n)
			wdu := make([]float32, n)
			swigluBack(dg, du, c, a, b)
			for i := range a {
				g, u, da := float64(a[i]), float64(b[i]), float64(c[i])
				s := 1 / (1 + math.Exp(-g))
				want[i] = float32(da * u * s * (1 + g*(1-s)))
				wdu[i] = float32(da * g * s)
			}
			check("swigluBack dg", dg, want, 1e-5, 1e-6)
			check("swigluBack du", du, wdu, 2e-6, 1e-30)
		}
	})
}

// TestConformanceVariants runs the engine's conformance suite (golden
// parity, gradients, determinism) under every SIMD variant, so the narrower
// ones stay covered on a CPU that would never pick them.
func TestConformanceVariants(t *testing.T) {
	forEachSIMD(t, func(t *testing.T) {
		enginetest.Run(t, func() engine.Backend { return New(0) })
	})
}

// BenchmarkSwiGLU times the SwiGLU kernel of each variant on a row that
// fits in L1 and on the MLP activations of a step config (memory bound).
func BenchmarkSwiGLU(b *testing.B) {
	for _, n := range []int{1536, 1552 * 1536} {
		rng := rand.New(rand.NewPCG(1, 1))
		g, u, o := randVec(rng, n, 2), randVec(rng, n, 2), make([]float32, n)
		for level := simdGo; level <= bestSIMD(); level++ {
			old := setSIMD(level)
			b.Run(fmt.Sprintf("%s/n=%d", []string{"go", "avx2", "avx512"}[level], n), func(b *testing.B) {
				b.SetBytes(int64(12 * n))
				for range b.N {
					swiglu(o, g, u)
				}
			})
			setSIMD(old)
		}
	}
}

// TestTransposeTile checks the blocked transpose of every variant against
// the definition on shapes with and without 8-aligned edges, inside larger
// strided matrices.
func TestTransposeTile(t *testing.T) {
	forEachSIMD(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 3))
		for _, rows := range []int{1, 7, 8, 9, 17, 32} {
			for _, cols := range []int{1, 8, 15, 16, 31, 32} {
				lds, ldd := cols+5, rows+3
				src := randVec(rng, rows*lds, 1)
				dst := make([]float32, cols*ldd)
				transposeTile(dst, ldd, src, lds, rows, cols)
				for r := range rows {
					for c := range cols {
						if dst[c*ldd+r] != src[r*lds+c] {
							t.Fatalf("%dx%d: [%d][%d] = %v, want %v", rows, cols, c, r, dst[c*ldd+r], src[r*lds+c])
						}
					}
				}
				for c := range cols {
					for r := rows; r < ldd; r++ {
						if dst[c*ldd+r] != 0 {
							t.Fatalf("%dx%d: wrote outside the tile at [%d][%d]", rows, cols, c, r)
						}
					}
				}
			}
		}
	})
}

// TestRope checks the rotation of every variant, both ways, against the
// definition, and that the inverse undoes the forward.
func TestRope(t *testing.T) {
	forEachSIMD(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 5))
		for _, n := range simdLengths {
			a, b := randVec(rng, n, 1), randVec(rng, n, 1)
			c, s := make([]float32, n), make([]float32, n)
			for i := range c {
				th := rng.Float64() * 6.3
				c[i], s[i] = float32(math.Cos(th)), float32(math.Sin(th))
			}
			x, y := append([]float32(nil), a...), append([]float32(nil), b...)
			rope(x, y, c, s, false)
			for i := range a {
				wx := float64(a[i])*float64(c[i]) - float64(b[i])*float64(s[i])
				wy := float64(b[i])*float64(c[i]) + float64(a[i])*float64(s[i])
				if !closeTo(float64(x[i]), wx, 1e-6, 1e-6) || !closeTo(float64(y[i]), wy, 1e-6, 1e-6) {
					t.Fatalf("n=%d [%d]: (%v, %v), want (%v, %v)", n, i, x[i], y[i], wx, wy)
				}
			}
			rope(x, y, c, s, true)
			for i := range a {
				if !closeTo(float64(x[i]), float64(a[i]), 1e-5, 1e-5) || !closeTo(float64(y[i]), float64(b[i]), 1e-5, 1e-5) {
					t.Fatalf("n=%d [%d]: inverse gives (%v, %v), want (%v, %v)", n, i, x[i], y[i], a[i], b[i])
				}
			}
		}
	})
}
