//go:build cudaemu

package emu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// These tests run each kernel, emulated on the CPU with the launch shapes
// the cuda backend uses (cuda/ops.go), against the CPU backend on random
// inputs with poisoned (NaN) outputs. Odd sizes exercise the masking.

var rng = rand.New(rand.NewPCG(5, 6))

func randn(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func nans(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

func clone[T any](v []T) []T { return append([]T(nil), v...) }

type tol struct{ abs, rel float64 }

var (
	opTol = tol{1e-5, 1e-4}
	exact = tol{}
)

func check[T float32 | float64 | int32](t *testing.T, name string, got, want []T, tl tol) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: length %d want %d", name, len(got), len(want))
	}
	scale := 1.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if d := math.Abs(g - w); !(d <= tl.abs*scale+tl.rel*math.Abs(w)) {
			t.Errorf("%s: element %d: got %v want %v", name, i, g, w)
			return
		}
	}
}

// ref runs op on a fresh CPU backend over host copies and returns the
// named outputs downloaded.
type ref struct {
	be engine.Backend
	t  *testing.T
}

func newRef(t *testing.T) *ref { return &ref{be: cpu.New(1), t: t} }

func (r *ref) f(v []float32) engine.Buf {
	b := r.be.Alloc(engine.F32, len(v))
	r.be.Upload(b, clone(v))
	return b
}
func (r *ref) d(n int) engine.Buf { return r.be.Alloc(engine.F64, n) }
func (r *ref) i(v []int32) engine.Buf {
	b := r.be.Alloc(engine.I32, len(v))
	r.be.Upload(b, clone(v))
	return b
}
func (r *ref) getF(b engine.Buf) []float32 {
	v := make([]float32, b.Len())
	r.be.Download(v, b)
	r.sync()
	return v
}
func (r *ref) getD(b engine.Buf) []float64 {
	v := make([]float64, b.Len())
	r.be.Download(v, b)
	r.sync()
	return v
}
func (r *ref) getI(b engine.Buf) []int32 {
	v := make([]int32, b.Len())
	r.be.Download(v, b)
	r.sync()
	return v
}
func (r *ref) sync() {
	if err := r.be.Sync(); err != nil {
		r.t.Fatal(err)
	}
}

func grid(n int) Dims         { return Grid1(max(1, min((n+255)/256, 3)), 256) } // few blocks: grid-stride loops wrap
func rowThreads(cols int) int { return 32 * max(1, min(8, (cols+127)/128)) }

func TestMoves(t *testing.T) {
	r := newRef(t)
	for _, c := range []struct{ rows, cols, ds, ss int }{{1, 1000, 0, 0}, {37, 33, 40, 35}, {300, 3, 7, 3}} {
		src := randn((c.rows-1)*c.ss + c.cols)
		dst := randn((c.rows-1)*c.ds + c.cols)
		want := r.f(dst)
		r.be.Copy2D(want, c.ds, r.f(src), c.ss, c.rows, c.cols)
		Copy2D(grid(c.rows*c.cols), dst, c.ds, src, c.ss, c.rows, c.cols)
		check(t, fmt.Sprintf("Copy2D %+v", c), dst, r.getF(want), exact)
	}
	for _, c := range [][3]int{{3, 37, 45}, {1, 1, 100}, {2, 64, 33}} {
		n := c[0] * c[1] * c[2]
		src, dst := randn(n), nans(n)
		want := r.f(nans(n))
		r.be.Transpose(want, r.f(src), c[0], c[1], c[2])
		Transpose(Dims{(c[2] + 31) / 32, (c[1] + 31) / 32, c[0], 32, 8}, dst, src, c[1], c[2])
		check(t, fmt.Sprintf("Transpose %v", c), dst, r.getF(want), exact)
	}
	n := 1001
	a, b := randn(n), randn(n)
	dst := nans(n)
	Add(grid(n), dst, a, b, n)
	want := r.f(nans(n))
	r.be.Add(want, r.f(a), r.f(b))
	check(t, "Add", dst, r.getF(want), exact)
	for _, c := range [][2]float32{{1, -1}, {0.75, -1.5}, {0, 2}} {
		dst := nans(n)
		Axpby(grid(n), dst, a, b, float64(c[0]), float64(c[1]), n)
		want := r.f(nans(n))
		r.be.Axpby(want, r.f(a), r.f(b), c[0], c[1])
		check(t, fmt.Sprintf("Axpby %v", c), dst, r.getF(want), exact)
	}
	// In place over b, as the optimizer's update norm uses it.
	inPlace := clone(b)
	Axpby(grid(n), inPlace, a, inPlace, 1, -1, n)
	wantIn := r.f(b)
	r.be.Axpby(wantIn, r.f(a), wantIn, 1, -1)
	check(t, "Axpby in place", inPlace, r.getF(wantIn), exact)
	s := clone(a)
	EMA(grid(n), s, b, 0.999, n)
	ws := r.f(a)
	r.be.EMA(ws, r.f(b), 0.999)
	check(t, "EMA", s, r.getF(ws), exact)
}

func TestNormSwiGLURope(t *testing.T) {
	r := newRef(t)
	for _, c := range [][2]int{{1, 1}, {7, 33}, {3, 300}, {2, 1100}} {
		rows, cols := c[0], c[1]
		n := rows * cols
		a, b := randn(n), randn(n)
		y, rs := nans(n), nans(rows)
		AddRMSNorm(Grid1(rows, rowThreads(cols)), y, rs, a, b, rows, cols, 1e-5)
		wy, wr := r.f(nans(n)), r.f(nans(rows))
		r.be.AddRMSNorm(wy, wr, r.f(a), r.f(b), rows, cols, 1e-5)
		check(t, fmt.Sprintf("AddRMSNorm %v", c), y, r.getF(wy), opTol)
		check(t, fmt.Sprintf("AddRMSNorm rstd %v", c), rs, r.getF(wr), opTol)
		AddRMSNorm(Grid1(rows, rowThreads(cols)), y, rs, a, nil, rows, cols, 1e-5)
		r.be.AddRMSNorm(wy, wr, r.f(a), nil, rows, cols, 1e-5)
		check(t, fmt.Sprintf("RMSNorm %v", c), y, r.getF(wy), opTol)
		dy, dx := randn(n), nans(n)
		RMSNormBackward(Grid1(rows, rowThreads(cols)), dx, dy, y, rs, rows, cols)
		wdx := r.f(nans(n))
		r.be.RMSNormBackward(wdx, r.f(dy), wy, wr, rows, cols)
		check(t, fmt.Sprintf("RMSNormBackward %v", c), dx, r.getF(wdx), opTol)
	}
	rows, inter := 7, 33
	gu, da := randn(rows*2*inter), randn(rows*inter)
	act, dgu := nans(rows*inter), nans(rows*2*inter)
	SwiGLU(grid(rows*inter), act, gu, rows, inter)
	SwiGLUBackward(grid(rows*inter), dgu, da, gu, rows, inter)
	wa, wd := r.f(nans(rows*inter)), r.f(nans(rows*2*inter))
	r.be.SwiGLU(wa, r.f(gu), rows, inter)
	r.be.SwiGLUBackward(wd, r.f(da), r.f(gu), rows, inter)
	check(t, "SwiGLU", act, r.getF(wa), opTol)
	check(t, "SwiGLUBackward", dgu, r.getF(wd), opTol)
	for _, c := range [][4]int{{2, 13, 3, 8}, {1, 5, 2, 7}} {
		B, S, nh, hd := c[0], c[1], c[2], c[3]
		cs, sn := engine.RopeTables(S, hd, 10000)
		x := randn(B * S * 3 * nh * hd)
		for _, inv := range []bool{false, true} {
			got := clone(x)
			Rope(grid(B*S*2*nh*(hd/2)), got, cs, sn, B, S, nh, hd, inv)
			w := r.f(x)
			r.be.Rope(w, r.f(cs), r.f(sn), B, S, nh, hd, inv)
			check(t, fmt.Sprintf("Rope %v inv %v", c, inv), got, r.getF(w), opTol)
		}
	}
}

// attnShapes mirrors cuda/ops.go.
var attnShapes = [][3]int{{16, 1, 64}, {32, 1, 64}, {64, 2, 64}, {128, 4, 32}, {256, 8, 16}}

func TestAttention(t *testing.T) {
	r := newRef(t)
	for _, c := range [][4]int{{2, 1, 1, 16}, {1, 37, 2, 16}, {1, 70, 1, 40}, {1, 33, 1, 5}, {1, 40, 1, 100}, {1, 20, 1, 200}, {2, 65, 1, 32}} {
		B, S, nh, hd := c[0], c[1], c[2], c[3]
		H := nh * hd
		var sh [3]int
		for _, s := range attnShapes {
			if hd <= s[0] {
				sh = s
				break
			}
		}
		qkv, dout := randn(B*S*3*H), randn(B*S*H)
		out, lse := nans(B*S*H), nans(B*nh*S)
		scale := float64(float32(1 / math.Sqrt(float64(hd))))
		d := Dims{(S + sh[2] - 1) / sh[2], B * nh, 1, sh[2] * sh[1], 1}
		AttnFwd(sh[0], d, out, lse, qkv, B, S, nh, hd, scale)
		wo, wl := r.f(nans(B*S*H)), r.f(nans(B*nh*S))
		r.be.Attention(wo, wl, r.f(qkv), B, S, nh, hd)
		check(t, fmt.Sprintf("Attention out %v", c), out, r.getF(wo), opTol)
		check(t, fmt.Sprintf("Attention lse %v", c), lse, r.getF(wl), opTol)
		D := nans(B * nh * S)
		AttnRowdot(grid(B*nh*S), D, dout, out, B, S, nh, hd)
		dqkv := nans(B * S * 3 * H)
		AttnBwd(sh[0], false, d, dqkv, dout, qkv, lse, D, B, S, nh, hd, scale)
		AttnBwd(sh[0], true, d, dqkv, dout, qkv, lse, D, B, S, nh, hd, scale)
		wd := r.f(nans(B * S * 3 * H))
		r.be.AttentionBackward(wd, r.f(dout), r.f(qkv), wo, wl, B, S, nh, hd)
		check(t, fmt.Sprintf("AttentionBackward %v", c), dqkv, r.getF(wd), tol{5e-5, 5e-4})
	}
}

func TestEmbed(t *testing.T) {
	r := newRef(t)
	d := engine.EmbedDims{B: 3, L: 19, P: 2, H: 24, V: 13, Ndim: 40, NumPuzzles: 5, PosScale: 0.707106781, Scale: float32(math.Sqrt(24))}
	S := d.P + d.L
	in := make([]int32, d.B*d.L)
	for i := range in {
		in[i] = int32(rng.IntN(d.V))
	}
	pids := []int32{4, 0, 4}
	tok, pos, pz := randn(d.V*d.H), randn(S*d.H), randn(d.NumPuzzles*d.Ndim)
	x, errw := nans(d.B*S*d.H), make([]int32, 8)
	Embed(grid(d.B*S*d.H), x, tok, pos, pz, in, pids, d.B, d.L, d.P, d.H, d.V, d.Ndim, d.NumPuzzles, float64(d.PosScale), float64(d.Scale), errw)
	wx := r.f(nans(d.B * S * d.H))
	r.be.Embed(wx, r.f(tok), r.f(pos), r.f(pz), r.i(in), r.i(pids), d)
	check(t, "Embed", x, r.getF(wx), opTol)
	if errw[0] != 0 {
		t.Fatalf("error word %v", errw)
	}
	// dTok via the one-hot product, as cuda/ops.go does it, in two chunks.
	dx, dTok := randn(d.B*S*d.H), randn(d.V*d.H)
	want := r.f(dTok)
	dPos := randn(S * d.H)
	wantPos := r.f(dPos)
	wantLocal := r.f(nans(d.B * d.Ndim))
	r.be.EmbedBackward(want, wantPos, wantLocal, r.f(dx), r.i(in), d)
	scale := d.Scale * d.PosScale
	rows := d.B * S
	chunk := 25
	for r0 := 0; r0 < rows; r0 += chunk {
		cnt := min(chunk, rows-r0)
		oh := nans(cnt * d.V)
		EmbedOneHot(grid(cnt*d.V), oh, in, d.L, d.P, d.V, r0, cnt)
		for v := 0; v < d.V; v++ {
			for h := 0; h < d.H; h++ {
				var s float32
				for k := 0; k < cnt; k++ {
					s += oh[k*d.V+v] * dx[(r0+k)*d.H+h]
				}
				dTok[v*d.H+h] += scale * s
			}
		}
	}
	check(t, "EmbedBackward tok (one-hot)", dTok, r.getF(want), opTol)
	EmbedPosBackward(grid(S*d.H), dPos, dx, d.B, S*d.H, float64(scale))
	check(t, "EmbedBackward pos", dPos, r.getF(wantPos), exact)
	dl := nans(d.B * d.Ndim)
	EmbedLocalBackward(grid(d.B*d.Ndim), dl, dx, d.B, S*d.H, d.Ndim, float64(scale))
	check(t, "EmbedBackward local", dl, r.getF(wantLocal), exact)
	// A bad token is reported through the error word.
	in[5] = 13
	Embed(grid(d.B*S*d.H), x, tok, pos, pz, in, pids, d.B, d.L, d.P, d.H, d.V, d.Ndim, d.NumPuzzles, float64(d.PosScale), float64(d.Scale), errw)
	if errw[0] != 1 || errw[1] != 0 || errw[2] != 5 || errw[3] != 13 || errw[4] != 13 {
		t.Fatalf("bad token: error word %v", errw)
	}
}

func TestACT(t *testing.T) {
	r := newRef(t)
	B, S, L, H := 5, 7, 6, 9
	halted := []int32{1, 0, 1, 1, 0}
	zH, zL := randn(B*S*H), randn(B*S*H)
	steps := []int32{3, 1, 0, 7, 2}
	ci, cl, cp := make([]int32, B*L), make([]int32, B*L), make([]int32, B)
	bi, bl := make([]int32, B*L), make([]int32, B*L)
	for i := range bi {
		bi[i], bl[i] = int32(rng.IntN(50)), int32(rng.IntN(50))
	}
	bp := []int32{9, 8, 7, 6, 5}
	hI, lI := randn(H), randn(H)
	w := []engine.Buf{r.f(zH), r.f(zL), r.i(steps), r.i(ci), r.i(cl), r.i(cp)}
	r.be.ACTReset(w[0], w[1], engine.ACTState{Steps: w[2], Halted: r.i(halted)}, w[3], w[4], w[5], r.i(bi), r.i(bl), r.i(bp), r.f(hI), r.f(lI), B, S, L, H)
	ACTReset(grid(B*S*H), zH, zL, steps, halted, ci, cl, cp, bi, bl, bp, hI, lI, B, S, L, H)
	check(t, "ACTReset zH", zH, r.getF(w[0]), exact)
	check(t, "ACTReset zL", zL, r.getF(w[1]), exact)
	check(t, "ACTReset steps", steps, r.getI(w[2]), exact)
	check(t, "ACTReset inputs", ci, r.getI(w[3]), exact)
	check(t, "ACTReset labels", cl, r.getI(w[4]), exact)
	check(t, "ACTReset pids", cp, r.getI(w[5]), exact)
	q, ms := randn(2*B), []int32{0, 2, 0, 9, 1}
	for _, tr := range []bool{false, true} {
		for _, nc := range []bool{false, true} {
			st, hl := []int32{0, 2, 0, 7, 3}, []int32{-7, -7, -7, -7, -7}
			ws, wh := r.i(st), r.i(hl)
			r.be.ACTHalt(engine.ACTState{Steps: ws, Halted: wh}, r.f(q), r.i(ms), B, 8, tr, nc)
			ACTHalt(grid(B), st, hl, q, ms, B, 8, tr, nc)
			check(t, "ACTHalt steps", st, r.getI(ws), exact)
			check(t, "ACTHalt halted", hl, r.getI(wh), exact)
		}
	}
}

func TestLossHead(t *testing.T) {
	r := newRef(t)
	for _, softmax := range []bool{false, true} {
		for _, next := range []bool{false, true} {
			B, L, V := 4, 150, 11 // L > 128: two chunks of positions
			logits := randn(B * L * V)
			labels := make([]int32, B*L)
			for i := range labels {
				labels[i] = int32(rng.IntN(V))
				if rng.IntN(4) == 0 {
					labels[i] = engine.IgnoreLabel
				}
			}
			for l := 0; l < L; l++ {
				best := 0
				for v := 1; v < V; v++ {
					if logits[l*V+v] > logits[l*V+best] {
						best = v
					}
				}
				labels[l] = int32(best)
			}
			q, nq, steps := randn(2*B), randn(2*B), []int32{1, 2, 3, 4}
			o := &LossOut{DLogits: nans(B * L * V), DQ: nans(2 * B), QTarget: nans(B), Preds: make([]int32, B*L), NV: make([]int32, B),
				NC: make([]int32, B), SC: make([]int32, B), LM: make([]float64, B), QHalt: make([]float64, B), QCont: make([]float64, B)}
			var nqe []float32
			if next {
				nqe = nq
			}
			LossHead(Grid1(B, 128), logits, labels, q, nqe, steps, o, B, L, V, softmax, 4, 0.25, make([]int32, 8))
			lb := engine.LossBufs{Logits: r.f(logits), Labels: r.i(labels), Q: r.f(q), Steps: r.i(steps), DLogits: r.f(nans(B * L * V)), DQ: r.f(nans(2 * B)),
				Preds: r.i(make([]int32, B*L)), LMLoss: r.d(B), QHaltLoss: r.d(B), QContLoss: r.d(B), QTarget: r.f(nans(B)),
				NValid: r.i(make([]int32, B)), NCorrect: r.i(make([]int32, B)), SeqCorrect: r.i(make([]int32, B))}
			if next {
				lb.NextQ = r.f(nq)
			}
			r.be.LossHead(lb, engine.LossDims{B: B, L: L, V: V, Softmax: softmax, HaltMaxSteps: 4, GradScale: 0.25})
			name := fmt.Sprintf("LossHead softmax=%v next=%v", softmax, next)
			check(t, name+" dlogits", o.DLogits, r.getF(lb.DLogits), exact)
			check(t, name+" dq", o.DQ, r.getF(lb.DQ), exact)
			check(t, name+" qtarget", o.QTarget, r.getF(lb.QTarget), exact)
			check(t, name+" preds", o.Preds, r.getI(lb.Preds), exact)
			check(t, name+" nv", o.NV, r.getI(lb.NValid), exact)
			check(t, name+" nc", o.NC, r.getI(lb.NCorrect), exact)
			check(t, name+" sc", o.SC, r.getI(lb.SeqCorrect), exact)
			check(t, name+" lm", o.LM, r.getD(lb.LMLoss), tol{1e-15, 1e-14})
			check(t, name+" qhalt", o.QHalt, r.getD(lb.QHaltLoss), tol{1e-15, 1e-14})
			check(t, name+" qcont", o.QCont, r.getD(lb.QContLoss), tol{1e-15, 1e-14})
		}
	}
}

func TestOptimizers(t *testing.T) {
	r := newRef(t)
	n := 1003
	p, g, m, v := randn(n), randn(n), randn(n), make([]float32, n)
	wp, wg, wm, wv := r.f(p), r.f(g), r.f(m), r.f(v)
	for step := 1; step <= 3; step++ {
		h := engine.AdamHyper{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, WeightDecay: 0.1, Step: step}
		r.be.AdamATan2(wp, wg, wm, wv, h)
		hy := []float32{float32(1 - h.LR*h.WeightDecay), float32(h.LR / (1 - math.Pow(h.Beta1, float64(step)))),
			float32(math.Sqrt(1 - math.Pow(h.Beta2, float64(step)))), float32(1 - h.Beta1), float32(1 - h.Beta2)}
		Adam(grid(n), p, g, m, v, hy, n)
	}
	check(t, "AdamATan2 p", p, r.getF(wp), exact)
	check(t, "AdamATan2 m", m, r.getF(wm), exact)
	check(t, "AdamATan2 v", v, r.getF(wv), exact)
	rows, dim, k := 10, 37, 9
	table, grads := randn(rows*dim), randn(k*dim)
	ids := []int32{3, 1, 3, 9, 0, 3, 1, 5, 9}
	wt := r.f(table)
	r.be.SignSGDRows(wt, r.f(grads), r.i(ids), k, dim, 0.01, 0.1)
	SignSGD(Grid1(k, rowThreads(dim)), table, grads, ids, []float32{0.01, 0.1}, k, dim, rows, make([]int32, 8))
	check(t, "SignSGDRows", table, r.getF(wt), exact)
	x := randn(40000)
	got := SumSquares(x, 1<<14)
	wd := r.d(1)
	r.be.SumSquares(wd, r.f(x))
	check(t, "SumSquares", []float64{got}, r.getD(wd), tol{1e-13, 1e-13})
}
