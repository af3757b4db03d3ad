package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// swapKernels returns the kernels that compute narrow products
// transposed here (see swapped): the AVX-512 fp32 kernel and both bf16
// kernels, where the CPU runs them.
func swapKernels(t *testing.T) []*kernel {
	var ks []*kernel
	for _, k := range kernels {
		if k.vecPack {
			ks = append(ks, k)
		}
	}
	if BF16Supported() {
		ks = append(ks, bf16Kernel, bf16FMAKernel)
	}
	if len(ks) == 0 {
		t.Skip("no AVX-512: no kernel computes products transposed")
	}
	return ks
}

// swapShapes lie around the threshold of swapped: a short, ragged N
// against a long M (computed transposed), the same products with M and N
// exchanged and others just short of paying (computed directly). k spans
// one K block or several of each kernel; batch > 1 runs
// solveBatched.
var swapShapes = []struct {
	m, n, k, batch int
	swap           bool
}{
	{300, 97, 530, 1, true},
	{97, 300, 530, 1, false},
	{450, 33, 260, 1, true},
	{200, 11, 130, 1, true},
	{16, 2, 512, 1, true},
	{600, 20, 128, 1, true},
	{1000, 1, 140, 1, true},
	{600, 20, 127, 1, false},
	{130, 100, 1031, 1, false},
	{140, 97, 300, 3, true},
}

// swapRun computes pr with narrow products computed transposed or not,
// on nt threads, on a copy of c (and of c16 when given), and returns the
// copies.
func swapRun(kern *kernel, pr problem, c []float32, c16 []uint16, strideA, strideB, strideC, batch, nt int, swap bool) ([]float32, []uint16) {
	defer func(v bool) { useSwap = v }(useSwap)
	useSwap = swap
	if c != nil {
		pr.c = append([]float32(nil), c...)
	}
	if c16 != nil {
		pr.c16 = append([]uint16(nil), c16...)
	}
	withThreads(nt, func() {
		if batch == 1 {
			solve(kern, &pr)
			return
		}
		solveBatched(kern, &pr, strideA, strideB, strideC, batch)
	})
	return pr.c, pr.c16
}

// TestSwapMatchesDirect: a product computed transposed gives, bit for bit
// and leaving every element outside C's m x n alone, the result of the
// direct order (a NaN where it gives a NaN: see sameUpToNaN), with each kernel that can swap, every transpose case,
// alpha 1 and not, beta 0 (C's NaNs ignored), 1 and otherwise, one K
// block and several, batched and not, NaNs and infinities in the
// operands, float32 and bf16 operands, a float32 and a bf16 C, 1 and 3
// threads; and the shapes meant to be computed transposed are.
func TestSwapMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(91, 92))
	for _, kern := range swapKernels(t) {
		for si, s := range swapShapes {
			for tr := 0; tr < 4; tr++ {
				for bi, beta := range []float32{0, 1, 0.5} {
					alpha := []float32{1, -0.75}[(si+tr+bi)%2]
					tc := newCase(rng, tr&1 != 0, tr&2 != 0, s.m, s.n, s.k, alpha, beta, (si+tr)%2)
					sa, sb, sc := len(tc.a), len(tc.b), len(tc.c0)
					a, b := randSlice(rng, s.batch*sa), randSlice(rng, s.batch*sb)
					c := randSlice(rng, s.batch*sc)
					special := (si+tr+bi)%3 == 0
					if special {
						sprinkleSpecial(rng, a[:len(a)/8])
						sprinkleSpecial(rng, b[:len(b)/8])
					}
					if beta == 0 {
						for i := range c {
							if i%3 == 0 {
								c[i] = float32(math.NaN())
							}
						}
					}
					pr := problem{transA: tc.transA, transB: tc.transB, m: s.m, n: s.n, k: s.k, alpha: alpha, beta: beta,
						a: a, b: b, lda: tc.lda, ldb: tc.ldb, ldc: tc.ldc}
					if _, ok := pr.swapped(kern); ok != s.swap {
						t.Fatalf("%s %v: computed transposed = %v, want %v", kern.name, tc, ok, s.swap)
					}
					forms := []problem{pr}
					if kern.bf16 || kern.bf16FMA {
						// An operand as bf16 (the other float32), and a
						// bf16 C with its float32 scratch when k needs it.
						mixed := pr
						a16, _ := bf16Operand(rng, a, special)
						b16, _ := bf16Operand(rng, b, special)
						if tr%2 == 0 {
							mixed.a, mixed.a16 = nil, a16
						} else {
							mixed.b, mixed.b16 = nil, b16
						}
						forms = append(forms, mixed)
					}
					for fi, f := range forms {
						for _, nt := range []int{1, 3} {
							name := fmt.Sprintf("%s form %d %v batch %d threads %d", kern.name, fi, tc, s.batch, nt)
							want, _ := swapRun(kern, f, c, nil, sa, sb, sc, s.batch, nt, false)
							got, _ := swapRun(kern, f, c, nil, sa, sb, sc, s.batch, nt, true)
							sameUpToNaN(t, name, got, want)
							if fi == 0 {
								continue
							}
							c16, _ := bf16Operand(rng, c, false)
							var scratch []float32
							if s.k > kern.kc {
								scratch = make([]float32, len(c))
							}
							_, want16 := swapRun(kern, f, scratch, c16, sa, sb, sc, s.batch, nt, false)
							_, got16 := swapRun(kern, f, scratch, c16, sa, sb, sc, s.batch, nt, true)
							for j := range want16 {
								if got16[j] != want16[j] && (!isNaN16(got16[j]) || !isNaN16(want16[j])) {
									t.Fatalf("%s bf16 C: c16[%d] = %04x transposed, %04x direct", name, j, got16[j], want16[j])
								}
							}
						}
					}
				}
			}
		}
	}
}

// sameUpToNaN fails t at the first element whose bits differ, unless both
// are NaNs: where two NaNs meet in one element, which one propagates
// depends on the operand order of the instruction that combines them,
// and the transposed product reads A and B, and C and the tile, in other
// orders (as a partial tile, merged in Go, already does against a full
// one). Every other value, infinities and signed zeros included, is the
// same.
func sameUpToNaN(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for j := range want {
		g, w := got[j], want[j]
		if math.Float32bits(g) != math.Float32bits(w) && (g == g || w == w) {
			t.Fatalf("%s: c[%d] = %g (%08x) transposed, %g (%08x) direct", name, j, g, math.Float32bits(g), w, math.Float32bits(w))
		}
	}
}

// isNaN16 reports whether a bf16 bit pattern is a NaN.
func isNaN16(h uint16) bool { return h&0x7fff > 0x7f80 }

// TestSwapZeroAllocs: once warm, products computed transposed allocate
// nothing, float32 or bf16, with a bf16 C, batched or not, on one thread
// or several.
func TestSwapZeroAllocs(t *testing.T) {
	kerns := swapKernels(t)
	rng := rand.New(rand.NewPCG(93, 94))
	const m, n, k, batch = 700, 97, 600, 3
	a := randSlice(rng, batch*m*k)
	b := randSlice(rng, batch*n*k)
	c := make([]float32, batch*m*n)
	c16 := make([]uint16, batch*m*n)
	for _, kern := range kerns {
		pr := problem{transB: true, m: m, n: n, k: k, alpha: 1, a: a, b: b, c: c, lda: k, ldb: k, ldc: n}
		if _, ok := pr.swapped(kern); !ok {
			t.Fatalf("%s: %dx%dx%d is not computed transposed", kern.name, m, n, k)
		}
		calls := func() {
			p := pr
			solve(kern, &p)
			p = pr
			solveBatched(kern, &p, m*k, n*k, m*n, batch)
			if kern.bf16 || kern.bf16FMA {
				p = pr
				p.c16 = c16
				solve(kern, &p)
			}
		}
		for _, nt := range []int{1, 2} {
			withThreads(nt, func() {
				calls()
				if got := testing.AllocsPerRun(5, calls); got != 0 {
					t.Errorf("%s threads=%d: %v allocations per run, want 0", kern.name, nt, got)
				}
			})
		}
	}
}
