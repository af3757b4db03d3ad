package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// gemmCase is one randomly filled problem with padded leading dimensions.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	lda, ldb, ldc  int
	a, b, c0       []float32
	ref, refAbs    []float64 // cached reference (see reference)
}

func newCase(rng *rand.Rand, transA, transB bool, m, n, k int, alpha, beta float32, pad int) *gemmCase {
	tc := &gemmCase{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	tc.lda, tc.ldb, tc.ldc = ac+pad, bc+pad, n+pad
	tc.a = randSlice(rng, need(ar, ac, tc.lda))
	tc.b = randSlice(rng, need(br, bc, tc.ldb))
	tc.c0 = randSlice(rng, need(m, n, tc.ldc)+pad)
	if beta == 0 {
		// beta == 0 must ignore whatever C holds, NaNs included.
		for i := range tc.c0 {
			if i%3 == 0 {
				tc.c0[i] = float32(math.NaN())
			}
		}
	}
	return tc
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = rng.Float32()*2 - 1
	}
	return s
}

func (tc *gemmCase) String() string {
	return fmt.Sprintf("tA=%v tB=%v m=%d n=%d k=%d alpha=%g beta=%g ld=%d,%d,%d",
		tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.lda, tc.ldb, tc.ldc)
}

func (tc *gemmCase) opA(i, p int) float32 {
	if tc.transA {
		return tc.a[p*tc.lda+i]
	}
	return tc.a[i*tc.lda+p]
}

func (tc *gemmCase) opB(p, j int) float32 {
	if tc.transB {
		return tc.b[j*tc.ldb+p]
	}
	return tc.b[p*tc.ldb+j]
}

// run computes the case with Sgemm on a fresh copy of C.
func (tc *gemmCase) run() []float32 {
	c := append([]float32(nil), tc.c0...)
	Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.a, tc.lda, tc.b, tc.ldb, tc.beta, c, tc.ldc)
	return c
}

// reference computes alpha*op(A)*op(B) + beta*C0 in float64 together with
// the matching sum of absolute values of the terms, once per case.
func (tc *gemmCase) reference() (want, abs []float64) {
	if tc.ref != nil {
		return tc.ref, tc.refAbs
	}
	// Materialise op(A) and op(B)^T so the dot products run over contiguous rows.
	opA := make([]float64, tc.m*tc.k)
	for i := 0; i < tc.m; i++ {
		for p := 0; p < tc.k; p++ {
			opA[i*tc.k+p] = float64(tc.opA(i, p))
		}
	}
	opBT := make([]float64, tc.n*tc.k)
	for j := 0; j < tc.n; j++ {
		for p := 0; p < tc.k; p++ {
			opBT[j*tc.k+p] = float64(tc.opB(p, j))
		}
	}
	want = make([]float64, tc.m*tc.n)
	abs = make([]float64, tc.m*tc.n)
	alpha, beta := float64(tc.alpha), float64(tc.beta)
	for i := 0; i < tc.m; i++ {
		ra := opA[i*tc.k : (i+1)*tc.k]
		for j := 0; j < tc.n; j++ {
			rb := opBT[j*tc.k : (j+1)*tc.k]
			var sum, sa float64
			for p, x := range ra {
				v := x * rb[p]
				sum += v
				sa += math.Abs(v)
			}
			w, aw := alpha*sum, math.Abs(alpha)*sa
			if tc.beta != 0 {
				c0 := float64(tc.c0[i*tc.ldc+j])
				w += beta * c0
				aw += math.Abs(beta * c0)
			}
			want[i*tc.n+j], abs[i*tc.n+j] = w, aw
		}
	}
	tc.ref, tc.refAbs = want, abs
	return want, abs
}

// check compares c against a float64 reference. The tolerance is the
// classical bound for a k-term dot product, (k+3) units of float32
// roundoff times the sum of absolute values of the terms, so it holds for
// any summation order while a wrong element (O(1) relative error) fails.
func (tc *gemmCase) check(t *testing.T, c []float32) {
	t.Helper()
	const eps = 1.0 / (1 << 23)
	want, abs := tc.reference()
	bad := 0
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n; j++ {
			w, aw := want[i*tc.n+j], abs[i*tc.n+j]
			got := float64(c[i*tc.ldc+j])
			if !(math.Abs(got-w) <= float64(tc.k+3)*eps*aw+1e-30) {
				if bad < 5 {
					t.Errorf("%v: C[%d][%d] = %g, want %g", tc, i, j, got, w)
				}
				bad++
			}
		}
	}
	// Padding between rows and after the last row must be untouched.
	for idx := range c {
		i, j := idx/tc.ldc, idx%tc.ldc
		if i < tc.m && j < tc.n {
			continue
		}
		if math.Float32bits(c[idx]) != math.Float32bits(tc.c0[idx]) {
			if bad < 5 {
				t.Errorf("%v: padding C[%d] changed from %g to %g", tc, idx, tc.c0[idx], c[idx])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%v: %d bad elements", tc, bad)
	}
}

// forEachKernel runs f once per micro-kernel variant available here, with
// that variant forced.
func forEachKernel(t *testing.T, f func(t *testing.T)) {
	for _, k := range kernels {
		t.Run(k.name, func(t *testing.T) {
			prev, _ := useKernel(k.name)
			defer active.Store(prev)
			f(t)
		})
	}
}

func withThreads(n int, f func()) {
	old := int(threads.Load())
	SetThreads(n)
	defer SetThreads(old)
	f()
}

var oddDims = []int{1, 2, 3, 4, 5, 7, 13, 14, 15, 16, 17, 31, 32, 33, 48, 64, 97}

func TestSgemmRandomShapes(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		params := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.75}, {2, 0}, {1.5, -1}}
		for it := 0; it < 120; it++ {
			m := oddDims[rng.IntN(len(oddDims))]
			n := oddDims[rng.IntN(len(oddDims))]
			k := oddDims[rng.IntN(len(oddDims))]
			ab := params[it%len(params)]
			tc := newCase(rng, it&1 != 0, it&2 != 0, m, n, k, ab[0], ab[1], rng.IntN(3))
			withThreads(1+it%3, func() { tc.check(t, tc.run()) })
		}
	})
}

// TestSgemmLargeShapes covers several K blocks, several N blocks, partial
// tiles on every side and the engine's row count 1552.
func TestSgemmLargeShapes(t *testing.T) {
	shapes := [][3]int{
		{1552, 33, 17}, {97, 1552, 5}, {5, 97, 1552}, {301, 1100, 600},
		{130, 2100, 70}, {1552, 40, 300}, {64, 64, 1030},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var cases []*gemmCase
	for i, s := range shapes {
		for tr := 0; tr < 4; tr++ {
			beta := []float32{0, 1, 0.25}[(i+tr)%3]
			cases = append(cases, newCase(rng, tr&1 != 0, tr&2 != 0, s[0], s[1], s[2], 0.75, beta, 1))
		}
	}
	forEachKernel(t, func(t *testing.T) {
		for _, tc := range cases {
			tc.check(t, tc.run())
		}
	})
}

func TestSgemmDegenerate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	// k == 0 and alpha == 0 reduce to C = beta*C, with beta == 0 clearing NaNs.
	for _, beta := range []float32{0, 1, -2} {
		tc := newCase(rng, false, false, 7, 9, 0, 1, beta, 2)
		tc.check(t, tc.run())
		tc = newCase(rng, true, true, 7, 9, 5, 0, beta, 2)
		tc.check(t, tc.run())
	}
	// m == 0 or n == 0 touch nothing, even with empty slices.
	Sgemm(false, false, 0, 5, 5, 1, nil, 5, make([]float32, 25), 5, 0, nil, 5)
	Sgemm(false, false, 5, 0, 5, 1, make([]float32, 25), 5, nil, 1, 0, nil, 1)
}

func TestSgemmDeterministicAcrossThreads(t *testing.T) {
	shapes := [][3]int{{301, 1100, 600}, {1552, 96, 530}, {20, 3000, 300}, {97, 97, 64}}
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, s := range shapes {
			for tr := 0; tr < 4; tr++ {
				tc := newCase(rng, tr&1 != 0, tr&2 != 0, s[0], s[1], s[2], 1, 0.5, 0)
				var ref []float32
				for _, nt := range []int{1, 2, 3, 8} {
					var c []float32
					withThreads(nt, func() { c = tc.run() })
					if ref == nil {
						ref = c
						continue
					}
					for i := range c {
						if math.Float32bits(c[i]) != math.Float32bits(ref[i]) {
							t.Fatalf("%v: threads=%d differs from threads=1 at %d: %x vs %x",
								tc, nt, i, math.Float32bits(c[i]), math.Float32bits(ref[i]))
						}
					}
				}
			}
		}
	})
}

// TestSgemmConcurrentCallers checks that concurrent calls (which fall back
// to serial execution while the pool is busy) are correct and give the same
// bits as an uncontended call.
func TestSgemmConcurrentCallers(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tc := newCase(rng, false, true, 200, 300, 150, 1, 0, 0)
	ref := tc.run()
	tc.check(t, ref)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 5; r++ {
				c := tc.run()
				for i := range c {
					if math.Float32bits(c[i]) != math.Float32bits(ref[i]) {
						errs <- fmt.Sprintf("concurrent result differs at %d", i)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestSgemmStridedBatched(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		shapes := [][4]int{{97, 97, 64, 16}, {5, 7, 3, 9}, {300, 200, 100, 2}, {33, 17, 40, 1}}
		for si, s := range shapes {
			m, n, k, batch := s[0], s[1], s[2], s[3]
			for tr := 0; tr < 4; tr++ {
				beta := []float32{0, 1, -0.5}[(si+tr)%3]
				cases := make([]*gemmCase, batch)
				for i := range cases {
					cases[i] = newCase(rng, tr&1 != 0, tr&2 != 0, m, n, k, 1.25, beta, 1)
				}
				// Lay the batch out with gaps between matrices.
				sa, sb, sc := len(cases[0].a)+3, len(cases[0].b)+5, len(cases[0].c0)+7
				a := make([]float32, batch*sa)
				b := make([]float32, batch*sb)
				c := make([]float32, batch*sc)
				for i, tc := range cases {
					copy(a[i*sa:], tc.a)
					copy(b[i*sb:], tc.b)
					copy(c[i*sc:], tc.c0)
				}
				tc0 := cases[0]
				for _, nt := range []int{1, 3} {
					cc := append([]float32(nil), c...)
					withThreads(nt, func() {
						SgemmStridedBatched(tc0.transA, tc0.transB, m, n, k, tc0.alpha, a, tc0.lda, sa, b, tc0.ldb, sb, tc0.beta, cc, tc0.ldc, sc, batch)
					})
					for i, tc := range cases {
						got := cc[i*sc : i*sc+len(tc.c0)]
						tc.check(t, got)
						// Bit-identical to the unbatched call.
						want := tc.run()
						for j := range want {
							if math.Float32bits(want[j]) != math.Float32bits(got[j]) {
								t.Fatalf("%v batch %d: differs from Sgemm at %d", tc, i, j)
							}
						}
					}
				}
			}
		}
	})
}

func TestSgemmZeroAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	big := newCase(rng, false, true, 300, 400, 300, 1, 0, 0)
	tall := newCase(rng, true, false, 600, 100, 64, 1, 0, 0) // packing fused into the sweeps
	ct := append([]float32(nil), tall.c0...)
	small := newCase(rng, true, false, 20, 30, 10, 1, 1, 0)
	cb := append([]float32(nil), big.c0...)
	cs := append([]float32(nil), small.c0...)
	const batch = 8
	ba := randSlice(rng, batch*97*64)
	bb := randSlice(rng, batch*97*64)
	bc := make([]float32, batch*97*97)
	calls := func() {
		Sgemm(big.transA, big.transB, big.m, big.n, big.k, 1, big.a, big.lda, big.b, big.ldb, 0, cb, big.ldc)
		Sgemm(small.transA, small.transB, small.m, small.n, small.k, 1, small.a, small.lda, small.b, small.ldb, 1, cs, small.ldc)
		Sgemm(tall.transA, tall.transB, tall.m, tall.n, tall.k, 1, tall.a, tall.lda, tall.b, tall.ldb, 0, ct, tall.ldc)
		SgemmStridedBatched(false, true, 97, 97, 64, 1, ba, 64, 97*64, bb, 64, 97*64, 0, bc, 97, 97*97, batch)
	}
	for _, nt := range []int{1, 2, 4} {
		withThreads(nt, func() {
			calls() // warm-up: workers started, buffers grown
			if n := testing.AllocsPerRun(20, calls); n != 0 {
				t.Errorf("threads=%d: %v allocations per run, want 0", nt, n)
			}
		})
	}
}

func TestSgemmPanicsOnShortSlices(t *testing.T) {
	expect := func(arg string, f func()) {
		t.Helper()
		defer func() {
			r := recover()
			if r == nil {
				t.Fatalf("no panic, want one naming %s", arg)
			}
			if !strings.Contains(fmt.Sprint(r), arg) {
				t.Fatalf("panic %q does not name %s", r, arg)
			}
		}()
		f()
	}
	buf := make([]float32, 100)
	expect("len(a)", func() { Sgemm(false, false, 10, 5, 11, 1, buf, 11, buf, 5, 0, buf, 5) })
	expect("len(b)", func() { Sgemm(false, true, 5, 11, 10, 1, buf, 10, buf, 10, 0, buf, 11) })
	expect("len(c)", func() { Sgemm(true, false, 11, 10, 5, 1, buf, 11, buf, 10, 0, buf, 10) })
	expect("lda", func() { Sgemm(false, false, 2, 2, 3, 1, buf, 2, buf, 2, 0, buf, 2) })
	expect("len(a)", func() {
		SgemmStridedBatched(false, false, 3, 3, 3, 1, buf, 3, 50, buf, 3, 9, 0, buf, 3, 9, 3)
	})
	expect("strideb", func() {
		SgemmStridedBatched(false, false, 3, 3, 3, 1, buf, 3, 9, buf, 3, -9, 0, buf, 3, 9, 3)
	})
}

// TestSgemmThreadCountChanges alternates thread counts between calls, so
// that workers from a wider call may still be polling or hold a stale
// wake-up when a narrower one starts, on shapes with shared and with fused
// packing; every result must match the single-threaded bits.
func TestSgemmThreadCountChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	cases := []*gemmCase{
		newCase(rng, true, false, 700, 100, 64, 1, 0, 0),  // one N block: fused packing
		newCase(rng, false, true, 150, 1100, 90, 1, 0, 0), // several N blocks: shared packing
	}
	refs := make([][]float32, len(cases))
	withThreads(1, func() {
		for i, tc := range cases {
			refs[i] = tc.run()
		}
	})
	for it := 0; it < 40; it++ {
		nt := []int{8, 2, 5, 3}[it%4]
		tc, ref := cases[it%2], refs[it%2]
		var c []float32
		withThreads(nt, func() { c = tc.run() })
		for i := range c {
			if math.Float32bits(c[i]) != math.Float32bits(ref[i]) {
				t.Fatalf("iteration %d threads=%d %v: differs at %d", it, nt, tc, i)
			}
		}
	}
}

// TestSgemmDirectMatchesPacked checks that reading panels in place (see
// plan.directA) gives exactly the bits of packing them: the strided
// kernel must do the packed kernel's arithmetic, operation for operation,
// and the partial panels, still packed, must line up with the in-place
// ones. The shapes cover M and N cuts, partial panels on both sides,
// several K blocks, a padded leading dimension and a stride beyond
// maxDirectStride (which must fall back to packing).
func TestSgemmDirectMatchesPacked(t *testing.T) {
	shapes := [][3]int{{128, 128, 700}, {97, 512, 600}, {300, 97, 530}, {14, 32, 17}, {15, 33, 300}, {1100, 40, 64}}
	rng := rand.New(rand.NewPCG(11, 12))
	defer func(d bool) { useDirect = d }(useDirect)
	for _, s := range shapes {
		for tr := 0; tr < 4; tr++ {
			tc := newCase(rng, tr&1 != 0, tr&2 != 0, s[0], s[1], s[2], 0.75, []float32{0, 1, 0.5}[tr%3], tr%2)
			for _, nt := range []int{1, 2, 3} {
				var packed, direct []float32
				withThreads(nt, func() {
					useDirect = false
					packed = tc.run()
					useDirect = true
					direct = tc.run()
				})
				for i := range packed {
					if math.Float32bits(packed[i]) != math.Float32bits(direct[i]) {
						t.Fatalf("%v threads=%d: in place %g, packed %g at %d", tc, nt, direct[i], packed[i], i)
					}
				}
				tc.check(t, direct)
			}
		}
	}
}
