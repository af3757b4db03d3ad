package gemm

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPackVectorMatchesScalar checks the AVX-512 packing routines against
// the scalar loops, bit for bit, including the zero fill past the valid
// rows or columns and the bytes past the panel (which must stay untouched).
func TestPackVectorMatchesScalar(t *testing.T) {
	if !vecPackUsable() {
		t.Skip("no AVX-512 packing on this machine")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for it := 0; it < 800; it++ {
		// Every other case packs in the fp32-FMA bf16 kernel's format,
		// rounded and with rows exchanged in pairs: the vector routines
		// do it in the packing pass, the scalar loops after it
		// (roundSwapRows), on values from denormals to NaNs.
		rs := it%2 == 1
		vec := &kernel{vecPack: true, bf16FMA: rs}
		scalar := &kernel{bf16FMA: rs}
		width := []int{14, 16, 6, 4}[it%4]
		rows := 1 + rng.IntN(width)
		if it%3 == 0 {
			rows = width
		}
		kc := 1 + rng.IntN(80)
		ld := kc + rng.IntN(5)
		ds := width + []int{0, 0, 16}[it%3]
		trans := it%4 < 2
		var src []float32
		if trans {
			src = randSlice(rng, (rows-1)*ld+kc)
		} else {
			ld = rows + rng.IntN(5)
			src = randSlice(rng, (kc-1)*ld+rows)
		}
		if rs {
			sprinkleSpecial(rng, src)
		}
		n := (kc-1)*ds + width + 8
		got := make([]float32, n)
		want := make([]float32, n)
		for i := range got {
			got[i] = float32(math.NaN())
			want[i] = float32(math.NaN())
		}
		if trans {
			packTrans(vec, got, src, ld, rows, width, kc, ds)
			packTrans(scalar, want, src, ld, rows, width, kc, ds)
		} else {
			packCopy(vec, got, src, ld, rows, width, kc, ds)
			packCopy(scalar, want, src, ld, rows, width, kc, ds)
		}
		if rs && !trans {
			// The contiguous case's vector routine leaves the format to
			// roundSwapRows, in either kernel.
			roundSwapRows(vec, got, kc, width, ds)
			roundSwapRows(scalar, want, kc, width, ds)
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("trans=%v rs=%v rows=%d width=%d kc=%d ld=%d ds=%d: dst[%d] = %v, want %v",
					trans, rs, rows, width, kc, ld, ds, i, got[i], want[i])
			}
		}
	}
}

// TestKernelSelection checks that the fastest variant the CPU supports is
// the default and that the portable kernel is always available.
func TestKernelSelection(t *testing.T) {
	if kernels[len(kernels)-1] != goKernel {
		t.Fatalf("portable kernel missing or not last")
	}
	if activeKernel() != kernels[0] {
		t.Fatalf("active kernel %s, want %s", activeKernel().name, kernels[0].name)
	}
	if vecPackUsable() && kernels[0].name != "avx512" {
		t.Fatalf("AVX-512 machine defaults to %s", kernels[0].name)
	}
	if _, ok := useKernel("no-such-kernel"); ok {
		t.Fatalf("useKernel accepted an unknown name")
	}
}

// BenchmarkPack reports the packing cost per element for the AVX-512
// routines in the shapes the 14x32 kernel uses, and for the scalar loops in
// the shapes of the AVX2 kernel.
func BenchmarkPack(b *testing.B) {
	if !vecPackUsable() {
		b.Skip("no AVX-512 packing on this machine")
	}
	rng := rand.New(rand.NewPCG(1, 1))
	const kc, ld = 256, 512
	src := randSlice(rng, kc*ld+32)
	dst := make([]float32, 32*kc)
	for _, c := range []struct {
		name            string
		trans           bool
		rows, width, ds int
	}{
		{"transA14", true, 14, 14, 14},
		{"transA14pad16", true, 14, 16, 16},
		{"transB16", true, 16, 16, 32},
		{"copyA14", false, 14, 14, 14},
		{"copyA14pad16", false, 14, 16, 16},
		{"copyB16", false, 16, 16, 32},
		{"scalar/transA6", true, 6, 6, 6},
		{"scalar/transB16", true, 16, 16, 16},
		{"scalar/copyA6", false, 6, 6, 6},
		{"scalar/copyB16", false, 16, 16, 16},
	} {
		vec := &kernel{vecPack: !strings.HasPrefix(c.name, "scalar/")}
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if c.trans {
					packTrans(vec, dst, src, ld, c.rows, c.width, kc, c.ds)
				} else {
					packCopy(vec, dst, src, ld, c.rows, c.width, kc, c.ds)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N)/float64(c.rows*kc), "ns/elem")
		})
	}
}

// TestPackPanelsVectorMatchesScalar checks the grouped panel packing
// (packATiles, packBPanels) of the default kernel against the same kernel
// with the scalar loops, for every transpose case and partial edges.
//
// The same for bf16FMAKernel, whose vector routines round and exchange
// rows while packing full panels (packCopyTilesRS, packTransAVX512) where
// the scalar loops pack first and then convert (roundSwapRows), on
// operands with denormals, ties, infinities and NaNs.
func TestPackPanelsVectorMatchesScalar(t *testing.T) {
	ks := []*kernel{kernels[0]}
	if bf16FMAKernel != nil && vecPackUsable() {
		ks = append(ks, bf16FMAKernel)
	}
	for _, vec := range ks {
		if !vec.vecPack {
			t.Logf("%s packs with the scalar loops", vec.name)
			continue
		}
		packPanelsVectorMatchesScalar(t, vec)
	}
}

func packPanelsVectorMatchesScalar(t *testing.T, vec *kernel) {
	scalar := *vec
	scalar.vecPack = false
	rng := rand.New(rand.NewPCG(23, 24))
	for it := 0; it < 60; it++ {
		m, n, k := 1+rng.IntN(200), 1+rng.IntN(200), 1+rng.IntN(70)
		if it%4 == 3 {
			k = 100 + rng.IntN(300) // several 16-step blocks
		}
		tc := newCase(rng, it&1 != 0, it&2 != 0, m, n, k, 1, 0, rng.IntN(3))
		if vec.bf16FMA {
			sprinkleSpecial(rng, tc.a)
			sprinkleSpecial(rng, tc.b)
		}
		p := &problem{transA: tc.transA, transB: tc.transB, m: m, n: n, k: k,
			a: tc.a, b: tc.b, lda: tc.lda, ldb: tc.ldb}
		pc := rng.IntN(k)
		kcb := 1 + rng.IntN(k-pc)
		mTiles := ceilDiv(m, vec.mr)
		nTiles := ceilDiv(n, vec.nr)
		t0, t1 := rng.IntN(mTiles), mTiles
		u0, u1 := rng.IntN(nTiles), nTiles
		for _, which := range []string{"A", "B"} {
			size := mTiles * vec.ms * kcb
			if which == "B" {
				size = nTiles * vec.nr * kcb
			}
			got := make([]float32, size)
			want := make([]float32, size)
			if which == "A" {
				p.packATiles(vec, got, t0, t1, pc, kcb)
				p.packATiles(&scalar, want, t0, t1, pc, kcb)
			} else {
				p.packBPanels(vec, got, 0, u0, u1, pc, kcb)
				p.packBPanels(&scalar, want, 0, u0, u1, pc, kcb)
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s: %s %v pc=%d kcb=%d: packed[%d] = %v (%08x), want %v (%08x)", vec.name, which, tc, pc, kcb, i,
						got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		}
	}
}

// sprinkleSpecial overwrites about one value in four of x with a value
// that rounding to bf16 treats specially: signed zeros, fp32 denormals,
// values halfway between two bf16 values (ties to even both ways), values
// that round up to infinity, infinities and NaNs.
func sprinkleSpecial(rng *rand.Rand, x []float32) {
	special := []float32{0, float32(math.Copysign(0, -1)), 0x1p-140, -0x1.fffffp-127, 1.00390625, 1.01171875,
		-3.39e38, math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	for i := range x {
		if rng.IntN(4) == 0 {
			x[i] = special[rng.IntN(len(special))]
		}
	}
}
