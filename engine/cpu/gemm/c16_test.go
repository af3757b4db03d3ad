package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestRoundTileMatchesGo: the vector roundTile gives the Go loop's bits,
// with and without beta, on every tail length, values at the rounding
// ties, denormals, infinities and NaNs, and leaves the elements past each
// row's cols alone.
func TestRoundTileMatchesGo(t *testing.T) {
	if !vecPackUsable() {
		t.Skip("no AVX-512: roundTile runs its Go loop only")
	}
	rng := rand.New(rand.NewPCG(81, 82))
	specials := []uint32{0x3f808000, 0x3f818000, 0x3f807fff, 0x7f7fffff, 0x00008000, 0x807fffff, 0x7fc00001, 0xff800001, 0x7f800000, 0x80000000}
	for _, beta := range []float32{0, 1, 0.5, -1.25} {
		for rows := 1; rows <= 3; rows++ {
			for cols := 1; cols <= 40; cols++ {
				ldd, ldt := cols+rng.IntN(5), cols+rng.IntN(5)
				tv := randSlice(rng, (rows-1)*ldt+cols)
				for i := range tv {
					if rng.IntN(8) == 0 {
						tv[i] = math.Float32frombits(specials[rng.IntN(len(specials))])
					}
				}
				d0 := make([]uint16, (rows-1)*ldd+cols+3)
				for i := range d0 {
					d0[i] = roundBF16(rng.Float32()*4 - 2)
				}
				got, want := append([]uint16(nil), d0...), append([]uint16(nil), d0...)
				roundTileAVX512(&got[0], ldd, &tv[0], ldt, rows, cols, beta)
				roundTileGo(want, ldd, tv, ldt, rows, cols, beta)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("beta %v, %d rows of %d (ld %d, %d): d[%d] = %04x, Go loop %04x", beta, rows, cols, ldd, ldt, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// c16Want is the result SgemmBF16MixedC16 must give: the float32 product
// into the widened c16 by the same kernel, each element of the m x n
// matrices rounded, the rest of c16 as it was.
func c16Want(kern *kernel, pr problem, c16 []uint16, strideA, strideB, strideC, batch int, nt int) []uint16 {
	c := make([]float32, len(c16))
	for i, h := range c16 {
		c[i] = bf16Float(h)
	}
	pr.c, pr.c16 = c, nil
	withThreads(nt, func() { solveBatched(kern, &pr, strideA, strideB, strideC, batch) })
	want := append([]uint16(nil), c16...)
	for bi := 0; bi < batch; bi++ {
		for i := 0; i < pr.m; i++ {
			for j := 0; j < pr.n; j++ {
				o := bi*strideC + i*pr.ldc + j
				want[o] = roundBF16(c[o])
			}
		}
	}
	return want
}

// TestSgemmBF16MixedC16: a bf16 C rounded tile by tile gives, bit for bit,
// the float32 product into the widened C rounded afterwards, with each
// bf16 kernel, float32 and bf16 operands, every transpose case, one K
// block (with no scratch) and several (the partial sums in the scratch),
// edge tiles, beta 0
// (C's NaNs ignored), 1 and otherwise, alpha 0 and k 0, 1 and 3 threads;
// the elements of C outside the product keep their bits.
func TestSgemmBF16MixedC16(t *testing.T) {
	skipNoBF16(t)
	rng := rand.New(rand.NewPCG(83, 84))
	shapes := [][3]int{{1, 1, 1}, {14, 32, 16}, {17, 33, 7}, {97, 97, 64}, {15, 65, 600}, {130, 100, 1031}, {200, 300, 512}, {5, 7, 0}}
	params := [][2]float32{{1, 0}, {0.75, 1}, {-1.5, 0.25}, {0, 0.5}}
	for _, kern := range []*kernel{bf16Kernel, bf16FMAKernel} {
		for i, s := range shapes {
			for tr := 0; tr < 4; tr++ {
				ab := params[(i+tr)%len(params)]
				tc := newCase(rng, tr&1 != 0, tr&2 != 0, s[0], s[1], s[2], ab[0], ab[1], tr%2)
				c16, _ := bf16Operand(rng, tc.c0, false)
				a16, _ := bf16Operand(rng, tc.a, i%2 == 1)
				f := mixedForms[(i+tr)%len(mixedForms)]
				a, x16 := tc.a, []uint16(nil)
				if f.a16 {
					a, x16 = nil, a16
				}
				for _, nt := range []int{1, 3} {
					name := fmt.Sprintf("%s %s %v threads=%d", kern.name, f.name, tc, nt)
					pr := mixedProblem(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, x16, tc.lda, tc.b, nil, tc.ldb, tc.beta, nil, tc.ldc)
					want := c16Want(kern, pr, c16, 0, 0, 0, 1, nt)
					got := append([]uint16(nil), c16...)
					pr.c, pr.c16 = nil, got
					if tc.k > kern.kc {
						pr.c = make([]float32, len(got))
					}
					withThreads(nt, func() { solve(kern, &pr) })
					for j := range want {
						if got[j] != want[j] {
							t.Fatalf("%s: c16[%d] = %04x, rounded float32 product %04x", name, j, got[j], want[j])
						}
					}
				}
			}
		}
	}
}

// TestC16Scratch: the float32 scratch is needed exactly when k spans
// several K blocks, and a missing one is refused rather than written
// through.
func TestC16Scratch(t *testing.T) {
	skipNoBF16(t)
	kc := bf16Active().kc
	if C16NeedsScratch(kc) || !C16NeedsScratch(kc+1) {
		t.Fatalf("C16NeedsScratch(%d) = %v, C16NeedsScratch(%d) = %v: want false, true", kc, C16NeedsScratch(kc), kc+1, C16NeedsScratch(kc+1))
	}
	defer func() {
		if recover() == nil {
			t.Fatal("SgemmBF16MixedC16 of several K blocks ran without its scratch")
		}
	}()
	k := kc + 1
	SgemmBF16MixedC16(false, false, 2, 2, k, 1, make([]float32, 2*k), nil, k, make([]float32, 2*k), nil, 2, 0, make([]uint16, 4), nil, 2)
}

// TestSgemmStridedBatchedBF16MixedC16: the exported entry points, through
// the kernel SgemmBF16 picks, batched (small matrices spread whole over
// the workers, and large ones) and not, match the float32 product
// rounded.
func TestSgemmStridedBatchedBF16MixedC16(t *testing.T) {
	skipNoBF16(t)
	rng := rand.New(rand.NewPCG(85, 86))
	for _, s := range [][4]int{{5, 7, 3, 9}, {65, 63, 97, 5}, {200, 130, 600, 2}, {97, 33, 40, 1}} {
		m, n, k, batch := s[0], s[1], s[2], s[3]
		for _, beta := range []float32{0, 0.5} {
			tc := newCase(rng, false, true, m, n, k, 1, beta, 1)
			sa, sb, sc := len(tc.a), len(tc.b), len(tc.c0)
			a := randSlice(rng, batch*sa)
			b16, _ := bf16Operand(rng, randSlice(rng, batch*sb), false)
			c16, _ := bf16Operand(rng, randSlice(rng, batch*sc), false)
			for _, nt := range []int{1, 3} {
				pr := mixedProblem(false, true, m, n, k, 1, a, nil, tc.lda, nil, b16, tc.ldb, beta, nil, tc.ldc)
				want := c16Want(bf16KernelOrPanic(), pr, c16, sa, sb, sc, batch, nt)
				got := append([]uint16(nil), c16...)
				var scratch []float32
				if C16NeedsScratch(k) {
					scratch = make([]float32, len(got))
				}
				withThreads(nt, func() {
					if batch == 1 {
						SgemmBF16MixedC16(false, true, m, n, k, 1, a, nil, tc.lda, nil, b16, tc.ldb, beta, got, scratch, tc.ldc)
						return
					}
					SgemmStridedBatchedBF16MixedC16(false, true, m, n, k, 1, a, nil, tc.lda, sa, nil, b16, tc.ldb, sb, beta, got, scratch, tc.ldc, sc, batch)
				})
				for j := range want {
					if got[j] != want[j] {
						t.Fatalf("%dx%dx%d batch %d beta %v threads %d: c16[%d] = %04x, rounded float32 product %04x", m, n, k, batch, beta, nt, j, got[j], want[j])
					}
				}
			}
		}
	}
}
