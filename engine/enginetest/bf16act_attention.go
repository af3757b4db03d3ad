package enginetest

import (
	"fmt"
	"math"
	"testing"

	"github.com/tinyrecursive/trm/engine"
)

// RunBF16ActAttention checks Rope, Attention and AttentionBackward of the
// backends f makes on BF16 operands (engine.BF16Activations): each must
// give the bits of the same op on the widened operands, a BF16 output
// rounded to nearest even. The ops take BF16 operands whatever the
// backend's storage options say, so the backend need not report
// StoresBF16Activations.
func RunBF16ActAttention(t *testing.T, f Factory) {
	testBF16ActAttention(t, newHarness(t, f))
}

// bf16ActAttnShapes are attention shapes with row tails (sequences that
// are no multiple of 4 or 16) and, at 130, two query blocks of the CPU
// backend's production blocking; head sizes of one vector, past one, and
// odd (rows of an odd number of bf16 elements: no 4-byte alignment).
var bf16ActAttnShapes = []struct{ batch, seq, heads, hd int }{
	{2, 37, 3, 16}, {2, 37, 2, 24}, {1, 97, 4, 16}, {1, 130, 2, 24}, {2, 7, 3, 5},
}

// testBF16ActAttention checks, on every shape and every mix of BF16 and
// float32 qkv and out: Rope (forward and inverse) on a BF16 qkv against
// the rounded rotation of its widened values; Attention's out (rounded
// when BF16) and lse against Attention on the widened qkv; and
// AttentionBackward's dqkv against AttentionBackward on the widened qkv
// and out. Every comparison is bit for bit.
func testBF16ActAttention(t *testing.T, h *harness) {
	be := h.be
	upAs := func(dt engine.DType, v []float32) engine.Buf {
		b := be.Alloc(dt, len(v))
		be.Upload(b, v)
		return b
	}
	// widened returns v as a buffer of dt holds it: rounded for BF16.
	widened := func(dt engine.DType, v []float32) []float32 {
		if dt != engine.BF16 {
			return v
		}
		w := make([]float32, len(v))
		for i, x := range v {
			w[i] = roundBF16(x)
		}
		return w
	}
	same := func(what string, got, want []float32) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: element %d is %v (%#08x), want %v (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
	nan := float32(math.NaN())
	dts := []engine.DType{engine.F32, engine.BF16}
	for _, c := range bf16ActAttnShapes {
		H := c.heads * c.hd
		shape := fmt.Sprintf("batch %d seq %d heads %d hd %d", c.batch, c.seq, c.heads, c.hd)
		x, dout := h.randn(c.batch*c.seq*3*H), h.randn(c.batch*c.seq*H)
		for i := range x {
			x[i] *= 1.5 // scores spread enough for the softmax to be peaked
		}

		// Rope on a BF16 qkv: the widened rows rotated in float32, rounded
		// (rope pairs the halves of a head: even head sizes only).
		if c.hd%2 == 0 {
			cos, sin := engine.RopeTables(c.seq, c.hd, 10000)
			cb, sb := h.up(cos), h.up(sin)
			xw := widened(engine.BF16, x)
			for _, inverse := range []bool{false, true} {
				ref, got := h.up(xw), upAs(engine.BF16, x)
				be.Rope(ref, cb, sb, c.batch, c.seq, c.heads, c.hd, inverse)
				be.Rope(got, cb, sb, c.batch, c.seq, c.heads, c.hd, inverse)
				same(fmt.Sprintf("Rope %s inverse %v, bf16 qkv", shape, inverse), h.down(got), widened(engine.BF16, h.down(ref)))
			}
		}

		for _, xdt := range dts {
			xw := widened(xdt, x)
			qkvRef, qkv := h.up(xw), upAs(xdt, x)
			// The float32 op on the widened qkv.
			outRef, lseRef := be.Alloc(engine.F32, c.batch*c.seq*H), be.Alloc(engine.F32, c.batch*c.heads*c.seq)
			be.Attention(outRef, lseRef, qkvRef, c.batch, c.seq, c.heads, c.hd)
			wantOut, wantLse := h.down(outRef), h.down(lseRef)
			for _, odt := range dts {
				name := fmt.Sprintf("%s, %v qkv, %v out", shape, xdt, odt)
				out, lse := be.Alloc(odt, c.batch*c.seq*H), be.Alloc(engine.F32, c.batch*c.heads*c.seq)
				be.Fill(out, nan) // every element must be written
				be.Fill(lse, nan)
				be.Attention(out, lse, qkv, c.batch, c.seq, c.heads, c.hd)
				gotOut := h.down(out)
				same("Attention out "+name, gotOut, widened(odt, wantOut))
				same("Attention lse "+name, h.down(lse), wantLse)

				// The backward from the out this op stored, against the
				// float32 op on the widened qkv and out.
				db := h.up(dout)
				dRef := be.Alloc(engine.F32, len(x))
				be.AttentionBackward(dRef, db, qkvRef, h.up(gotOut), lseRef, c.batch, c.seq, c.heads, c.hd)
				dx := be.Alloc(engine.F32, len(x))
				be.Fill(dx, nan)
				be.AttentionBackward(dx, db, qkv, out, lse, c.batch, c.seq, c.heads, c.hd)
				same("AttentionBackward dqkv "+name, h.down(dx), h.down(dRef))
			}
		}
	}
}
