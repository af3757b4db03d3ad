package gemm

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func skipNoBF16(t testing.TB) {
	t.Helper()
	if !BF16Supported() {
		t.Skip("this CPU lacks AVX512_BF16 (grep avx512_bf16 /proc/cpuinfo): the bf16 GEMM cannot run here")
	}
}

// minNormal32 is the smallest normal float32, 2^-126.
const minNormal32 = 0x1p-126

// flushDenormal returns x, or a zero of x's sign when x is a float32
// denormal: VDPBF16PS's DAZ (inputs) and FTZ (results) behaviour.
func flushDenormal(x float32) float32 {
	if x != 0 && math.Abs(float64(x)) < minNormal32 {
		return float32(math.Copysign(0, float64(x)))
	}
	return x
}

// bf16In is a bf16 input as VDPBF16PS reads it: denormals are zero.
func bf16In(h uint16) float64 {
	return float64(flushDenormal(bf16Float(h)))
}

// dpbf16Step is acc + a*b with one rounding (the product of two bf16
// values is exact in float64, and rounding the float64 FMA result to
// float32 is correctly rounded: float64 has more than 2*24+2 bits), then
// the result flushed if denormal.
func dpbf16Step(acc float32, a, b uint16) float32 {
	return flushDenormal(float32(math.FMA(bf16In(a), bf16In(b), float64(acc))))
}

// dpbf16Model is one 32-bit lane of VDPBF16PS as the Intel SDM specifies
// it: the accumulator read with DAZ, then the odd (high) pair element's
// product added, then the even one's, each addition an FMA rounded to
// nearest even and flushed to zero when denormal. TestDPBF16Model checks
// that the CPU agrees, on crafted cases that tell this apart from the
// alternatives (even first, one rounding for both products, no flushing)
// and on random bit patterns.
func dpbf16Model(acc float32, a, b uint32) float32 {
	acc = flushDenormal(acc)
	acc = dpbf16Step(acc, uint16(a>>16), uint16(b>>16))
	return dpbf16Step(acc, uint16(a), uint16(b))
}

func bfBits(x float32) uint16 { return uint16(math.Float32bits(x) >> 16) }

func sameFloat(x, y float32) bool {
	return math.Float32bits(x) == math.Float32bits(y) || (x != x && y != y)
}

// runDP runs one VDPBF16PS lane by lane through dpbf16ps and checks both
// register assignments against the model.
func runDP(t *testing.T, acc *[16]float32, a, b *[16]uint32, what string) {
	t.Helper()
	var out [32]float32
	dpbf16ps(&out, acc, a, b)
	for i := 0; i < 16; i++ {
		want := dpbf16Model(acc[i], a[i], b[i])
		for h := 0; h < 2; h++ {
			if got := out[16*h+i]; !sameFloat(got, want) {
				t.Fatalf("%s lane %d (encoding %d): acc %g (%08x) a %08x b %08x: got %g (%08x), model %g (%08x)",
					what, i, h, acc[i], math.Float32bits(acc[i]), a[i], b[i], got, math.Float32bits(got), want, math.Float32bits(want))
			}
		}
	}
}

func TestDPBF16Model(t *testing.T) {
	skipNoBF16(t)
	p2 := func(e int) float32 { return float32(math.Ldexp(1, e)) }
	pair := func(even, odd float32) uint32 { return uint32(bfBits(even)) | uint32(bfBits(odd))<<16 }
	// Crafted lanes: each expected value is what the model gives, and the
	// comment says what a different semantics would give instead.
	crafted := []struct {
		acc  float32
		a, b uint32
		want float32
		why  string
	}{
		{p2(24), pair(1, -1), pair(1, 1), p2(24), "odd first: 2^24-1+1; even first would give 2^24-1"},
		{p2(24), pair(-1, 1), pair(1, 1), p2(24) - 1, "odd first: (2^24+1 -> 2^24) - 1"},
		{p2(24), pair(1, 1), pair(1, 1), p2(24), "two roundings; one rounding of the exact sum would give 2^24+2"},
		{0, pair(p2(-63), p2(-63)), pair(p2(-63), p2(-64)), p2(-126), "2^-127 from the odd pair flushed before 2^-126 is added"},
		{p2(-126), pair(0, p2(-70)), pair(0, p2(-70)), p2(-126) + p2(-140), "the product is not flushed (fused multiply-add)"},
		{p2(-130), pair(0, p2(-60)), pair(0, p2(-60)), p2(-120), "denormal accumulator read as zero"},
		{1.5e-38, pair(math.Float32frombits(0x80220000), 0), pair(1, 0), 1.5e-38, "bf16 denormal read as zero"},
		{0, pair(-p2(-70), 0), pair(p2(-70), 0), float32(math.Copysign(0, -1)), "denormal result flushed to a signed zero"},
		{-p2(-126), pair(0, p2(-63)), pair(0, p2(-64)), 0, "-2^-127 flushed to -0, then -0 + (+0) = +0"},
		{1, pair(float32(math.Inf(1)), 0), pair(0, 0), float32(math.NaN()), "inf*0 is NaN"},
		{1, pair(p2(100), 0), pair(p2(100), 0), float32(math.Inf(1)), "overflow to inf"},
	}
	var acc [16]float32
	var a, b [16]uint32
	for i, c := range crafted {
		if m := dpbf16Model(c.acc, c.a, c.b); !sameFloat(m, c.want) {
			t.Fatalf("model, case %d (%s): %g, want %g", i, c.why, m, c.want)
		}
		acc[i], a[i], b[i] = c.acc, c.a, c.b
	}
	runDP(t, &acc, &a, &b, "crafted")

	rng := rand.New(rand.NewPCG(41, 42))
	for it := 0; it < 20000; it++ {
		for i := range acc {
			switch it % 3 {
			case 0: // any bit patterns: every exponent, NaN, inf, denormals
				acc[i] = math.Float32frombits(rng.Uint32())
				a[i], b[i] = rng.Uint32(), rng.Uint32()
			case 1: // values of like magnitude, where order and rounding show
				acc[i] = float32(rng.NormFloat64())
				a[i] = pair(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
				b[i] = pair(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
			default: // near the bottom of the normal range
				acc[i] = float32(rng.NormFloat64() * 1e-37)
				a[i] = pair(float32(rng.NormFloat64()*1e-19), float32(rng.NormFloat64()*1e-19))
				b[i] = pair(float32(rng.NormFloat64()*1e-19), float32(rng.NormFloat64()*1e-19))
			}
		}
		runDP(t, &acc, &a, &b, fmt.Sprintf("random %d", it))
	}
}

// kernelModel computes what a bf16 micro-kernel must produce: per element,
// the pair steps through dpbf16Model from a zero accumulator, then the
// epilogue with one rounding per operation.
func kernelModel(kc, mr, cols, ms, nr int, a, b []uint32, c []float32, ldc int, alpha, beta float32) {
	kp := (kc + 1) / 2
	for i := 0; i < mr; i++ {
		for j := 0; j < cols; j++ {
			var acc float32
			for p := 0; p < kp; p++ {
				acc = dpbf16Model(acc, a[p*ms+i], b[p*nr+j])
			}
			t := float32(alpha * acc)
			if beta == 0 {
				c[i*ldc+j] = t
			} else {
				c[i*ldc+j] = float32(beta*c[i*ldc+j]) + t
			}
		}
	}
}

// TestBF16KernelModel runs the micro-kernels on random packed panels (odd
// and even kc, kc = 0 included) and compares every bit of C, and the
// padding around the tile, with kernelModel.
func TestBF16KernelModel(t *testing.T) {
	skipNoBF16(t)
	k := bf16Kernel
	rng := rand.New(rand.NewPCG(43, 44))
	for it := 0; it < 300; it++ {
		kc := []int{0, 1, 2, 3, 7, 16, 33, 64, 255, 512}[it%10]
		kp := (kc + 1) / 2
		a := make([]uint32, max(kp, 1)*k.ms)
		b := make([]uint32, max(kp, 1)*k.nr)
		for i := range a {
			a[i] = pairOf(rng)
		}
		for i := range b {
			b[i] = pairOf(rng)
		}
		ab := [][2]float32{{1, 0}, {1, 1}, {-0.75, 0.5}, {2, -1}}[it%4]
		ldc := k.nr + rng.IntN(5)
		c0 := randSlice(rng, k.mr*ldc+8)
		for _, edge := range []bool{false, true} {
			fn, cols := k.fn, k.nr
			if edge {
				fn, cols = k.edge, k.edgeN
			}
			got := append([]float32(nil), c0...)
			want := append([]float32(nil), c0...)
			af := asFloats(a)
			bf := asFloats(b)
			fn(kc, &af[0], &bf[0], &got[0], ldc, ab[0], ab[1])
			kernelModel(kc, k.mr, cols, k.ms, k.nr, a, b, want, ldc, ab[0], ab[1])
			for i := range got {
				if !sameFloat(got[i], want[i]) {
					t.Fatalf("kc=%d edge=%v alpha=%g beta=%g ldc=%d: c[%d] (row %d col %d) = %g, model %g",
						kc, edge, ab[0], ab[1], ldc, i, i/ldc, i%ldc, got[i], want[i])
				}
			}
		}
	}
}

// pairOf returns a random pair of bf16 values of mixed sign and magnitude.
func pairOf(rng *rand.Rand) uint32 {
	e := float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(9)-4)))
	o := float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(9)-4)))
	return pairBF16(e, o)
}

func asFloats(u []uint32) []float32 {
	f := make([]float32, len(u))
	for i, v := range u {
		f[i] = math.Float32frombits(v)
	}
	return f
}

// TestRoundBF16 checks the rounding against math/big's round to nearest
// even at 8 bits of precision over the normal range, and the special
// cases: denormals round on their bits as torch does, overflow gives
// infinity, NaN stays NaN.
func TestRoundBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(45, 46))
	check := func(x float32) {
		got := bf16Float(roundBF16(x))
		if x != x {
			if got == got {
				t.Fatalf("roundBF16(NaN %08x) = %g", math.Float32bits(x), got)
			}
			return
		}
		ax := math.Abs(float64(x))
		if ax < minNormal32 || math.IsInf(float64(x), 0) {
			return // checked below
		}
		f := new(big.Float).SetMode(big.ToNearestEven).SetPrec(8).SetFloat64(float64(x))
		w, _ := f.Float64()
		if math.Abs(w) > math.MaxFloat32 || (math.Abs(w) == 0x1p128) {
			w = math.Inf(int(math.Copysign(1, w)))
		}
		if float64(got) != w {
			t.Fatalf("roundBF16(%g = %08x) = %g, want %g", x, math.Float32bits(x), got, w)
		}
	}
	for it := 0; it < 200000; it++ {
		check(math.Float32frombits(rng.Uint32()))
	}
	// Ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 (rounds to 1, even),
	// 1 + 3*2^-8 halfway between 1 + 2^-7 and 1 + 2^-6 (rounds up, even).
	for _, c := range []struct{ x, want float32 }{
		{1 + 0x1p-8, 1}, {1 + 3*0x1p-8, 1 + 0x1p-6}, {-(1 + 0x1p-8), -1},
		{math.MaxFloat32, float32(math.Inf(1))},
		{math.Float32frombits(0x00012345), math.Float32frombits(0x00010000)},
		{math.Float32frombits(0x007fffff), math.Float32frombits(0x00800000)},
		{float32(math.Inf(-1)), float32(math.Inf(-1))},
	} {
		check(c.x)
		if got := bf16Float(roundBF16(c.x)); got != c.want {
			t.Fatalf("roundBF16(%g) = %g, want %g", c.x, got, c.want)
		}
	}
	check(float32(math.NaN()))
	check(math.Float32frombits(0xff800001)) // signalling NaN: the payload's top bits are zero
}

// TestPackPairsVectorMatchesScalar checks the AVX-512 bf16 packing against
// the Go loops bit for bit (NaN, infinities, denormals and ties included),
// for odd and even kc, and that nothing past the panel is written.
func TestPackPairsVectorMatchesScalar(t *testing.T) {
	skipNoBF16(t)
	vec := &kernel{vecPack: true, bf16: true}
	scalar := &kernel{bf16: true}
	rng := rand.New(rand.NewPCG(47, 48))
	specials := []float32{float32(math.NaN()), math.Float32frombits(0xff800001), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x00012345), math.Float32frombits(0x807fffff), 1 + 0x1p-8, 1 + 3*0x1p-8, math.MaxFloat32, 0, float32(math.Copysign(0, -1))}
	// noDenormals: without them, the transposing case converts whole
	// 32-float blocks with VCVTNE2PS2BF16 (NaN and infinities included);
	// with them, it rounds in integer arithmetic.
	fill := func(n int, noDenormals bool) []float32 {
		s := randSlice(rng, n)
		for i := range s {
			if rng.IntN(8) == 0 {
				v := specials[rng.IntN(len(specials))]
				if noDenormals && v != 0 && math.Abs(float64(v)) < minNormal32 {
					v = float32(math.Inf(1))
				}
				s[i] = v
			}
		}
		return s
	}
	for it := 0; it < 600; it++ {
		width := []int{14, 16, 16, 8}[it%4]
		rows := 1 + rng.IntN(width)
		if it%3 == 0 {
			rows = width
		}
		kc := 1 + rng.IntN(200)
		kp := (kc + 1) / 2
		ds := width + []int{0, 0, 16}[it%3]
		trans := it%2 == 0
		var src []float32
		ld := kc + rng.IntN(5)
		if trans {
			src = fill((rows-1)*ld+kc, it%4 == 2)
		} else {
			ld = rows + rng.IntN(5)
			src = fill((kc-1)*ld+rows, false)
		}
		n := (kp-1)*ds + width + 8
		got := make([]float32, n)
		want := make([]float32, n)
		for i := range got {
			got[i] = math.Float32frombits(0x7fc01234)
			want[i] = got[i]
		}
		if trans {
			packTransPairs(vec, got, src, ld, rows, width, kc, ds)
			packTransPairs(scalar, want, src, ld, rows, width, kc, ds)
		} else {
			packPairs(vec, got, src, ld, rows, width, kc, ds)
			packPairs(scalar, want, src, ld, rows, width, kc, ds)
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("trans=%v rows=%d width=%d kc=%d ld=%d ds=%d: dst[%d] = %08x, want %08x",
					trans, rows, width, kc, ld, ds, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
		// The scalar loops against the definition.
		for q := 0; q < kp; q++ {
			for i := 0; i < width; i++ {
				var w uint32
				if i < rows {
					at := func(qq int) float32 {
						if qq >= kc {
							return 0
						}
						if trans {
							return src[i*ld+qq]
						}
						return src[qq*ld+i]
					}
					w = pairBF16(at(2*q), at(2*q+1))
				}
				if g := math.Float32bits(want[q*ds+i]); g != w {
					t.Fatalf("scalar trans=%v: slot (%d,%d) = %08x, want %08x", trans, q, i, g, w)
				}
			}
		}
	}
}

// roundedCase returns a copy of tc whose A and B hold their bf16 roundings:
// its float64 reference is the exact result of the bf16 GEMM's inputs.
func roundedCase(tc *gemmCase) *gemmCase {
	r := *tc
	r.ref, r.refAbs = nil, nil
	round := func(s []float32) []float32 {
		out := make([]float32, len(s))
		for i, v := range s {
			out[i] = bf16Float(roundBF16(v))
		}
		return out
	}
	r.a, r.b = round(tc.a), round(tc.b)
	return &r
}

// runBF16 computes the case with SgemmBF16 on a fresh copy of C.
func (tc *gemmCase) runBF16() []float32 {
	c := append([]float32(nil), tc.c0...)
	SgemmBF16(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.a, tc.lda, tc.b, tc.ldb, tc.beta, c, tc.ldc)
	return c
}

var bf16EdgeDims = []int{1, 7, 17, 63, 65, 97}

// TestSgemmBF16EdgeShapes: every combination of the edge sizes in m, n and
// k, all four transpose cases, beta 0, 1 and other, 1 to 3 threads,
// against the float64 product of the bf16-rounded operands with the fp32
// GEMM's bound (gemmCase.check): only fp32 accumulation may differ.
func TestSgemmBF16EdgeShapes(t *testing.T) {
	skipNoBF16(t)
	rng := rand.New(rand.NewPCG(49, 50))
	params := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.75}}
	it := 0
	for _, m := range bf16EdgeDims {
		for _, n := range bf16EdgeDims {
			for _, k := range bf16EdgeDims {
				for tr := 0; tr < 4; tr++ {
					ab := params[it%len(params)]
					tc := newCase(rng, tr&1 != 0, tr&2 != 0, m, n, k, ab[0], ab[1], rng.IntN(3))
					withThreads(1+it%3, func() { roundedCase(tc).check(t, tc.runBF16()) })
					it++
				}
			}
		}
	}
}

// TestSgemmBF16LargeShapes covers several K blocks (an odd last one
// included), several N blocks and the engine's shapes.
func TestSgemmBF16LargeShapes(t *testing.T) {
	skipNoBF16(t)
	shapes := [][3]int{
		{1552, 33, 17}, {97, 1552, 5}, {5, 97, 1552}, {301, 1100, 1031},
		{130, 2100, 70}, {1552, 40, 300}, {64, 64, 1030}, {200, 512, 1553},
	}
	rng := rand.New(rand.NewPCG(51, 52))
	for i, s := range shapes {
		for tr := 0; tr < 4; tr++ {
			beta := []float32{0, 1, 0.25}[(i+tr)%3]
			tc := newCase(rng, tr&1 != 0, tr&2 != 0, s[0], s[1], s[2], 0.75, beta, 1)
			roundedCase(tc).check(t, tc.runBF16())
		}
	}
}

func TestSgemmBF16DeterministicAcrossThreads(t *testing.T) {
	skipNoBF16(t)
	shapes := [][3]int{{301, 1100, 601}, {1552, 96, 530}, {20, 3000, 300}, {97, 97, 64}, {512, 1536, 1552}}
	rng := rand.New(rand.NewPCG(53, 54))
	for _, s := range shapes {
		for tr := 0; tr < 4; tr++ {
			tc := newCase(rng, tr&1 != 0, tr&2 != 0, s[0], s[1], s[2], 1, 0.5, 0)
			var ref []float32
			for _, nt := range []int{1, 2, 3, 8} {
				var c []float32
				withThreads(nt, func() { c = tc.runBF16() })
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
}

func TestSgemmBF16StridedBatched(t *testing.T) {
	skipNoBF16(t)
	rng := rand.New(rand.NewPCG(55, 56))
	shapes := [][4]int{{97, 97, 64, 16}, {5, 7, 3, 9}, {300, 200, 101, 2}, {33, 17, 40, 1}, {65, 63, 97, 5}}
	for si, s := range shapes {
		m, n, k, batch := s[0], s[1], s[2], s[3]
		for tr := 0; tr < 4; tr++ {
			beta := []float32{0, 1, -0.5}[(si+tr)%3]
			cases := make([]*gemmCase, batch)
			for i := range cases {
				cases[i] = newCase(rng, tr&1 != 0, tr&2 != 0, m, n, k, 1.25, beta, 1)
			}
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
					SgemmStridedBatchedBF16(tc0.transA, tc0.transB, m, n, k, tc0.alpha, a, tc0.lda, sa, b, tc0.ldb, sb, tc0.beta, cc, tc0.ldc, sc, batch)
				})
				for i, tc := range cases {
					got := cc[i*sc : i*sc+len(tc.c0)]
					roundedCase(tc).check(t, got)
					want := tc.runBF16()
					for j := range want {
						if math.Float32bits(want[j]) != math.Float32bits(got[j]) {
							t.Fatalf("%v batch %d: differs from SgemmBF16 at %d", tc, i, j)
						}
					}
				}
			}
		}
	}
}

// TestSgemmBF16NonFinite: a NaN in A spoils its row of C only; an infinity
// in the last k step of an odd k meets the zero pad of the pair, which
// must not turn it into a NaN.
func TestSgemmBF16NonFinite(t *testing.T) {
	skipNoBF16(t)
	const m, n, k = 20, 40, 33
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	for i := range a {
		a[i] = 0.5
	}
	for i := range b {
		b[i] = 0.25
	}
	a[3*k+5] = float32(math.NaN())
	a[7*k+k-1] = float32(math.Inf(1))
	c := make([]float32, m*n)
	SgemmBF16(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			v := c[i*n+j]
			switch i {
			case 3:
				if v == v {
					t.Fatalf("C[3][%d] = %g, want NaN", j, v)
				}
			case 7:
				if !math.IsInf(float64(v), 1) {
					t.Fatalf("C[7][%d] = %g, want +Inf", j, v)
				}
			default:
				if want := float32(k) * 0.125; v != want {
					t.Fatalf("C[%d][%d] = %g, want %g", i, j, v, want)
				}
			}
		}
	}
}

func TestSgemmBF16ZeroAllocs(t *testing.T) {
	skipNoBF16(t)
	rng := rand.New(rand.NewPCG(57, 58))
	big := newCase(rng, false, true, 300, 400, 301, 1, 0, 0)
	tall := newCase(rng, true, false, 600, 100, 64, 1, 0, 0)
	cb := append([]float32(nil), big.c0...)
	ct := append([]float32(nil), tall.c0...)
	const batch = 8
	ba := randSlice(rng, batch*97*64)
	bb := randSlice(rng, batch*97*64)
	bc := make([]float32, batch*97*97)
	calls := func() {
		SgemmBF16(big.transA, big.transB, big.m, big.n, big.k, 1, big.a, big.lda, big.b, big.ldb, 0, cb, big.ldc)
		SgemmBF16(tall.transA, tall.transB, tall.m, tall.n, tall.k, 1, tall.a, tall.lda, tall.b, tall.ldb, 0, ct, tall.ldc)
		SgemmStridedBatchedBF16(false, true, 97, 97, 64, 1, ba, 64, 97*64, bb, 64, 97*64, 0, bc, 97, 97*97, batch)
	}
	for _, nt := range []int{1, 2} {
		withThreads(nt, func() {
			calls()
			if n := testing.AllocsPerRun(10, calls); n != 0 {
				t.Errorf("threads=%d: %v allocations per run, want 0", nt, n)
			}
		})
	}
}

// mlpTShapes are the token-mixing products of the Sudoku mlp_t step (B 16,
// H 512, S 97, It 512), where K, N or M is the short sequence: forward
// up and down, the backward products of down, and those of up (N = 97,
// computed transposed: see swap.go).
var mlpTShapes = []benchShape{
	{"mlpt_up_NT_8192x1024x97", false, true, 8192, 1024, 97, 1},
	{"mlpt_down_NT_8192x97x512", false, true, 8192, 97, 512, 1},
	{"mlpt_dX_NN_8192x512x97", false, false, 8192, 512, 97, 1},
	{"mlpt_dW_TN_97x512x8192", true, false, 97, 512, 8192, 1},
	{"mlpt_dXup_NN_8192x97x1024", false, false, 8192, 97, 1024, 1},
	{"mlpt_dWup_TN_1024x97x8192", true, false, 1024, 97, 8192, 1},
}

// BenchmarkSgemmPrecision times Sgemm and SgemmBF16's two kernels on the
// engine's shapes (benchShapes and mlpTShapes), one after the other per
// shape, so that with -count N they alternate on the shared machine;
// GFLOP/s counts 2mnk per call. fp32 reports %peak against the fp32 FMA
// peak (peakGFLOP/s). bf16 (the VDPBF16PS kernel) and bf16fma (the same
// results on fp32 FMAs, see bf16fma.go) report %bf16peak against the bf16
// peak, bf16peakGFLOP/s: the higher of the FMA peak and the VDPBF16PS
// peak (dpbf16peakGFLOP/s), either being a way to compute the bf16 GEMM's
// bits (BF16GEMMPeak). Each peak is the concurrent throughput of the
// benchmark's threads (MeasurePeak), sampled in alternation with the GEMM
// calls (see peakMeter). SgemmBF16 runs whichever of the two bf16 kernels
// bf16Active picked.
//
// Each row also reports the work's rate per CPU second (cpuGFLOP/s: flops
// over the CPU time of the calls, all threads together) against the same
// peak per CPU second of one core (%corepeak, %bf16corepeak, see
// corePeakCPU): what the code achieves while its threads run, which other
// work on the cores does not move as it moves the wall-clock figures.
func BenchmarkSgemmPrecision(b *testing.B) {
	skipNoBF16(b)
	b.Logf("SgemmBF16 runs the %s kernel here", bf16Active().name)
	for _, s := range append(benchShapes, mlpTShapes...) {
		for _, prec := range []string{"fp32", "bf16", "bf16fma"} {
			b.Run(s.name+"/"+prec, func(b *testing.B) { benchPrecision(b, s, prec) })
		}
	}
}

func benchPrecision(b *testing.B, s benchShape, prec string) {
	rng := rand.New(rand.NewPCG(1, 1))
	ar, ac := s.m, s.k
	if s.transA {
		ar, ac = s.k, s.m
	}
	br, bc := s.k, s.n
	if s.transB {
		br, bc = s.n, s.k
	}
	sa, sb, sc := ar*ac, br*bc, s.m*s.n
	a := randSlice(rng, s.batch*sa)
	bm := randSlice(rng, s.batch*sb)
	c := make([]float32, s.batch*sc)
	kern, loops := activeKernel(), []*peakLoop{fmaPeak}
	switch prec {
	case "bf16":
		kern, loops = bf16Kernel, []*peakLoop{fmaPeak, dpbf16Peak}
	case "bf16fma":
		kern, loops = bf16FMAKernel, []*peakLoop{fmaPeak, dpbf16Peak}
	}
	call := func() {
		if s.batch == 1 {
			sgemm(kern, s.transA, s.transB, s.m, s.n, s.k, 1, a, ac, bm, bc, 0, c, s.n)
			return
		}
		sgemmStridedBatched(kern, s.transA, s.transB, s.m, s.n, s.k, 1, a, ac, sa, bm, bc, sb, 0, c, s.n, sc, s.batch)
	}
	call()
	nt := min(int(threads.Load()), runtime.GOMAXPROCS(0))
	// The CPU time of the calls: the calling thread's alone (pinned) on
	// one thread, the whole process's on several.
	clock := processCPU
	if nt == 1 {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		clock = threadCPU
	}
	var pms []*peakMeter
	for _, l := range loops {
		pm := newPeakMeterOf(l, nt)
		pm.clock = clock
		pms = append(pms, pm)
	}
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	t0 := clock()
	for i := 0; i < b.N; i++ {
		call()
		for _, pm := range pms {
			pm.maybeSample(b, &cpu, &t0)
		}
	}
	cpu += clock() - t0
	flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(s.batch)
	gf := flops * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(gf, "GFLOP/s")
	if prec == "fp32" {
		pms[0].report(b, gf)
		if haveThreadCPU {
			reportCPU(b, fmaPeak, flops*float64(b.N), cpu)
		}
		return
	}
	fma, dp := pms[0].peak(), pms[1].peak()
	b.ReportMetric(fma, "peakGFLOP/s")
	b.ReportMetric(dp, "dpbf16peakGFLOP/s")
	if peak := BF16GEMMPeak(fma, dp); peak > 0 {
		b.ReportMetric(peak, "bf16peakGFLOP/s")
		b.ReportMetric(100*gf/peak, "%bf16peak")
	}
	if haveThreadCPU {
		cgf := flops * float64(b.N) / cpu.Seconds() / 1e9
		b.ReportMetric(cgf, "cpuGFLOP/s")
		if core := BF16GEMMPeak(corePeakCPU(fmaPeak), corePeakCPU(dpbf16Peak)); core > 0 {
			b.ReportMetric(100*cgf/core, "%bf16corepeak")
		}
	}
}
