package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// fmaLayout converts bf16 pair panels (pair step p of lane i at
// u[p*w+i]) for kc k steps into bf16FMAKernel's layout: row 2p holds the
// fp32 values of the odd elements, row 2p+1 those of the even ones, and
// an odd kc ends with the even elements of the last pair alone.
func fmaLayout(u []uint32, kc, w int) []float32 {
	f := make([]float32, max(kc, 1)*w)
	for q := 0; q < kc; q++ {
		p := q / 2
		for i := 0; i < w; i++ {
			pair := u[p*w+i]
			odd := q%2 == 0 && q+1 < kc // this row holds the odd step of pair p
			if odd {
				f[q*w+i] = bf16Float(uint16(pair >> 16))
			} else {
				f[q*w+i] = bf16Float(uint16(pair))
			}
		}
	}
	return f
}

// wideBF16 returns a random bf16 value over the whole exponent range,
// denormals, zeros of both signs and infinities included (no NaN: a NaN's
// payload may differ between the instructions).
func wideBF16(rng *rand.Rand) uint16 {
	switch rng.IntN(8) {
	case 0:
		return uint16(rng.IntN(1<<7)) | uint16(rng.IntN(2))<<15 // denormal or zero
	case 1:
		return bfBits(float32(math.Copysign(0x1p-63*(1+rng.Float64()), rng.NormFloat64()))) // products near 2^-126
	case 2:
		if rng.IntN(50) == 0 {
			return 0x7f80 | uint16(rng.IntN(2))<<15 // infinity
		}
	}
	return bfBits(float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(9)-4))))
}

// TestBF16FMAKernelModel: the fp32-FMA kernels give, bit for bit, what
// kernelModel (VDPBF16PS pair step by pair step) gives, on random panels
// with odd and even kc, kc = 0, and values from denormals to infinities.
func TestBF16FMAKernelModel(t *testing.T) {
	skipNoBF16(t)
	k := bf16FMAKernel
	rng := rand.New(rand.NewPCG(61, 62))
	for it := 0; it < 400; it++ {
		kc := []int{0, 1, 2, 3, 7, 16, 33, 64, 255, 512}[it%10]
		kp := (kc + 1) / 2
		a := make([]uint32, max(kp, 1)*k.ms)
		b := make([]uint32, max(kp, 1)*k.nr)
		for _, u := range [][]uint32{a, b} {
			for i := range u {
				if it%2 == 0 {
					u[i] = pairOf(rng)
				} else {
					u[i] = uint32(wideBF16(rng)) | uint32(wideBF16(rng))<<16
				}
				if kc%2 == 1 && i >= (kp-1)*len(u)/max(kp, 1) {
					u[i] &= 0xffff // the zero pad of an odd kc
				}
			}
		}
		ab := [][2]float32{{1, 0}, {1, 1}, {-0.75, 0.5}, {2, -1}}[it%4]
		ldc := k.nr + rng.IntN(5)
		c0 := randSlice(rng, k.mr*ldc+8)
		af, bf := fmaLayout(a, kc, k.ms), fmaLayout(b, kc, k.nr)
		for _, edge := range []bool{false, true} {
			fn, cols := k.fn, k.nr
			if edge {
				fn, cols = k.edge, k.edgeN
			}
			got := append([]float32(nil), c0...)
			want := append([]float32(nil), c0...)
			fn(kc, &af[0], &bf[0], &got[0], ldc, ab[0], ab[1])
			kernelModel(kc, k.mr, cols, k.ms, k.nr, a, b, want, ldc, ab[0], ab[1])
			for i := range got {
				if !sameFloat(got[i], want[i]) {
					t.Fatalf("it=%d kc=%d edge=%v alpha=%g beta=%g: c[%d] (row %d col %d) = %g (%08x), model %g (%08x)",
						it, kc, edge, ab[0], ab[1], i, i/ldc, i%ldc, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		}
	}
}

// TestRoundSwapPairs: the vector pass and the Go loop (a kernel packing
// with the scalar loops) round like roundBF16 (NaNs stay NaN, denormals
// round on their bits) and swap the rows of each pair, an odd last row
// staying in place.
func TestRoundSwapPairs(t *testing.T) {
	skipNoBF16(t)
	scalar := *bf16FMAKernel
	scalar.vecPack = false
	for _, kern := range []*kernel{bf16FMAKernel, &scalar} {
		roundSwapPairsCase(t, kern)
	}
}

func roundSwapPairsCase(t *testing.T, kern *kernel) {
	rng := rand.New(rand.NewPCG(63, 64))
	special := []float32{0, float32(math.Copysign(0, -1)), 0x1p-140, -0x1.fffffp-127, float32(math.Inf(1)),
		float32(math.NaN()), math.MaxFloat32, 1.00390625, 1.01171875, -3.39e38}
	for _, w := range []int{16, 32} {
		for _, rows := range []int{1, 2, 5, 16, 33} {
			src := make([]float32, rows*w)
			for i := range src {
				if rng.IntN(4) == 0 {
					src[i] = special[rng.IntN(len(special))]
				} else {
					src[i] = math.Float32frombits(rng.Uint32())
				}
			}
			got := append([]float32(nil), src...)
			roundSwapRows(kern, got, rows, w, w)
			for q := 0; q < rows; q++ {
				from := q ^ 1
				if from >= rows {
					from = q
				}
				for i := 0; i < w; i++ {
					want := bf16Float(roundBF16(src[from*w+i]))
					if g := got[q*w+i]; math.Float32bits(g) != math.Float32bits(want) && !(g != g && want != want) {
						t.Fatalf("vecPack=%v w=%d rows=%d: row %d lane %d = %08x, want %08x (from %08x)",
							kern.vecPack, w, rows, q, i, math.Float32bits(g), math.Float32bits(want), math.Float32bits(src[from*w+i]))
					}
				}
			}
		}
	}
}

// TestSgemmBF16KernelsAgree: SgemmBF16 gives the same bits whichever bf16
// kernel runs (so the one-time choice between them changes nothing but
// speed), on edge and multi-block shapes, every transpose case, with
// operands spanning denormals to large values, and 1 or 2 threads.
func TestSgemmBF16KernelsAgree(t *testing.T) {
	skipNoBF16(t)
	if bf16FMAKernel.kc != bf16Kernel.kc {
		t.Fatalf("bf16fma kc %d, bf16 kc %d: the K blocks, and so the results, would differ", bf16FMAKernel.kc, bf16Kernel.kc)
	}
	rng := rand.New(rand.NewPCG(65, 66))
	shapes := [][3]int{{1, 1, 1}, {17, 33, 7}, {97, 97, 64}, {15, 65, 97}, {301, 100, 1031}, {64, 40, 1553}, {200, 512, 530}}
	for i, s := range shapes {
		for tr := 0; tr < 4; tr++ {
			ab := [][2]float32{{1, 0}, {0.75, 1}, {-1.5, 0.25}}[(i+tr)%3]
			tc := newCase(rng, tr&1 != 0, tr&2 != 0, s[0], s[1], s[2], ab[0], ab[1], tr%2)
			if i%2 == 1 {
				for _, x := range [][]float32{tc.a, tc.b} {
					for j := range x {
						x[j] = bf16Float(wideBF16(rng)) * float32(1+rng.Float64()/64)
					}
				}
			}
			for _, nt := range []int{1, 2} {
				run := func(k *kernel) []float32 {
					c := append([]float32(nil), tc.c0...)
					withThreads(nt, func() {
						sgemm(k, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.a, tc.lda, tc.b, tc.ldb, tc.beta, c, tc.ldc)
					})
					return c
				}
				want, got := run(bf16Kernel), run(bf16FMAKernel)
				for j := range want {
					if !sameFloat(got[j], want[j]) {
						t.Fatalf("%s threads=%d: c[%d] = %g (%08x) with bf16fma, %g (%08x) with bf16",
							fmt.Sprintf("%dx%dx%d tA=%v tB=%v", s[0], s[1], s[2], tc.transA, tc.transB), nt,
							j, got[j], math.Float32bits(got[j]), want[j], math.Float32bits(want[j]))
					}
				}
			}
		}
	}
}

// TestBF16FMAKernelOddPad: with an odd kc, VDPBF16PS adds the pad product
// 0*0 = +0 before the last even step, which turns an accumulator of -0
// (here a tiny negative product flushed by FTZ, plus -0) into +0; the
// fp32-FMA kernels must do the same, or C gets -0 where the bf16 kernel
// gives +0.
func TestBF16FMAKernelOddPad(t *testing.T) {
	skipNoBF16(t)
	k := bf16FMAKernel
	const kc = 3
	tiny := uint32(bfBits(0x1p-70))
	// Pair 0: odd product 2^-70 * -2^-70 (flushed to -0), even product
	// 1 * -0; pair 1: the pad, and the even product 1 * -0.
	a := make([]uint32, 2*k.ms)
	b := make([]uint32, 2*k.nr)
	for i := range k.ms {
		a[i] = uint32(bfBits(1)) | tiny<<16
		a[k.ms+i] = uint32(bfBits(1))
	}
	negZero := uint32(0x8000)
	for j := range k.nr {
		b[j] = negZero | (tiny|0x8000)<<16
		b[k.nr+j] = negZero
	}
	af, bf := fmaLayout(a, kc, k.ms), fmaLayout(b, kc, k.nr)
	for _, edge := range []bool{false, true} {
		fn, cols := k.fn, k.nr
		if edge {
			fn, cols = k.edge, k.edgeN
		}
		got := make([]float32, k.mr*k.nr)
		want := make([]float32, k.mr*k.nr)
		fn(kc, &af[0], &bf[0], &got[0], k.nr, 1, 0)
		kernelModel(kc, k.mr, cols, k.ms, k.nr, a, b, want, k.nr, 1, 0)
		if math.Float32bits(want[0]) != 0 {
			t.Fatalf("model gives %08x, the case does not exercise the pad", math.Float32bits(want[0]))
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("edge=%v c[%d] = %08x, model %08x", edge, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
	}
}
