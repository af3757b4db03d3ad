package cpu

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// bf16Patterns returns float32 bit patterns around every rounding
// boundary: for every top half (all signs, exponents and bf16 mantissas,
// so zeros, denormals, infinities and NaNs, quiet and signalling), the low
// halves 0, 1, 0x7fff (below the half), 0x8000 (the tie), 0x8001 (above)
// and 0xffff, plus random ones.
func bf16Patterns() []uint32 {
	rng := rand.New(rand.NewPCG(3, 4))
	var out []uint32
	for hi := range uint32(1 << 16) {
		for _, lo := range []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, rng.Uint32() & 0xffff} {
			out = append(out, hi<<16|lo)
		}
	}
	return out
}

// TestBF16Rounding: narrowBF16 (every vector variant, every tail) is
// round to nearest even on the bits, ties to even, denormals to bf16
// denormals, overflow to infinity, NaN quieted and still NaN, i.e. the
// bf16 GEMM's packing rounding (engine/cpu/gemm/bf16.go); widening is
// exact; and rounding is idempotent on everything it produces, the
// property that makes bf16 storage of a GEMM operand bit-exact.
func TestBF16Rounding(t *testing.T) {
	pats := bf16Patterns()
	src := make([]float32, len(pats))
	for i, u := range pats {
		src[i] = math.Float32frombits(u)
	}
	for _, c := range []struct {
		u    uint32
		want uint16
	}{
		{0x3f808000, 0x3f80}, // 1 + 2^-8: a tie, to even (down)
		{0x3f818000, 0x3f82}, // a tie, to even (up)
		{0x3f807fff, 0x3f80}, // below the half
		{0x3f808001, 0x3f81}, // above the half
		{0x7f7fffff, 0x7f80}, // the largest float32 overflows to +Inf
		{0xff7f8000, 0xff80}, // a tie at the largest bf16, to -Inf
		{0x7f800000, 0x7f80}, // +Inf
		{0x00008000, 0x0000}, // the smallest bf16 denormal's half: a tie, to 0
		{0x00018000, 0x0002}, // a denormal tie, up to even
		{0x807fffff, 0x8080}, // the largest negative denormal rounds to -2^-126
		{0x7f800001, 0x7fc0}, // a signalling NaN is quieted
		{0xffc12345, 0xffc1}, // a quiet NaN keeps its sign and top payload
	} {
		if got := roundBF16(math.Float32frombits(c.u)); got != c.want {
			t.Errorf("roundBF16(%#08x) = %#04x, want %#04x", c.u, got, c.want)
		}
	}
	for _, level := range []int{simdGo, simdAVX2, simdAVX512} {
		old := setSIMD(level)
		for _, off := range []int{0, 1, 7} { // vector prefixes and Go tails at every phase
			d := make([]uint16, len(src)-off)
			narrowBF16(d, src[off:])
			for i, h := range d {
				x := src[off+i]
				if want := roundBF16(x); h != want {
					setSIMD(old)
					t.Fatalf("SIMD level %d: narrow(%#08x) = %#04x, want %#04x", level, math.Float32bits(x), h, want)
				}
			}
			w := make([]float32, len(d))
			widenBF16s(w, d)
			for i, h := range d {
				if math.Float32bits(w[i]) != uint32(h)<<16 {
					setSIMD(old)
					t.Fatalf("SIMD level %d: widen(%#04x) = %#08x", level, h, math.Float32bits(w[i]))
				}
			}
		}
		setSIMD(old)
	}
	for h := range uint32(1 << 16) {
		x := widenBF16(uint16(h))
		if x != x && h&0x0040 == 0 {
			continue // a signalling bf16 NaN: rounding never produces one
		}
		if r := roundBF16(x); r != uint16(h) {
			t.Fatalf("roundBF16(widen(%#04x)) = %#04x: rounding is not idempotent", h, r)
		}
	}
}

// TestBF16OperandSpecials: a GEMM operand holding zeros of both signs,
// infinities, NaNs, denormals and values at rounding ties gives the same
// bits stored in bf16 as in float32, in the bf16 GEMM mode.
func TestBF16OperandSpecials(t *testing.T) {
	if !gemm.BF16Supported() {
		t.Skip("this CPU lacks AVX512_BF16: the bf16 GEMM mode cannot run here")
	}
	be, err := NewWithOptions(Options{Threads: 2, Gemm: GemmBF16})
	if err != nil {
		t.Fatal(err)
	}
	const m, n, k = 19, 17, 40
	rng := rand.New(rand.NewPCG(5, 6))
	specials := []uint32{0x80000000, 0, 0x7f800000, 0xff800000, 0x7fc00000, 0x00008000, 0x00400000, 0x807fffff, 0x3f808000, 0x3f818000, 0x7f7fffff}
	a, b := make([]float32, m*k), make([]float32, k*n)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
		if rng.IntN(8) == 0 {
			a[i] = math.Float32frombits(specials[rng.IntN(len(specials))])
		}
	}
	for i := range b {
		b[i] = float32(rng.NormFloat64())
		if rng.IntN(16) == 0 {
			b[i] = math.Float32frombits(specials[rng.IntN(len(specials))])
		}
	}
	run := func(dtA, dtB engine.DType) []float32 {
		A, B, C := be.Alloc(dtA, len(a)), be.Alloc(dtB, len(b)), be.Alloc(engine.F32, m*n)
		be.Upload(A, a)
		be.Upload(B, b)
		be.Gemm(engine.Gemm{M: m, N: n, K: k, Alpha: 1, A: A, Lda: k, B: B, Ldb: n, C: C, Ldc: n})
		out := make([]float32, m*n)
		be.Download(out, C)
		if err := be.Sync(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := run(engine.F32, engine.F32)
	nan := 0
	for _, dts := range [][2]engine.DType{{engine.BF16, engine.F32}, {engine.F32, engine.BF16}, {engine.BF16, engine.BF16}} {
		got := run(dts[0], dts[1])
		for i := range want {
			if want[i] != want[i] {
				nan++
			}
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
				t.Fatalf("A %v, B %v: C[%d] = %v, with float32 operands %v", dts[0], dts[1], i, got[i], want[i])
			}
		}
	}
	if nan == 0 || nan == 3*len(want) {
		t.Fatalf("%d NaN outputs of %d: the specials did not reach the product as intended", nan, 3*len(want))
	}
}

// TestBF16Misuse: an op that does not take bf16 panics naming itself and
// the buffer, and a BF16 GEMM output is refused the same way.
func TestBF16Misuse(t *testing.T) {
	be := New(1)
	x, y := be.Alloc(engine.BF16, 32), be.Alloc(engine.F32, 32)
	for name, op := range map[string]func(){
		"Axpby":           func() { be.Axpby(y, x, y, 1, 1) },
		"AddRMSNorm":      func() { be.AddRMSNorm(y, be.Alloc(engine.BF16, 2), y, nil, 2, 16, 1e-5) },
		"RMSNormBackward": func() { be.RMSNormBackward(x, y, y, be.Alloc(engine.F32, 2), 2, 16) },
		"SwiGLUBackward":  func() { be.SwiGLUBackward(y, x, y, 2, 8) },
		"LossHead":        func() { be.LossHead(engine.LossBufs{Logits: x}, engine.LossDims{B: 1, L: 2, V: 16}) },
	} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, name) || !strings.Contains(msg, "bf16") {
					t.Errorf("%s with a bf16 buffer: panic %q, want one naming the op and bf16", name, msg)
				}
			}()
			op()
		}()
	}
}
