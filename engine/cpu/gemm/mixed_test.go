package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// bf16Operand rounds x to bf16 bit patterns (as a bf16 store would) and
// sprinkles, when special, about one value in 64 with patterns that need
// care when widened: zeros of both signs, bf16 denormals, the largest
// finite values, infinities, quiet and signalling NaNs. It returns the
// patterns and their widened float32 values.
func bf16Operand(rng *rand.Rand, x []float32, special bool) ([]uint16, []float32) {
	h := make([]uint16, len(x))
	w := make([]float32, len(x))
	specials := []uint16{0x0000, 0x8000, 0x0001, 0x807f, 0x0040, 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0xff81}
	for i, v := range x {
		h[i] = roundBF16(v)
		if special && rng.IntN(64) == 0 {
			h[i] = specials[rng.IntN(len(specials))]
		}
		w[i] = bf16Float(h[i])
	}
	return h, w
}

// bf16Kernels returns the bf16 kernels whose packing can run here, each
// with its vector packing and with the Go loops.
func bf16Kernels(t *testing.T) []*kernel {
	var ks []*kernel
	for _, k := range []*kernel{bf16Kernel, bf16FMAKernel} {
		if k == nil {
			continue
		}
		scalar := *k
		scalar.vecPack = false
		scalar.name += "-scalar"
		ks = append(ks, &scalar)
		if vecPackUsable() {
			ks = append(ks, k)
		}
	}
	if len(ks) == 0 {
		t.Skip("no bf16 kernel on this architecture")
	}
	return ks
}

// TestPackBF16MatchesWidened: the panels packed from bf16 operands
// (packATiles16, packBPanels16) are, bit for bit and including the parts
// of the buffer they leave alone, those packed from the widened operands,
// for both bf16 formats, vector and Go packing, every transpose case,
// partial panels, odd and even K blocks over several chunks, and special
// values.
func TestPackBF16MatchesWidened(t *testing.T) {
	for _, kern := range bf16Kernels(t) {
		rng := rand.New(rand.NewPCG(71, 72))
		for it := 0; it < 48; it++ {
			m, n, k := 1+rng.IntN(100), 1+rng.IntN(100), 1+rng.IntN(70)
			if it%3 == 2 {
				k = 100 + rng.IntN(300) // several chunks
			}
			tc := newCase(rng, it&1 != 0, it&2 != 0, m, n, k, 1, 0, rng.IntN(3))
			a16, aw := bf16Operand(rng, tc.a, it%2 == 0)
			b16, bw := bf16Operand(rng, tc.b, it%2 == 0)
			wide := &problem{transA: tc.transA, transB: tc.transB, m: m, n: n, k: k, a: aw, b: bw, lda: tc.lda, ldb: tc.ldb}
			narrow := &problem{transA: tc.transA, transB: tc.transB, m: m, n: n, k: k, a16: a16, b16: b16, lda: tc.lda, ldb: tc.ldb}
			pc := rng.IntN(k)
			kcb := 1 + rng.IntN(k-pc)
			mTiles, nTiles := ceilDiv(m, kern.mr), ceilDiv(n, kern.nr)
			t0, u0 := rng.IntN(mTiles), rng.IntN(nTiles)
			for _, which := range []string{"A", "B"} {
				size := mTiles * kern.ms * kcb
				if which == "B" {
					size = nTiles * kern.nr * kcb
				}
				got, want := make([]float32, size), make([]float32, size)
				for i := range got {
					got[i] = math.Float32frombits(0x7fbadbad)
					want[i] = got[i]
				}
				if which == "A" {
					narrow.packATiles(kern, got, t0, mTiles, pc, kcb)
					wide.packATiles(kern, want, t0, mTiles, pc, kcb)
				} else {
					narrow.packBPanels(kern, got, 0, u0, nTiles, pc, kcb)
					wide.packBPanels(kern, want, 0, u0, nTiles, pc, kcb)
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s: %s %v pc=%d kcb=%d: packed[%d] = %08x from bf16, %08x widened", kern.name, which, tc, pc, kcb, i,
							math.Float32bits(got[i]), math.Float32bits(want[i]))
					}
				}
			}
		}
	}
}

// mixedForms are the operand forms SgemmBF16Mixed is tested with: A, B or
// both as bf16.
var mixedForms = []struct {
	name     string
	a16, b16 bool // which operands are given as bf16
}{{"A16", true, false}, {"B16", false, true}, {"A16B16", true, true}}

// TestSgemmBF16MixedMatchesWidened: SgemmBF16Mixed (through solve, with
// each bf16 kernel) gives the bits SgemmBF16 gives on the widened
// operands, for every transpose case, operand form, edge and multi-block
// shape, 1 and 3 threads, with and without special values.
func TestSgemmBF16MixedMatchesWidened(t *testing.T) {
	skipNoBF16(t)
	rng := rand.New(rand.NewPCG(73, 74))
	shapes := [][3]int{{1, 1, 1}, {14, 32, 16}, {17, 33, 7}, {97, 97, 64}, {15, 65, 97}, {301, 100, 1031}, {64, 40, 1553}, {200, 512, 530}}
	for _, kern := range []*kernel{bf16Kernel, bf16FMAKernel} {
		for i, s := range shapes {
			for tr := 0; tr < 4; tr++ {
				ab := [][2]float32{{1, 0}, {0.75, 1}, {-1.5, 0.25}}[(i+tr)%3]
				tc := newCase(rng, tr&1 != 0, tr&2 != 0, s[0], s[1], s[2], ab[0], ab[1], tr%2)
				a16, aw := bf16Operand(rng, tc.a, i%2 == 1)
				b16, bw := bf16Operand(rng, tc.b, i%2 == 1)
				for _, f := range mixedForms {
					for _, nt := range []int{1, 3} {
						name := fmt.Sprintf("%s %s %v threads=%d", kern.name, f.name, tc, nt)
						want := append([]float32(nil), tc.c0...)
						got := append([]float32(nil), tc.c0...)
						a, bb := tc.a, tc.b
						var x16, y16 []uint16
						if f.a16 {
							a, x16 = nil, a16
						}
						if f.b16 {
							bb, y16 = nil, b16
						}
						wa, wb := tc.a, tc.b
						if f.a16 {
							wa = aw
						}
						if f.b16 {
							wb = bw
						}
						withThreads(nt, func() {
							sgemm(kern, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, wa, tc.lda, wb, tc.ldb, tc.beta, want, tc.ldc)
							pr := mixedProblem(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, x16, tc.lda, bb, y16, tc.ldb, tc.beta, got, tc.ldc)
							solve(kern, &pr)
						})
						sameBits(t, name, got, want)
					}
				}
			}
		}
	}
}

// sameBits fails t at the first element whose bits differ.
func sameBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for j := range want {
		if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
			t.Fatalf("%s: c[%d] = %g (%08x) from bf16, %g (%08x) widened", name, j,
				got[j], math.Float32bits(got[j]), want[j], math.Float32bits(want[j]))
		}
	}
}

// TestSgemmStridedBatchedBF16Mixed: the batched entry point, through the
// kernel SgemmBF16 picks, gives the bits of SgemmStridedBatchedBF16 on the
// widened operands, for every transpose case and operand form, small
// matrices (spread whole over the workers) and large ones, 1 and 3
// threads.
func TestSgemmStridedBatchedBF16Mixed(t *testing.T) {
	skipNoBF16(t)
	rng := rand.New(rand.NewPCG(75, 76))
	shapes := [][4]int{{97, 97, 64, 4}, {5, 7, 3, 9}, {65, 63, 97, 5}, {33, 17, 40, 1}, {200, 130, 300, 2}}
	for i, s := range shapes {
		m, n, k, batch := s[0], s[1], s[2], s[3]
		for tr := 0; tr < 4; tr++ {
			transA, transB := tr&1 != 0, tr&2 != 0
			lda, ldb := k+1, n+2
			if transA {
				lda = m + 1
			}
			if transB {
				ldb = k + 2
			}
			ldc := n + 1
			sa, sb, sc := need(m, k, lda)+need(k, m, lda)+3, need(k, n, ldb)+need(n, k, ldb)+5, m*ldc+2
			a16, aw := bf16Operand(rng, randSlice(rng, batch*sa), i%2 == 0)
			b16, bw := bf16Operand(rng, randSlice(rng, batch*sb), i%2 == 0)
			af, bf := randSlice(rng, batch*sa), randSlice(rng, batch*sb)
			c0 := randSlice(rng, batch*sc)
			for _, f := range mixedForms {
				a, wa, x16 := af, af, []uint16(nil)
				if f.a16 {
					a, wa, x16 = nil, aw, a16
				}
				bb, wb, y16 := bf, bf, []uint16(nil)
				if f.b16 {
					bb, wb, y16 = nil, bw, b16
				}
				for _, nt := range []int{1, 3} {
					want := append([]float32(nil), c0...)
					got := append([]float32(nil), c0...)
					withThreads(nt, func() {
						SgemmStridedBatchedBF16(transA, transB, m, n, k, 1, wa, lda, sa, wb, ldb, sb, 0.5, want, ldc, sc, batch)
						SgemmStridedBatchedBF16Mixed(transA, transB, m, n, k, 1, a, x16, lda, sa, bb, y16, ldb, sb, 0.5, got, ldc, sc, batch)
					})
					sameBits(t, fmt.Sprintf("%dx%dx%d batch %d tA=%v tB=%v %s threads=%d", m, n, k, batch, transA, transB, f.name, nt), got, want)
				}
			}
		}
	}
	// The single-matrix entry point, likewise.
	tc := newCase(rng, false, false, 130, 70, 200, 1, 0, 1)
	a16, aw := bf16Operand(rng, tc.a, false)
	want := tc.runBF16WithA(aw)
	got := append([]float32(nil), tc.c0...)
	SgemmBF16Mixed(false, false, tc.m, tc.n, tc.k, tc.alpha, nil, a16, tc.lda, tc.b, nil, tc.ldb, tc.beta, got, tc.ldc)
	sameBits(t, "SgemmBF16Mixed "+tc.String(), got, want)
}

// runBF16WithA computes the case with SgemmBF16 and A replaced by a.
func (tc *gemmCase) runBF16WithA(a []float32) []float32 {
	c := append([]float32(nil), tc.c0...)
	SgemmBF16(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, tc.lda, tc.b, tc.ldb, tc.beta, c, tc.ldc)
	return c
}

// TestSgemmBF16MixedBothForms: an operand given in both forms is refused
// rather than one of them silently read.
func TestSgemmBF16MixedBothForms(t *testing.T) {
	skipNoBF16(t)
	defer func() {
		if recover() == nil {
			t.Fatal("SgemmBF16Mixed accepted A as float32 and bf16 at once")
		}
	}()
	c := make([]float32, 1)
	SgemmBF16Mixed(false, false, 1, 1, 1, 1, []float32{1}, []uint16{0x3f80}, 1, []float32{1}, nil, 1, 0, c, 1)
}
