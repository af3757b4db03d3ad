package enginetest

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
)

// RunBF16ActOps checks the elementwise ops and the GEMM of the backends f
// makes on BF16 operands (engine.BF16Activations): AddRMSNorm,
// RMSNormBackward, SwiGLU, SwiGLUBackward, Copy2D, Transpose, Add, Add3
// and Gemm into a BF16 C. For every mix of BF16 and float32 operands each
// must give the bits of the same op on float32 buffers holding the
// widened values, a BF16 output rounded to nearest even. The ops take
// BF16 operands whatever the backend's storage options say, so the
// backend need not report StoresBF16Activations.
func RunBF16ActOps(t *testing.T, f Factory) {
	testBF16ActOps(t, newHarness(t, f))
}

// bf16ActCheck holds the helpers of testBF16ActOps.
type bf16ActCheck struct {
	t *testing.T
	h *harness
}

// vals returns n random values that bf16 holds exactly, so that a
// float32 buffer and a BF16 buffer given them hold the same values.
func (c bf16ActCheck) vals(n int) []float32 {
	v := c.h.randn(n)
	for i, x := range v {
		v[i] = roundBF16(x)
	}
	return v
}

// buf returns a buffer of dt holding v.
func (c bf16ActCheck) buf(dt engine.DType, v []float32) engine.Buf {
	b := c.h.be.Alloc(dt, len(v))
	c.h.be.Upload(b, v)
	return b
}

// as returns the values a buffer of dt holds after the float32 values v
// are stored in it: v rounded for BF16.
func (c bf16ActCheck) as(dt engine.DType, v []float32) []float32 {
	if dt != engine.BF16 {
		return v
	}
	w := make([]float32, len(v))
	for i, x := range v {
		w[i] = roundBF16(x)
	}
	return w
}

// same requires got and want to be equal bit for bit.
func (c bf16ActCheck) same(what string, got, want []float32) {
	c.t.Helper()
	if len(got) != len(want) {
		c.t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			c.t.Fatalf("%s: element %d is %v (%#08x), want %v (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// dtypeMixes returns every assignment of F32 or BF16 to the named
// operands, each with a name saying which are BF16.
func dtypeMixes(names ...string) (mixes [][]engine.DType, labels []string) {
	for m := 0; m < 1<<len(names); m++ {
		dts := make([]engine.DType, len(names))
		var bf []string
		for i := range names {
			dts[i] = engine.F32
			if m>>i&1 == 1 {
				dts[i] = engine.BF16
				bf = append(bf, names[i])
			}
		}
		label := "all float32"
		if len(bf) > 0 {
			label = "bf16 " + strings.Join(bf, ", ")
		}
		mixes, labels = append(mixes, dts), append(labels, label)
	}
	return mixes, labels
}

// testBF16ActOps checks each op on shapes with vector tails (lengths that
// are no multiple of 16), sizes split among several workers, and every
// mix of BF16 operands: the op's outputs against the float32 op on
// float32 copies of the inputs (bf16 values, so both see the same
// numbers), a BF16 output against the float32 result rounded; also Add
// and Add3 writing over an input, Copy2D with strides and on a single
// row, Transpose of batches, and Gemm into a BF16 C with beta 0 (C's NaNs
// ignored) and 0.5, batched or not, transposed or not, over float32 and
// BF16 A and B, leaving C's elements outside the product untouched.
func testBF16ActOps(t *testing.T, h *harness) {
	c := bf16ActCheck{t: t, h: h}
	be := h.be
	nan := float32(math.NaN())

	// AddRMSNorm: y, a and b (or no b) in every mix; y over a as well.
	for _, sh := range []struct{ rows, cols int }{{7, 45}, {100, 512}, {3, 16}} {
		n := sh.rows * sh.cols
		a, b := c.vals(n), c.vals(n)
		for _, withB := range []bool{true, false} {
			names := []string{"y", "a", "b"}
			if !withB {
				names = names[:2]
			}
			yRef, rRef := be.Alloc(engine.F32, n), be.Alloc(engine.F32, sh.rows)
			var bRef engine.Buf
			if withB {
				bRef = h.up(b)
			}
			be.AddRMSNorm(yRef, rRef, h.up(a), bRef, sh.rows, sh.cols, 1e-5)
			wantY, wantR := h.down(yRef), h.down(rRef)
			mixes, labels := dtypeMixes(names...)
			for mi, dts := range mixes {
				name := fmt.Sprintf("AddRMSNorm %dx%d b %v, %s", sh.rows, sh.cols, withB, labels[mi])
				y, r := be.Alloc(dts[0], n), be.Alloc(engine.F32, sh.rows)
				be.Fill(y, nan)
				var bb engine.Buf
				if withB {
					bb = c.buf(dts[2], b)
				}
				be.AddRMSNorm(y, r, c.buf(dts[1], a), bb, sh.rows, sh.cols, 1e-5)
				c.same(name+": y", h.down(y), c.as(dts[0], wantY))
				c.same(name+": rstd", h.down(r), wantR)
				if dts[0] != dts[1] {
					continue
				}
				// y written over a: each row read before it is stored.
				ya := c.buf(dts[1], a)
				be.AddRMSNorm(ya, r, ya, bb, sh.rows, sh.cols, 1e-5)
				c.same(name+", y over a: y", h.down(ya), c.as(dts[0], wantY))
				c.same(name+", y over a: rstd", h.down(r), wantR)
			}
		}

		// RMSNormBackward from a BF16 y.
		y, dy, rstd := c.vals(n), c.vals(n), h.randn(sh.rows)
		dxRef := be.Alloc(engine.F32, n)
		be.RMSNormBackward(dxRef, h.up(dy), h.up(y), h.up(rstd), sh.rows, sh.cols)
		dx := be.Alloc(engine.F32, n)
		be.Fill(dx, nan)
		be.RMSNormBackward(dx, h.up(dy), c.buf(engine.BF16, y), h.up(rstd), sh.rows, sh.cols)
		c.same(fmt.Sprintf("RMSNormBackward %dx%d, bf16 y: dx", sh.rows, sh.cols), h.down(dx), h.down(dxRef))
	}

	// SwiGLU and SwiGLUBackward: act (dgu) and gu in every mix.
	for _, sh := range []struct{ rows, inter int }{{7, 45}, {200, 100}, {2, 16}} {
		rows, I := sh.rows, sh.inter
		gu, dact := c.vals(rows*2*I), h.randn(rows*I)
		actRef, dguRef := be.Alloc(engine.F32, rows*I), be.Alloc(engine.F32, rows*2*I)
		be.SwiGLU(actRef, h.up(gu), rows, I)
		be.SwiGLUBackward(dguRef, h.up(dact), h.up(gu), rows, I)
		wantAct, wantDgu := h.down(actRef), h.down(dguRef)
		mixes, labels := dtypeMixes("out", "gu")
		for mi, dts := range mixes {
			name := fmt.Sprintf("%dx%d, %s", rows, I, labels[mi])
			act := be.Alloc(dts[0], rows*I)
			be.Fill(act, nan)
			be.SwiGLU(act, c.buf(dts[1], gu), rows, I)
			c.same("SwiGLU "+name+": act", h.down(act), c.as(dts[0], wantAct))
			dgu := be.Alloc(dts[0], rows*2*I)
			be.Fill(dgu, nan)
			be.SwiGLUBackward(dgu, h.up(dact), c.buf(dts[1], gu), rows, I)
			c.same("SwiGLUBackward "+name+": dgu", h.down(dgu), c.as(dts[0], wantDgu))
		}
	}

	// Copy2D: strided, dense, one long row (split among workers); the
	// destination's gaps keep their values.
	for _, sh := range []struct{ rows, cols, dStride, sStride int }{{5, 37, 40, 45}, {9, 16, 16, 16}, {1, 40003, 40003, 40003}, {300, 70, 77, 70}} {
		dn, sn := (sh.rows-1)*sh.dStride+sh.cols, (sh.rows-1)*sh.sStride+sh.cols
		src, dst0 := h.randn(sn), c.vals(dn)
		ref := h.up(dst0)
		be.Copy2D(ref, sh.dStride, h.up(src), sh.sStride, sh.rows, sh.cols)
		want := h.down(ref)
		mixes, labels := dtypeMixes("dst", "src")
		for mi, dts := range mixes {
			// A float32 source of unrounded values: into bf16 it rounds.
			wantD := want
			if dts[1] == engine.BF16 {
				r := h.up(dst0)
				be.Copy2D(r, sh.dStride, h.up(c.as(engine.BF16, src)), sh.sStride, sh.rows, sh.cols)
				wantD = h.down(r)
			}
			d := c.buf(dts[0], dst0)
			be.Copy2D(d, sh.dStride, c.buf(dts[1], src), sh.sStride, sh.rows, sh.cols)
			c.same(fmt.Sprintf("Copy2D %d rows of %d, strides %d %d, %s", sh.rows, sh.cols, sh.dStride, sh.sStride, labels[mi]), h.down(d), c.as(dts[0], wantD))
		}
	}

	// Transpose: batches, sizes that are no multiple of the tiles.
	for _, sh := range []struct{ batch, rows, cols int }{{3, 37, 45}, {1, 64, 32}, {2, 33, 1}, {1, 1, 70}, {2, 130, 97}} {
		n := sh.batch * sh.rows * sh.cols
		src := c.vals(n)
		ref := be.Alloc(engine.F32, n)
		be.Transpose(ref, h.up(src), sh.batch, sh.rows, sh.cols)
		want := h.down(ref)
		mixes, labels := dtypeMixes("dst", "src")
		for mi, dts := range mixes {
			d := be.Alloc(dts[0], n)
			be.Fill(d, nan)
			be.Transpose(d, c.buf(dts[1], src), sh.batch, sh.rows, sh.cols)
			c.same(fmt.Sprintf("Transpose %dx%dx%d, %s", sh.batch, sh.rows, sh.cols, labels[mi]), h.down(d), c.as(dts[0], want))
		}
	}

	// Add and Add3: every mix, and dst over a or over b.
	for _, n := range []int{45, 5003, 40007} {
		a, b, x := c.vals(n), c.vals(n), c.vals(n)
		r2 := be.Alloc(engine.F32, n)
		be.Add(r2, h.up(a), h.up(b))
		want2 := h.down(r2)
		mixes, labels := dtypeMixes("dst", "a", "b")
		for mi, dts := range mixes {
			name := fmt.Sprintf("Add n %d, %s", n, labels[mi])
			d := be.Alloc(dts[0], n)
			be.Fill(d, nan)
			be.Add(d, c.buf(dts[1], a), c.buf(dts[2], b))
			c.same(name, h.down(d), c.as(dts[0], want2))
			// dst over a (its dtype a's), then over b (b's).
			if dts[0] == dts[1] {
				A := c.buf(dts[1], a)
				be.Add(A, A, c.buf(dts[2], b))
				c.same(name+", dst over a", h.down(A), c.as(dts[0], want2))
			}
			if dts[0] == dts[2] {
				B := c.buf(dts[2], b)
				be.Add(B, c.buf(dts[1], a), B)
				c.same(name+", dst over b", h.down(B), c.as(dts[0], want2))
			}
		}
		fa, ok := be.(engine.FusedAdd3)
		if !ok {
			continue
		}
		r3 := be.Alloc(engine.F32, n)
		fa.Add3(r3, h.up(a), h.up(b), h.up(x))
		want3 := h.down(r3)
		mixes, labels = dtypeMixes("dst", "a", "b", "c")
		for mi, dts := range mixes {
			name := fmt.Sprintf("Add3 n %d, %s", n, labels[mi])
			d := be.Alloc(dts[0], n)
			be.Fill(d, nan)
			X := c.buf(dts[3], x)
			fa.Add3(d, c.buf(dts[1], a), c.buf(dts[2], b), X)
			c.same(name, h.down(d), c.as(dts[0], want3))
			if dts[0] == dts[1] {
				A := c.buf(dts[1], a)
				fa.Add3(A, A, c.buf(dts[2], b), X)
				c.same(name+", dst over a", h.down(A), c.as(dts[0], want3))
			}
			if dts[0] == dts[2] {
				B := c.buf(dts[2], b)
				fa.Add3(B, c.buf(dts[1], a), B, X)
				c.same(name+", dst over b", h.down(B), c.as(dts[0], want3))
			}
		}
	}

	testBF16ActGemm(c)
}

// testBF16ActGemm checks Gemm into a BF16 C against the same backend's
// Gemm into a float32 C holding the same values, rounded: in whatever
// GEMM precision the backend computes, over float32 and BF16 A and B,
// with a k of one K block of the CPU's GEMMs and of several.
func testBF16ActGemm(c bf16ActCheck) {
	h, be := c.h, c.h.be
	for _, sh := range []struct{ m, n, k, batch int }{{37, 29, 45, 1}, {17, 33, 9, 3}, {130, 96, 200, 1}, {1, 70, 16, 2}, {20, 40, 600, 2}} {
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			for _, beta := range []float32{0, 0.5} {
				ta, tb := tr[0], tr[1]
				lda, ldb, ldc := sh.k+1, sh.n, sh.n+3
				ar, br := sh.m, sh.k
				if ta {
					lda, ar = sh.m, sh.k
				}
				if tb {
					ldb, br = sh.k+2, sh.n
				}
				sa, sb, sc := ar*lda+3, br*ldb, sh.m*ldc+5
				a, b, c0 := c.vals(sa*sh.batch), c.vals(sb*sh.batch), c.vals(sc*sh.batch)
				if beta == 0 {
					// Never read with beta 0: a NaN must not leak into C.
					for i := 0; i < len(c0); i += 7 {
						c0[i] = float32(math.NaN())
					}
				}
				g := engine.Gemm{TransA: ta, TransB: tb, M: sh.m, N: sh.n, K: sh.k, Alpha: 0.75, Beta: beta,
					Lda: lda, StrideA: sa, Ldb: ldb, StrideB: sb, Ldc: ldc, StrideC: sc, Batch: sh.batch}
				ref := g
				ref.A, ref.B, ref.C = h.up(a), h.up(b), h.up(c0)
				be.Gemm(ref)
				want := c.as(engine.BF16, h.down(ref.C))
				mixes, labels := dtypeMixes("A", "B")
				for mi, dts := range mixes {
					got := g
					got.A, got.B, got.C = c.buf(dts[0], a), c.buf(dts[1], b), c.buf(engine.BF16, c0)
					be.Gemm(got)
					c.same(fmt.Sprintf("Gemm %dx%dx%d batch %d transA %v transB %v beta %v into bf16 C, %s", sh.m, sh.n, sh.k, sh.batch, ta, tb, beta, labels[mi]),
						h.down(got.C), want)
				}
			}
		}
	}
}
