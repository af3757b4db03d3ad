//go:build cuda

package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/cuda"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/enginetest"
)

// factory returns backends in one mode and closes them when t ends (the
// suite's factories have no Close of their own).
func factory(t *testing.T, opt cuda.Options) enginetest.Factory {
	return func() engine.Backend {
		b, err := cuda.NewWithOptions(0, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
}

var (
	fp32Eager  = cuda.Options{Gemm: cuda.GemmFP32}
	fp32Graphs = cuda.Options{Gemm: cuda.GemmFP32, Graphs: true}
	bf16Graphs = cuda.Options{Gemm: cuda.GemmBF16, Graphs: true}
)

// TestConformance runs the engine's whole conformance suite (golden cases
// vs the PyTorch reference, per-op float64 and finite-difference checks,
// whole-step gradients, determinism) on the CUDA backend in fp32 mode.
func TestConformance(t *testing.T) { enginetest.Run(t, factory(t, fp32Eager)) }

// TestConformanceGraphs repeats the golden cases and determinism with
// graph capture on: replayed graphs must give the eager results.
func TestConformanceGraphs(t *testing.T) {
	f := factory(t, fp32Graphs)
	t.Run("Golden", func(t *testing.T) { enginetest.RunGolden(t, f) })
	t.Run("Determinism", func(t *testing.T) { enginetest.RunDeterminism(t, f, f) })
}

// TestConformanceGraphsVerified runs the golden cases with every replay
// checked against the eager run from the same device memory
// (Options.VerifyGraphs): an op whose graph key misses something it bakes
// into its launch fails here even where the golden tolerances would not
// notice.
func TestConformanceGraphsVerified(t *testing.T) {
	opt := fp32Graphs
	opt.VerifyGraphs = true
	enginetest.RunGolden(t, factory(t, opt))
}

// tol: |got - want| <= Abs * max(1, max|want|) + Rel * |want|, as the
// engine's suite compares.
type tol struct{ Abs, Rel float64 }

var (
	opTol = tol{1e-5, 1e-4} // fp32 kernels vs the CPU's fp32 (different summation orders)
	exact = tol{0, 0}
)

func (tl tol) check(t *testing.T, name string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: length %d, want %d", name, len(got), len(want))
		return
	}
	scale := 1.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	bad, worst, wi := 0, 0.0, 0
	for i := range got {
		d := math.Abs(got[i] - want[i])
		lim := tl.Abs*scale + tl.Rel*math.Abs(want[i])
		if !(d <= lim) {
			bad++
			if r := d / math.Max(lim, 1e-300); r > worst || math.IsNaN(d) {
				worst, wi = r, i
				if math.IsNaN(d) {
					worst = math.Inf(1)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements off; worst at %d: got %.8g want %.8g (%.3gx the limit)", name, bad, len(got), wi, got[wi], want[wi], worst)
	}
}

// pair runs the same op on the CUDA backend and the CPU reference.
type pair struct {
	t   *testing.T
	g   *cuda.Backend
	c   engine.Backend
	rng *rand.Rand
}

func newPair(t *testing.T, opt cuda.Options) *pair {
	g, err := cuda.NewWithOptions(0, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return &pair{t: t, g: g, c: cpu.New(0), rng: rand.New(rand.NewPCG(uint64(len(t.Name())), 7))}
}

func (p *pair) bes() [2]engine.Backend { return [2]engine.Backend{p.g, p.c} }

type bufs [2]engine.Buf

func (p *pair) randn(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(p.rng.NormFloat64())
	}
	return v
}

// in uploads host data (any supported slice) to both backends.
func (p *pair) in(dt engine.DType, v any, n int) bufs {
	var out bufs
	for i, be := range p.bes() {
		out[i] = be.Alloc(dt, n)
		be.Upload(out[i], v)
	}
	return out
}

func (p *pair) f32(v []float32) bufs { return p.in(engine.F32, v, len(v)) }
func (p *pair) i32(v []int32) bufs   { return p.in(engine.I32, v, len(v)) }

// out allocates an output on both; the GPU one is poisoned (NaN, or
// -777 for integers) so an element the kernel fails to write shows up.
func (p *pair) out(dt engine.DType, n int) bufs {
	o := bufs{p.g.Alloc(dt, n), p.c.Alloc(dt, n)}
	if dt == engine.I32 {
		p.g.Fill(o[0], -777)
	} else {
		p.g.Fill(o[0], float32(math.NaN()))
	}
	return o
}

// same runs op on both backends (index 0: GPU, 1: CPU) and syncs.
func (p *pair) same(op func(be engine.Backend, i int)) {
	p.t.Helper()
	for i, be := range p.bes() {
		op(be, i)
		if err := be.Sync(); err != nil {
			p.t.Fatalf("%s: %v", be.Name(), err)
		}
	}
}

func (p *pair) host(be engine.Backend, x engine.Buf) []float64 {
	p.t.Helper()
	var out []float64
	switch x.DType() {
	case engine.F32:
		v := make([]float32, x.Len())
		be.Download(v, x)
		for _, e := range v {
			out = append(out, float64(e))
		}
	case engine.F64:
		out = make([]float64, x.Len())
		be.Download(out, x)
	case engine.I32:
		v := make([]int32, x.Len())
		be.Download(v, x)
		for _, e := range v {
			out = append(out, float64(e))
		}
	}
	if err := be.Sync(); err != nil {
		p.t.Fatal(err)
	}
	return out
}

func (p *pair) cmp(name string, x bufs, tl tol) {
	p.t.Helper()
	tl.check(p.t, name, p.host(p.g, x[0]), p.host(p.c, x[1]))
}

func TestKernelsMoves(t *testing.T) {
	p := newPair(t, fp32Eager)
	for _, c := range []struct{ rows, cols, ds, ss int }{{1, 1000, 0, 0}, {37, 33, 40, 35}, {5, 64, 64, 64}, {300, 3, 7, 3}} {
		src := p.f32(p.randn((c.rows-1)*c.ss + c.cols))
		dst := p.out(engine.F32, (c.rows-1)*c.ds+c.cols)
		p.same(func(be engine.Backend, i int) {
			be.Fill(dst[i], 0.5)
			be.Copy2D(dst[i], c.ds, src[i], c.ss, c.rows, c.cols)
		})
		p.cmp(fmt.Sprintf("Copy2D %+v", c), dst, exact)
	}
	for _, c := range [][3]int{{3, 37, 45}, {1, 1, 100}, {2, 64, 33}, {1, 1000, 7}} {
		n := c[0] * c[1] * c[2]
		src, dst := p.f32(p.randn(n)), p.out(engine.F32, n)
		p.same(func(be engine.Backend, i int) { be.Transpose(dst[i], src[i], c[0], c[1], c[2]) })
		p.cmp(fmt.Sprintf("Transpose %v", c), dst, exact)
	}
	for _, n := range []int{1, 255, 256, 257, 100003} {
		a, b := p.f32(p.randn(n)), p.f32(p.randn(n))
		dst := p.out(engine.F32, n)
		p.same(func(be engine.Backend, i int) { be.Add(dst[i], a[i], b[i]) })
		p.cmp("Add", dst, exact)
		p.same(func(be engine.Backend, i int) { be.Add(a[i], a[i], b[i]) }) // aliasing
		p.cmp("Add aliased", a, exact)
		p.same(func(be engine.Backend, i int) { be.EMA(a[i], b[i], 0.999) })
		p.cmp("EMA", a, opTol)
		for _, c := range [][2]float32{{1, -1}, {0.75, -1.5}, {0, 2}} {
			p.same(func(be engine.Backend, i int) { be.Axpby(dst[i], a[i], b[i], c[0], c[1]) })
			p.cmp(fmt.Sprintf("Axpby %v", c), dst, exact)
		}
		// In place over b, as the optimizer's update norm uses it.
		p.same(func(be engine.Backend, i int) { be.Axpby(b[i], a[i], b[i], 1, -1) })
		p.cmp("Axpby in place", b, exact)
		for _, dt := range []engine.DType{engine.F32, engine.F64, engine.I32} {
			f := p.out(dt, n)
			p.same(func(be engine.Backend, i int) { be.Fill(f[i], -2.75) })
			p.cmp("Fill "+dt.String(), f, exact)
		}
	}
}

func TestKernelsNormSwiGLURope(t *testing.T) {
	p := newPair(t, fp32Eager)
	for _, c := range [][2]int{{1, 1}, {7, 33}, {5, 512}, {3, 2000}, {129, 81}} {
		rows, cols := c[0], c[1]
		n := rows * cols
		a, b := p.f32(p.randn(n)), p.f32(p.randn(n))
		y, r := p.out(engine.F32, n), p.out(engine.F32, rows)
		p.same(func(be engine.Backend, i int) { be.AddRMSNorm(y[i], r[i], a[i], b[i], rows, cols, 1e-5) })
		p.cmp(fmt.Sprintf("AddRMSNorm %v", c), y, opTol)
		p.cmp(fmt.Sprintf("AddRMSNorm rstd %v", c), r, opTol)
		p.same(func(be engine.Backend, i int) { be.AddRMSNorm(y[i], r[i], a[i], nil, rows, cols, 1e-5) })
		p.cmp(fmt.Sprintf("RMSNorm (no b) %v", c), y, opTol)
		dy, dx := p.f32(p.randn(n)), p.out(engine.F32, n)
		p.same(func(be engine.Backend, i int) { be.RMSNormBackward(dx[i], dy[i], y[i], r[i], rows, cols) })
		p.cmp(fmt.Sprintf("RMSNormBackward %v", c), dx, opTol)
		p.same(func(be engine.Backend, i int) { be.AddRMSNorm(a[i], r[i], a[i], b[i], rows, cols, 1e-5) }) // y aliases a
		p.cmp(fmt.Sprintf("AddRMSNorm aliased %v", c), a, opTol)
	}
	for _, c := range [][2]int{{1, 1}, {7, 33}, {64, 1536}} {
		rows, inter := c[0], c[1]
		gu, dact := p.f32(p.randn(rows*2*inter)), p.f32(p.randn(rows*inter))
		act, dgu := p.out(engine.F32, rows*inter), p.out(engine.F32, rows*2*inter)
		p.same(func(be engine.Backend, i int) {
			be.SwiGLU(act[i], gu[i], rows, inter)
			be.SwiGLUBackward(dgu[i], dact[i], gu[i], rows, inter)
		})
		p.cmp(fmt.Sprintf("SwiGLU %v", c), act, opTol)
		p.cmp(fmt.Sprintf("SwiGLUBackward %v", c), dgu, opTol)
	}
	for _, c := range [][4]int{{2, 13, 3, 8}, {1, 97, 8, 64}, {3, 5, 2, 6}} {
		B, S, nh, hd := c[0], c[1], c[2], c[3]
		cs, sn := engine.RopeTables(S, hd, 10000)
		cos, sin := p.f32(cs), p.f32(sn)
		x := p.f32(p.randn(B * S * 3 * nh * hd))
		for _, inv := range []bool{false, true} {
			p.same(func(be engine.Backend, i int) { be.Rope(x[i], cos[i], sin[i], B, S, nh, hd, inv) })
			p.cmp(fmt.Sprintf("Rope %v inverse %v", c, inv), x, opTol)
		}
	}
}

func TestKernelsAttention(t *testing.T) {
	p := newPair(t, fp32Eager)
	// Head sizes of every instantiation, padded ones (5, 40, 100, 200),
	// and sequence lengths around the 64/32/16-row blocks and 32/16 tiles.
	for _, c := range [][4]int{{2, 1, 1, 16}, {2, 37, 3, 16}, {1, 100, 2, 64}, {1, 70, 1, 40}, {1, 65, 2, 128},
		{1, 33, 1, 200}, {2, 129, 2, 32}, {1, 17, 4, 5}, {1, 31, 1, 100}, {1, 300, 1, 64}} {
		B, S, nh, hd := c[0], c[1], c[2], c[3]
		H := nh * hd
		qkv, dout := p.f32(p.randn(B*S*3*H)), p.f32(p.randn(B*S*H))
		out, lse := p.out(engine.F32, B*S*H), p.out(engine.F32, B*nh*S)
		dqkv := p.out(engine.F32, B*S*3*H)
		p.same(func(be engine.Backend, i int) {
			be.Attention(out[i], lse[i], qkv[i], B, S, nh, hd)
			be.AttentionBackward(dqkv[i], dout[i], qkv[i], out[i], lse[i], B, S, nh, hd)
		})
		p.cmp(fmt.Sprintf("Attention out %v", c), out, opTol)
		p.cmp(fmt.Sprintf("Attention lse %v", c), lse, opTol)
		p.cmp(fmt.Sprintf("AttentionBackward %v", c), dqkv, tol{5e-5, 5e-4})
	}
}

func TestKernelsEmbedACTLoss(t *testing.T) {
	p := newPair(t, fp32Eager)
	for _, withPuzzle := range []bool{false, true} {
		d := engine.EmbedDims{B: 3, L: 19, P: 0, H: 24, V: 13, PosScale: 0.707106781, Scale: float32(math.Sqrt(24))}
		if withPuzzle {
			d.P, d.Ndim, d.NumPuzzles = 2, 40, 5
		}
		S := d.P + d.L
		tokens := make([]int32, d.B*d.L)
		for i := range tokens {
			tokens[i] = int32(p.rng.IntN(d.V))
		}
		inputs, pids := p.i32(tokens), p.i32([]int32{4, 0, 4})
		tok, pos := p.f32(p.randn(d.V*d.H)), p.f32(p.randn(S*d.H))
		puzzle := bufs{}
		if withPuzzle {
			puzzle = p.f32(p.randn(d.NumPuzzles * d.Ndim))
		}
		x := p.out(engine.F32, d.B*S*d.H)
		p.same(func(be engine.Backend, i int) { be.Embed(x[i], tok[i], pos[i], puzzle[i], inputs[i], pids[i], d) })
		p.cmp(fmt.Sprintf("Embed puzzle=%v", withPuzzle), x, opTol)
		dx := p.f32(p.randn(d.B * S * d.H))
		dTok, dPos := p.f32(p.randn(d.V*d.H)), p.f32(p.randn(S*d.H))
		dLocal := p.out(engine.F32, max(d.B*d.Ndim, 1))
		p.same(func(be engine.Backend, i int) {
			be.EmbedBackward(dTok[i], dPos[i], dLocal[i], dx[i], inputs[i], d)
		})
		p.cmp("EmbedBackward tok", dTok, opTol)
		p.cmp("EmbedBackward pos", dPos, opTol)
		if withPuzzle {
			p.cmp("EmbedBackward local", dLocal, opTol)
		}
	}

	// ACT reset and halting, every flag combination.
	B, St, L, H := 5, 7, 6, 9
	halted := p.i32([]int32{1, 0, 1, 1, 0})
	zH, zL := p.f32(p.randn(B*St*H)), p.f32(p.randn(B*St*H))
	steps := p.i32([]int32{3, 1, 0, 7, 2})
	ci, cl, cp := p.i32(make([]int32, B*L)), p.i32(make([]int32, B*L)), p.i32(make([]int32, B))
	ri := make([]int32, B*L)
	for i := range ri {
		ri[i] = int32(p.rng.IntN(100))
	}
	bi, bl, bp := p.i32(ri), p.i32(ri), p.i32([]int32{9, 8, 7, 6, 5})
	hI, lI := p.f32(p.randn(H)), p.f32(p.randn(H))
	p.same(func(be engine.Backend, i int) {
		be.ACTReset(zH[i], zL[i], engine.ACTState{Steps: steps[i], Halted: halted[i]}, ci[i], cl[i], cp[i], bi[i], bl[i], bp[i], hI[i], lI[i], B, St, L, H)
	})
	for name, x := range map[string]bufs{"zH": zH, "zL": zL, "steps": steps, "curInputs": ci, "curLabels": cl, "curPIDs": cp} {
		p.cmp("ACTReset "+name, x, exact)
	}
	q, minSteps := p.f32(p.randn(2*B)), p.i32([]int32{0, 2, 0, 9, 1})
	for _, train := range []bool{false, true} {
		for _, noCont := range []bool{false, true} {
			st := engine.ACTState{}
			stp, hl := p.i32([]int32{0, 2, 0, 7, 3}), p.out(engine.I32, B)
			p.same(func(be engine.Backend, i int) {
				st = engine.ACTState{Steps: stp[i], Halted: hl[i]}
				be.ACTHalt(st, q[i], minSteps[i], B, 8, train, noCont)
			})
			p.cmp(fmt.Sprintf("ACTHalt steps train=%v noCont=%v", train, noCont), stp, exact)
			p.cmp(fmt.Sprintf("ACTHalt halted train=%v noCont=%v", train, noCont), hl, exact)
		}
	}

	// Loss head: both losses, with and without gradients and the
	// continue target, ignored labels, and a row whose positions all hit.
	for _, softmax := range []bool{false, true} {
		for _, grad := range []bool{false, true} {
			for _, next := range []bool{false, true} {
				B, L, V := 6, 41, 11
				if next {
					L = 150 // more positions than the kernel's 128 threads: a row in two chunks
				}
				logits := p.randn(B * L * V)
				labels := make([]int32, B*L)
				for i := range labels {
					labels[i] = int32(p.rng.IntN(V))
					if p.rng.IntN(4) == 0 {
						labels[i] = engine.IgnoreLabel
					}
				}
				for l := 0; l < L; l++ { // row 0 all correct
					best := 0
					for v := 1; v < V; v++ {
						if logits[l*V+v] > logits[l*V+best] {
							best = v
						}
					}
					labels[l] = int32(best)
				}
				lb := [2]engine.LossBufs{}
				lg, lab, qq, nq, stp := p.f32(logits), p.i32(labels), p.f32(p.randn(2*B)), p.f32(p.randn(2*B)), p.i32([]int32{1, 2, 3, 4, 5, 6})
				outs := map[string]bufs{"preds": p.out(engine.I32, B*L), "lm": p.out(engine.F64, B), "qh": p.out(engine.F64, B), "qc": p.out(engine.F64, B),
					"qt": p.out(engine.F32, B), "nv": p.out(engine.I32, B), "nc": p.out(engine.I32, B), "sc": p.out(engine.I32, B)}
				if grad {
					outs["dlogits"], outs["dq"] = p.out(engine.F32, B*L*V), p.out(engine.F32, 2*B)
				}
				for i := range 2 {
					lb[i] = engine.LossBufs{Logits: lg[i], Labels: lab[i], Q: qq[i], Steps: stp[i], Preds: outs["preds"][i], LMLoss: outs["lm"][i],
						QHaltLoss: outs["qh"][i], QContLoss: outs["qc"][i], QTarget: outs["qt"][i], NValid: outs["nv"][i], NCorrect: outs["nc"][i], SeqCorrect: outs["sc"][i]}
					if next {
						lb[i].NextQ = nq[i]
					}
					if grad {
						lb[i].DLogits, lb[i].DQ = outs["dlogits"][i], outs["dq"][i]
					}
				}
				d := engine.LossDims{B: B, L: L, V: V, Softmax: softmax, HaltMaxSteps: 4, GradScale: 0.25}
				p.same(func(be engine.Backend, i int) { be.LossHead(lb[i], d) })
				for name, x := range outs {
					tl := opTol
					if name == "preds" || name == "nv" || name == "nc" || name == "sc" {
						tl = exact
					}
					p.cmp(fmt.Sprintf("LossHead softmax=%v grad=%v next=%v %s", softmax, grad, next, name), x, tl)
				}
			}
		}
	}
}

func TestKernelsOptimizers(t *testing.T) {
	p := newPair(t, fp32Eager)
	for _, n := range []int{1, 1000, 100003} {
		pr, g := p.f32(p.randn(n)), p.f32(p.randn(n))
		m, v := p.f32(p.randn(n)), p.f32(make([]float32, n))
		for step := 1; step <= 3; step++ {
			h := engine.AdamHyper{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, WeightDecay: 0.1, Step: step}
			p.same(func(be engine.Backend, i int) { be.AdamATan2(pr[i], g[i], m[i], v[i], h) })
		}
		p.cmp(fmt.Sprintf("AdamATan2 %d params", n), pr, opTol)
		p.cmp(fmt.Sprintf("AdamATan2 %d m", n), m, opTol)
		p.cmp(fmt.Sprintf("AdamATan2 %d v", n), v, opTol)
		ss := p.out(engine.F64, 1)
		p.same(func(be engine.Backend, i int) { be.SumSquares(ss[i], g[i]) })
		p.cmp("SumSquares", ss, tol{1e-12, 1e-12})
	}
	rows, dim, n := 10, 37, 9
	table, grads := p.f32(p.randn(rows*dim)), p.f32(p.randn(n*dim))
	ids := p.i32([]int32{3, 1, 3, 9, 0, 3, 1, 5, 9})
	p.same(func(be engine.Backend, i int) { be.SignSGDRows(table[i], grads[i], ids[i], n, dim, 0.01, 0.1) })
	p.cmp("SignSGDRows", table, opTol)
}

func TestGemmFP32(t *testing.T) {
	p := newPair(t, fp32Eager)
	for _, c := range []struct{ m, n, k, batch int }{{1, 1, 1, 1}, {3, 5, 7, 1}, {17, 33, 9, 2}, {129, 65, 300, 3}, {5, 2, 1, 4}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				lda, ldb, ldc := c.k+1, c.n+2, c.n+3
				if ta {
					lda = c.m + 1
				}
				if tb {
					ldb = c.k + 2
				}
				ar, br := c.m, c.k
				if ta {
					ar = c.k
				}
				if tb {
					br = c.n
				}
				sa, sb, sc := ar*lda+3, br*ldb+1, c.m*ldc+2
				A, B, C := p.f32(p.randn(c.batch*sa)), p.f32(p.randn(c.batch*sb)), p.f32(p.randn(c.batch*sc))
				p.same(func(be engine.Backend, i int) {
					be.Gemm(engine.Gemm{TransA: ta, TransB: tb, M: c.m, N: c.n, K: c.k, Alpha: -0.5, Beta: 0.25, A: A[i], Lda: lda, StrideA: sa,
						B: B[i], Ldb: ldb, StrideB: sb, C: C[i], Ldc: ldc, StrideC: sc, Batch: c.batch})
				})
				p.cmp(fmt.Sprintf("Gemm %+v ta=%v tb=%v", c, ta, tb), C, opTol)
			}
		}
	}
}

// stepOutputs runs two training steps and returns losses, logits and
// gradients as one vector (as the engine's determinism check does).
func stepOutputs(t *testing.T, be engine.Backend, cfg engine.Config) []float64 {
	t.Helper()
	m, err := engine.NewModel(cfg, be, engine.Options{Backward: true, ExplorationSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetParams(engine.InitParams(m.Layout, 9)); err != nil {
		t.Fatal(err)
	}
	B := cfg.BatchSize
	in, labels, pids := enginetest.PatternBatch(cfg, 3)
	if err := m.SetBatch(in, labels, pids); err != nil {
		t.Fatal(err)
	}
	c := m.NewCarry()
	var out []float64
	for range 3 {
		if err := m.Step(c, engine.StepOptions{Train: true, Backward: true, GradScale: 1 / float32(B)}); err != nil {
			t.Fatal(err)
		}
		r, err := m.Result(c, true)
		if err != nil {
			t.Fatal(err)
		}
		g, _, err := m.Gradients()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.LMLoss...)
		for _, v := range r.Logits {
			out = append(out, float64(v))
		}
		for _, v := range g {
			out = append(out, float64(v))
		}
	}
	return out
}

// TestStepsVsCPU runs whole training steps (three, on a persistent carry)
// of every StepConfig in fp32 with and without graphs and compares with
// the CPU backend; the eager and graph runs must agree bitwise.
func TestStepsVsCPU(t *testing.T) {
	for name, cfg := range enginetest.StepConfigs() {
		t.Run(name, func(t *testing.T) {
			want := stepOutputs(t, cpu.New(0), cfg)
			e := stepOutputs(t, factory(t, fp32Eager)(), cfg)
			g := stepOutputs(t, factory(t, fp32Graphs)(), cfg)
			exact.check(t, "fp32 graphs vs fp32 eager", g, e)
			opTol.check(t, "fp32 vs cpu", e, want)
		})
	}
}

// TestBF16VsCPU compares one training step of the default bf16 mode (with
// graphs) with the CPU backend's fp32, under the suite's BF16Step rule,
// the one the CPU backend's own bf16 GEMM mode passes. It is one step from
// a fresh carry on purpose: the CPU's bf16 mode, measured against its
// fp32, drifts from 0.05 after one step of the mlp_t configs to 0.10 after
// two and 0.42 after three, where a halting logit within bf16 noise of
// zero flips and a slot resets (see enginetest.BF16Step), so a three-step
// comparison in bf16 would test luck, not the kernels.
func TestBF16VsCPU(t *testing.T) {
	enginetest.RunPrecision(t, factory(t, bf16Graphs), func() engine.Backend { return cpu.New(0) }, enginetest.BF16Step)
}

// TestGraphsReplay checks that graph mode really captures and replays a
// step after its first sighting.
func TestGraphsReplay(t *testing.T) {
	b := factory(t, fp32Graphs)().(*cuda.Backend)
	cfg := enginetest.StepConfigs()["rope_continue_wide_p"]
	stepOutputs(t, b, cfg)
	s := b.Stats()
	if s.GraphCaptures == 0 || s.GraphLaunches == 0 {
		t.Fatalf("no graph captured or replayed over three steps: %+v", s)
	}
	t.Logf("stats over three steps: %+v", s)
}

// TestErrors: bad ids reported by kernels surface at Sync with the CPU
// backend's wording, and an impossible allocation names what was asked
// and what is free.
func TestErrors(t *testing.T) {
	b := factory(t, fp32Eager)()
	lb := engine.LossBufs{Logits: b.Alloc(engine.F32, 6), Labels: b.Alloc(engine.I32, 2), Q: b.Alloc(engine.F32, 2), Steps: b.Alloc(engine.I32, 1),
		Preds: b.Alloc(engine.I32, 2), LMLoss: b.Alloc(engine.F64, 1), QHaltLoss: b.Alloc(engine.F64, 1), QContLoss: b.Alloc(engine.F64, 1),
		QTarget: b.Alloc(engine.F32, 1), NValid: b.Alloc(engine.I32, 1), NCorrect: b.Alloc(engine.I32, 1), SeqCorrect: b.Alloc(engine.I32, 1)}
	b.Upload(lb.Labels, []int32{1, 7})
	b.LossHead(lb, engine.LossDims{B: 1, L: 2, V: 3, HaltMaxSteps: 2, GradScale: 1})
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "label 7") {
		t.Fatalf("LossHead with label 7 of 3: error %v", err)
	}
	if err := b.Sync(); err != nil {
		t.Fatalf("Sync did not clear the error: %v", err)
	}
	// A token outside the vocabulary is reported through the device's
	// error word, naming the row, the position and the token.
	d := engine.EmbedDims{B: 2, L: 3, H: 4, V: 5, PosScale: 1, Scale: 1}
	in := b.Alloc(engine.I32, d.B*d.L)
	b.Upload(in, []int32{0, 1, 2, 3, 4, 5})
	b.Embed(b.Alloc(engine.F32, d.B*d.L*d.H), b.Alloc(engine.F32, d.V*d.H), b.Alloc(engine.F32, d.L*d.H), nil, in, b.Alloc(engine.I32, d.B), d)
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "row 1 position 2: token 5 outside [0, 5)") {
		t.Fatalf("Embed with token 5 of 5: error %v", err)
	}
	b.Alloc(engine.F32, 1<<45)
	err := b.Sync()
	if err == nil || !strings.Contains(err.Error(), "out of device memory") || !strings.Contains(err.Error(), "free") {
		t.Fatalf("huge Alloc: error %v", err)
	}
	t.Log(err)
}
