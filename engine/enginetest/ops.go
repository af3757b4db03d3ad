package enginetest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tinyrecursive/trm/engine"
)

// opTol compares a float32 op with float64 maths on inputs of order one.
var opTol = Tolerance{Abs: 2e-5, Rel: 1e-4}

// fdTol compares an op's backward with central finite differences of the
// float64 forward; the differences have O(eps^2) truncation error.
var fdTol = Tolerance{Abs: 1e-4, Rel: 1e-3}

// harness wraps a backend with upload/download helpers for op tests.
type harness struct {
	t   *testing.T
	be  engine.Backend
	rng *rand.Rand
}

func newHarness(t *testing.T, f Factory) *harness {
	return &harness{t: t, be: f(), rng: rand.New(rand.NewPCG(1, 2))}
}

func (h *harness) randn(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(h.rng.NormFloat64())
	}
	return v
}

func (h *harness) up(v []float32) engine.Buf {
	b := h.be.Alloc(engine.F32, len(v))
	h.be.Upload(b, v)
	return b
}

func (h *harness) upI(v []int32) engine.Buf {
	b := h.be.Alloc(engine.I32, len(v))
	h.be.Upload(b, v)
	return b
}

func (h *harness) down(b engine.Buf) []float32 {
	v := make([]float32, b.Len())
	h.be.Download(v, b)
	h.sync()
	return v
}

func (h *harness) downI(b engine.Buf) []int32 {
	v := make([]int32, b.Len())
	h.be.Download(v, b)
	h.sync()
	return v
}

func (h *harness) downD(b engine.Buf) []float64 {
	v := make([]float64, b.Len())
	h.be.Download(v, b)
	h.sync()
	return v
}

func (h *harness) sync() {
	h.t.Helper()
	if err := h.be.Sync(); err != nil {
		h.t.Fatal(err)
	}
}

// fdGrad returns the gradient of sum(w * f(x)) with respect to x by
// central differences of a float64 function.
func fdGrad(x []float64, w []float64, f func([]float64) []float64) []float64 {
	const eps = 1e-5
	g := make([]float64, len(x))
	xp := append([]float64(nil), x...)
	for i := range x {
		xp[i] = x[i] + eps
		fp := f(xp)
		xp[i] = x[i] - eps
		fm := f(xp)
		xp[i] = x[i]
		var s float64
		for j := range fp {
			s += w[j] * (fp[j] - fm[j])
		}
		g[i] = s / (2 * eps)
	}
	return g
}

// RunOps checks every backend op against float64 maths, and every backward
// op against finite differences of the float64 forward.
func RunOps(t *testing.T, f Factory) {
	t.Run("Gemm", func(t *testing.T) { testGemm(t, newHarness(t, f)) })
	t.Run("Copy2DTransposeAddFill", func(t *testing.T) { testMoves(t, newHarness(t, f)) })
	t.Run("RMSNorm", func(t *testing.T) { testRMSNorm(t, newHarness(t, f)) })
	t.Run("SwiGLU", func(t *testing.T) { testSwiGLU(t, newHarness(t, f)) })
	t.Run("Rope", func(t *testing.T) { testRope(t, newHarness(t, f)) })
	t.Run("Attention", func(t *testing.T) { testAttention(t, newHarness(t, f)) })
	t.Run("Embed", func(t *testing.T) { testEmbed(t, newHarness(t, f)) })
	t.Run("LossHead", func(t *testing.T) { testLossHead(t, newHarness(t, f)) })
	t.Run("ACT", func(t *testing.T) { testACT(t, newHarness(t, f)) })
	t.Run("Optimizers", func(t *testing.T) { testOptimizers(t, newHarness(t, f)) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, newHarness(t, f)) })
}

func testGemm(t *testing.T, h *harness) {
	for _, c := range []struct{ m, n, k, batch int }{{1, 1, 1, 1}, {3, 5, 7, 1}, {17, 33, 9, 2}, {64, 48, 80, 3}, {5, 2, 1, 4}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
					alpha, beta := ab[0], ab[1]
					lda, ldb, ldc := c.k+1, c.n+2, c.n+3
					ar, br := c.m, c.k
					if ta {
						lda, ar = c.m+1, c.k
					}
					if tb {
						ldb, br = c.k+2, c.n
					}
					sa, sb, sc := ar*lda+5, br*ldb+3, c.m*ldc+1
					a, b, cc := h.randn(sa*c.batch), h.randn(sb*c.batch), h.randn(sc*c.batch)
					want := f64(cc)
					for bi := 0; bi < c.batch; bi++ {
						for i := 0; i < c.m; i++ {
							for j := 0; j < c.n; j++ {
								var s float64
								for p := 0; p < c.k; p++ {
									ai, bj := bi*sa+i*lda+p, bi*sb+p*ldb+j
									if ta {
										ai = bi*sa + p*lda + i
									}
									if tb {
										bj = bi*sb + j*ldb + p
									}
									av, bv := a[ai], b[bj]
									s += float64(av) * float64(bv)
								}
								idx := bi*sc + i*ldc + j
								want[idx] = float64(alpha)*s + float64(beta)*float64(cc[idx])
							}
						}
					}
					C := h.up(cc)
					h.be.Gemm(engine.Gemm{TransA: ta, TransB: tb, M: c.m, N: c.n, K: c.k, Alpha: alpha, Beta: beta,
						A: h.up(a), Lda: lda, StrideA: sa, B: h.up(b), Ldb: ldb, StrideB: sb, C: C, Ldc: ldc, StrideC: sc, Batch: c.batch})
					opTol.Check(t, "gemm", f64(h.down(C)), want)
				}
			}
		}
	}
}

func testMoves(t *testing.T, h *harness) {
	src := h.randn(6 * 7)
	dst := h.up(make([]float32, 6*9))
	h.be.Copy2D(dst, 9, h.up(src), 7, 6, 5)
	got := h.down(dst)
	want := make([]float64, 6*9)
	for r := 0; r < 6; r++ {
		for c := 0; c < 5; c++ {
			want[r*9+c] = float64(src[r*7+c])
		}
	}
	Exact.Check(t, "Copy2D", f64(got), want)

	const B, R, C = 3, 37, 41
	x := h.randn(B * R * C)
	tr := h.up(make([]float32, B*R*C))
	h.be.Transpose(tr, h.up(x), B, R, C)
	gt := h.down(tr)
	wt := make([]float64, len(x))
	for b := 0; b < B; b++ {
		for r := 0; r < R; r++ {
			for c := 0; c < C; c++ {
				wt[b*R*C+c*R+r] = float64(x[b*R*C+r*C+c])
			}
		}
	}
	Exact.Check(t, "Transpose", f64(gt), wt)

	y := h.randn(len(x))
	s := h.up(make([]float32, len(x)))
	h.be.Add(s, h.up(x), h.up(y))
	ws := make([]float64, len(x))
	for i := range x {
		ws[i] = float64(x[i] + y[i])
	}
	Exact.Check(t, "Add", f64(h.down(s)), ws)
	// Axpby: a difference is exact on every backend (products by +-1), in
	// place over its second operand; other scalars may be fused on a GPU.
	h.be.Axpby(s, h.up(x), s, 1, -1)
	for i := range x {
		ws[i] = float64(x[i] - float32(ws[i]))
	}
	Exact.Check(t, "Axpby(1, -1) into b", f64(h.down(s)), ws)
	h.be.Axpby(s, h.up(x), h.up(y), 0.75, -1.5)
	for i := range x {
		ws[i] = 0.75*float64(x[i]) - 1.5*float64(y[i])
	}
	opTol.Check(t, "Axpby(0.75, -1.5)", f64(h.down(s)), ws)
	h.be.Fill(s, 2.5)
	for _, v := range h.down(s) {
		if v != 2.5 {
			t.Fatalf("Fill: got %v", v)
		}
	}
}

func refRMSNorm(v []float64, rows, cols int, eps float64) []float64 {
	out := make([]float64, len(v))
	for r := 0; r < rows; r++ {
		var ss float64
		for _, x := range v[r*cols : (r+1)*cols] {
			ss += x * x
		}
		rs := 1 / math.Sqrt(ss/float64(cols)+eps)
		for i := r * cols; i < (r+1)*cols; i++ {
			out[i] = v[i] * rs
		}
	}
	return out
}

func testRMSNorm(t *testing.T, h *harness) {
	const rows, cols, eps = 9, 37, 1e-5
	a, b := h.randn(rows*cols), h.randn(rows*cols)
	y, r := h.up(make([]float32, rows*cols)), h.up(make([]float32, rows))
	h.be.AddRMSNorm(y, r, h.up(a), h.up(b), rows, cols, eps)
	sum := make([]float64, len(a))
	for i := range a {
		sum[i] = float64(a[i] + b[i])
	}
	opTol.Check(t, "AddRMSNorm", f64(h.down(y)), refRMSNorm(sum, rows, cols, eps))
	// b nil: y = rms_norm(a)
	y2 := h.up(make([]float32, rows*cols))
	h.be.AddRMSNorm(y2, r, h.up(a), nil, rows, cols, eps)
	opTol.Check(t, "RMSNorm (b nil)", f64(h.down(y2)), refRMSNorm(f64(a), rows, cols, eps))

	h.be.AddRMSNorm(y, r, h.up(a), h.up(b), rows, cols, eps)
	w := h.randn(rows * cols)
	dx := h.up(make([]float32, rows*cols))
	h.be.RMSNormBackward(dx, h.up(w), y, r, rows, cols)
	want := fdGrad(sum, f64(w), func(v []float64) []float64 { return refRMSNorm(v, rows, cols, eps) })
	fdTol.Check(t, "RMSNormBackward", f64(h.down(dx)), want)
}

func refSwiGLU(gu []float64, rows, inter int) []float64 {
	out := make([]float64, rows*inter)
	for r := 0; r < rows; r++ {
		for i := 0; i < inter; i++ {
			g, u := gu[r*2*inter+i], gu[r*2*inter+inter+i]
			out[r*inter+i] = g / (1 + math.Exp(-g)) * u
		}
	}
	return out
}

func testSwiGLU(t *testing.T, h *harness) {
	const rows, inter = 7, 19
	gu := h.randn(rows * 2 * inter)
	for i := range gu {
		gu[i] *= 3 // reach the saturated parts of the sigmoid
	}
	act := h.up(make([]float32, rows*inter))
	h.be.SwiGLU(act, h.up(gu), rows, inter)
	opTol.Check(t, "SwiGLU", f64(h.down(act)), refSwiGLU(f64(gu), rows, inter))
	w := h.randn(rows * inter)
	dgu := h.up(make([]float32, rows*2*inter))
	h.be.SwiGLUBackward(dgu, h.up(w), h.up(gu), rows, inter)
	want := fdGrad(f64(gu), f64(w), func(v []float64) []float64 { return refSwiGLU(v, rows, inter) })
	fdTol.Check(t, "SwiGLUBackward", f64(h.down(dgu)), want)
}

// refRope rotates q and k heads as the reference: q cos + rotate_half(q) sin.
func refRope(x []float64, cos, sin []float32, batch, seq, heads, hd int) []float64 {
	out := append([]float64(nil), x...)
	H := heads * hd
	half := hd / 2
	for r := 0; r < batch*seq; r++ {
		p := r % seq
		for h := 0; h < 2*heads; h++ {
			base := r*3*H + h*hd
			for j := 0; j < hd; j++ {
				rot := -x[base+j+half]
				if j >= half {
					rot = x[base+j-half]
				}
				out[base+j] = x[base+j]*float64(cos[p*hd+j]) + rot*float64(sin[p*hd+j])
			}
		}
	}
	return out
}

func testRope(t *testing.T, h *harness) {
	const batch, seq, heads, hd = 2, 11, 3, 8
	cos, sin := engine.RopeTables(seq, hd, 10000)
	x := h.randn(batch * seq * 3 * heads * hd)
	buf := h.up(x)
	h.be.Rope(buf, h.up(cos), h.up(sin), batch, seq, heads, hd, false)
	want := refRope(f64(x), cos, sin, batch, seq, heads, hd)
	opTol.Check(t, "Rope", f64(h.down(buf)), want)
	// v heads are untouched.
	got := h.down(buf)
	H := heads * hd
	for r := 0; r < batch*seq; r++ {
		for i := 2 * H; i < 3*H; i++ {
			if got[r*3*H+i] != x[r*3*H+i] {
				t.Fatalf("Rope changed a v element at row %d column %d", r, i)
			}
		}
	}
	// The inverse is the transpose: it is the backward of the linear map.
	w := h.randn(len(x))
	wb := h.up(w)
	h.be.Rope(wb, h.up(cos), h.up(sin), batch, seq, heads, hd, true)
	gw := fdGrad(f64(x), f64(w), func(v []float64) []float64 { return refRope(v, cos, sin, batch, seq, heads, hd) })
	fdTol.Check(t, "Rope inverse (backward)", f64(h.down(wb)), gw)
	// Table values against float64 angles.
	for p := 0; p < seq; p++ {
		for j := 0; j < hd/2; j++ {
			a := float64(p) * math.Pow(10000, -2*float64(j)/hd)
			if math.Abs(float64(cos[p*hd+j])-math.Cos(a)) > 1e-5 || cos[p*hd+j] != cos[p*hd+j+hd/2] || math.Abs(float64(sin[p*hd+j])-math.Sin(a)) > 1e-5 {
				t.Fatalf("rope table at position %d, pair %d: cos %v sin %v, want %v %v", p, j, cos[p*hd+j], sin[p*hd+j], math.Cos(a), math.Sin(a))
			}
		}
	}
}

// refAttention returns out [B*S, H] and lse [B, nh, S] in float64.
func refAttention(x []float64, batch, seq, heads, hd int) (out, lse []float64) {
	H := heads * hd
	out, lse = make([]float64, batch*seq*H), make([]float64, batch*heads*seq)
	sc := 1 / math.Sqrt(float64(hd))
	s := make([]float64, seq)
	for b := 0; b < batch; b++ {
		for h := 0; h < heads; h++ {
			for i := 0; i < seq; i++ {
				m := math.Inf(-1)
				for j := 0; j < seq; j++ {
					var d float64
					for c := 0; c < hd; c++ {
						d += x[(b*seq+i)*3*H+h*hd+c] * x[(b*seq+j)*3*H+H+h*hd+c]
					}
					s[j] = d * sc
					m = math.Max(m, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					z += s[j]
				}
				lse[(b*heads+h)*seq+i] = m + math.Log(z)
				for j := 0; j < seq; j++ {
					for c := 0; c < hd; c++ {
						out[(b*seq+i)*H+h*hd+c] += s[j] / z * x[(b*seq+j)*3*H+2*H+h*hd+c]
					}
				}
			}
		}
	}
	return out, lse
}

func testAttention(t *testing.T, h *harness) {
	// hd 5: any head size the config allows (odd ones without rope).
	for _, c := range []struct{ batch, seq, heads, hd int }{{2, 7, 2, 5}, {1, 33, 3, 16}} {
		H := c.heads * c.hd
		x := h.randn(c.batch * c.seq * 3 * H)
		qkv := h.up(x)
		out, lse := h.up(make([]float32, c.batch*c.seq*H)), h.up(make([]float32, c.batch*c.heads*c.seq))
		h.be.Attention(out, lse, qkv, c.batch, c.seq, c.heads, c.hd)
		wo, wl := refAttention(f64(x), c.batch, c.seq, c.heads, c.hd)
		opTol.Check(t, "Attention out", f64(h.down(out)), wo)
		opTol.Check(t, "Attention lse", f64(h.down(lse)), wl)
		w := h.randn(len(wo))
		dqkv := h.up(make([]float32, len(x)))
		h.be.AttentionBackward(dqkv, h.up(w), qkv, out, lse, c.batch, c.seq, c.heads, c.hd)
		want := fdGrad(f64(x), f64(w), func(v []float64) []float64 { o, _ := refAttention(v, c.batch, c.seq, c.heads, c.hd); return o })
		fdTol.Check(t, "AttentionBackward", f64(h.down(dqkv)), want)
	}
}

func testEmbed(t *testing.T, h *harness) {
	for _, d := range []engine.EmbedDims{
		{B: 3, L: 5, P: 2, H: 8, V: 6, Ndim: 12, NumPuzzles: 4, PosScale: 0.707106781, Scale: float32(math.Sqrt(8))},
		{B: 2, L: 4, P: 0, H: 6, V: 5, PosScale: 1, Scale: float32(math.Sqrt(6))},
	} {
		S := d.P + d.L
		tok := h.randn(d.V * d.H)
		var pos, puz []float32
		var posB, puzB engine.Buf
		if d.PosScale != 1 {
			pos = h.randn(S * d.H)
			posB = h.up(pos)
		}
		if d.Ndim > 0 {
			puz = h.randn(d.NumPuzzles * d.Ndim)
			puzB = h.up(puz)
		}
		in := make([]int32, d.B*d.L)
		for i := range in {
			in[i] = int32(h.rng.IntN(d.V))
		}
		ids := make([]int32, d.B)
		for i := range ids {
			ids[i] = int32(h.rng.IntN(max(d.NumPuzzles, 1)))
		}
		inB, idB := h.upI(in), h.upI(ids)
		x := h.up(make([]float32, d.B*S*d.H))
		h.be.Embed(x, h.up(tok), posB, puzB, inB, idB, d)
		want := make([]float64, d.B*S*d.H)
		for b := 0; b < d.B; b++ {
			for s := 0; s < S; s++ {
				for c := 0; c < d.H; c++ {
					var e float64
					if s < d.P {
						if f := s*d.H + c; f < d.Ndim {
							e = float64(puz[int(ids[b])*d.Ndim+f])
						}
					} else {
						e = float64(tok[int(in[b*d.L+s-d.P])*d.H+c])
					}
					if pos != nil {
						e = float64(d.PosScale) * (e + float64(pos[s*d.H+c]))
					}
					want[(b*S+s)*d.H+c] = float64(d.Scale) * e
				}
			}
		}
		opTol.Check(t, "Embed", f64(h.down(x)), want)

		// Backward: the adjoint of a linear map, <Embed(theta), w> = <theta, Embed^T w>.
		w := h.randn(d.B * S * d.H)
		dTok := h.up(make([]float32, d.V*d.H))
		var dPos, dLoc engine.Buf
		if pos != nil {
			dPos = h.up(make([]float32, S*d.H))
		}
		if d.Ndim > 0 {
			dLoc = h.up(make([]float32, d.B*d.Ndim))
		}
		h.be.EmbedBackward(dTok, dPos, dLoc, h.up(w), inB, d)
		wt := make([]float64, d.V*d.H)
		wp := make([]float64, S*d.H)
		wl := make([]float64, d.B*d.Ndim)
		k := float64(d.Scale) * float64(d.PosScale)
		for b := 0; b < d.B; b++ {
			for s := 0; s < S; s++ {
				for c := 0; c < d.H; c++ {
					g := k * float64(w[(b*S+s)*d.H+c])
					if s < d.P {
						if f := s*d.H + c; f < d.Ndim {
							wl[b*d.Ndim+f] = g
						}
					} else {
						wt[int(in[b*d.L+s-d.P])*d.H+c] += g
					}
					wp[s*d.H+c] += g
				}
			}
		}
		opTol.Check(t, "EmbedBackward tokens", f64(h.down(dTok)), wt)
		if dPos != nil {
			opTol.Check(t, "EmbedBackward positions", f64(h.down(dPos)), wp)
		}
		if dLoc != nil {
			opTol.Check(t, "EmbedBackward puzzle rows", f64(h.down(dLoc)), wl)
		}
	}
}

// refCE is the per-position loss of docs/model.md#loss-head in float64.
func refCE(x []float64, y int, softmax bool) float64 {
	if softmax {
		m := math.Inf(-1)
		for _, v := range x {
			m = math.Max(m, v)
		}
		var z float64
		for _, v := range x {
			z += math.Exp(v - m)
		}
		return m + math.Log(z) - x[y]
	}
	s := func(t float64) float64 {
		if t < 0 {
			return 1 / (1 - t)
		}
		return t + 1
	}
	var z float64
	for _, v := range x {
		z += s(v)
	}
	return -math.Log(s(x[y]) / z)
}

func refBCE(x, t float64) float64 {
	return math.Max(x, 0) - x*t + math.Log1p(math.Exp(-math.Abs(x)))
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func testLossHead(t *testing.T, h *harness) {
	const B, L, V, maxSteps = 4, 6, 5, 3
	for _, softmax := range []bool{false, true} {
		logits := h.randn(B * L * V)
		labels := make([]int32, B*L)
		for i := range labels {
			labels[i] = int32(h.rng.IntN(V))
			if h.rng.IntN(4) == 0 {
				labels[i] = engine.IgnoreLabel
			}
		}
		// Row 1: every label equals the argmax (sequence correct);
		// row 2: all ignored (a padding row, n = 0).
		for p := 0; p < L; p++ {
			best := 0
			for i := 1; i < V; i++ {
				if logits[(L+p)*V+i] > logits[(L+p)*V+best] {
					best = i
				}
			}
			labels[L+p] = int32(best)
			labels[2*L+p] = engine.IgnoreLabel
		}
		q, nq := h.randn(2*B), h.randn(2*B)
		steps := []int32{1, 3, 2, 3}
		const gs = 0.25
		lb := engine.LossBufs{
			Logits: h.up(logits), Labels: h.upI(labels), Q: h.up(q), NextQ: h.up(nq), Steps: h.upI(steps),
			DLogits: h.up(make([]float32, B*L*V)), DQ: h.up(make([]float32, 2*B)),
			Preds: h.upI(make([]int32, B*L)), LMLoss: h.be.Alloc(engine.F64, B), QHaltLoss: h.be.Alloc(engine.F64, B),
			QContLoss: h.be.Alloc(engine.F64, B), QTarget: h.up(make([]float32, B)),
			NValid: h.upI(make([]int32, B)), NCorrect: h.upI(make([]int32, B)), SeqCorrect: h.upI(make([]int32, B)),
		}
		h.be.LossHead(lb, engine.LossDims{B: B, L: L, V: V, Softmax: softmax, HaltMaxSteps: maxSteps, GradScale: gs})
		preds, nv, nc, sc := h.downI(lb.Preds), h.downI(lb.NValid), h.downI(lb.NCorrect), h.downI(lb.SeqCorrect)
		lm, qh, qc, qt := h.downD(lb.LMLoss), h.downD(lb.QHaltLoss), h.downD(lb.QContLoss), h.down(lb.QTarget)
		// total(logits, q) as a float64 function, target held fixed.
		total := func(x []float64, qq []float64) float64 {
			var tot float64
			for b := 0; b < B; b++ {
				n, correct := 0, 0
				var l float64
				for p := 0; p < L; p++ {
					if labels[b*L+p] != engine.IgnoreLabel {
						n++
					}
				}
				for p := 0; p < L; p++ {
					y := int(labels[b*L+p])
					if y == engine.IgnoreLabel {
						continue
					}
					row := x[(b*L+p)*V : (b*L+p+1)*V]
					if int(preds[b*L+p]) == y {
						correct++
					}
					l += refCE(row, y, softmax) / float64(max(n, 1))
				}
				seq := 0.0
				if correct == n {
					seq = 1
				}
				tot += l + 0.5*(refBCE(qq[2*b], seq)+refBCE(qq[2*b+1], float64(qt[b])))
			}
			return tot
		}
		for b := 0; b < B; b++ {
			n, correct := 0, 0
			var l float64
			for p := 0; p < L; p++ {
				row := f64(logits[(b*L+p)*V : (b*L+p+1)*V])
				best := 0
				for i := range row {
					if row[i] > row[best] {
						best = i
					}
				}
				if int(preds[b*L+p]) != best {
					t.Fatalf("pred at row %d position %d: %d, want %d", b, p, preds[b*L+p], best)
				}
				if y := int(labels[b*L+p]); y != engine.IgnoreLabel {
					n++
					if best == y {
						correct++
					}
				}
			}
			for p := 0; p < L; p++ {
				if y := int(labels[b*L+p]); y != engine.IgnoreLabel {
					l += refCE(f64(logits[(b*L+p)*V:(b*L+p+1)*V]), y, softmax) / float64(max(n, 1))
				}
			}
			if int(nv[b]) != n || int(nc[b]) != correct || (sc[b] == 1) != (correct == n) {
				t.Fatalf("row %d: n %d correct %d seq %d, want %d %d %v", b, nv[b], nc[b], sc[b], n, correct, correct == n)
			}
			seq := 0.0
			if correct == n {
				seq = 1
			}
			next := float64(nq[2*b])
			if steps[b] < maxSteps {
				next = math.Max(next, float64(nq[2*b+1]))
			}
			opTol.Check(t, "lm_loss", []float64{lm[b]}, []float64{l})
			opTol.Check(t, "q_halt_loss", []float64{qh[b]}, []float64{refBCE(float64(q[2*b]), seq)})
			opTol.Check(t, "q_target", []float64{float64(qt[b])}, []float64{sigmoid(next)})
			opTol.Check(t, "q_continue_loss", []float64{qc[b]}, []float64{refBCE(float64(q[2*b+1]), sigmoid(next))})
		}
		if sc[1] != 1 || sc[2] != 1 || nv[2] != 0 || lm[2] != 0 {
			t.Fatalf("edge rows: seq_correct %v, n_valid[2] %d, lm_loss[2] %v", sc, nv[2], lm[2])
		}
		x := f64(logits)
		qq := f64(q)
		gl := fdGrad(x, []float64{gs}, func(v []float64) []float64 { return []float64{total(v, qq)} })
		gq := fdGrad(qq, []float64{gs}, func(v []float64) []float64 { return []float64{total(x, v)} })
		fdTol.Check(t, "dlogits", f64(h.down(lb.DLogits)), gl)
		fdTol.Check(t, "dq", f64(h.down(lb.DQ)), gq)
	}
}

func testACT(t *testing.T, h *harness) {
	const B, S, L, H = 4, 3, 2, 2
	zH, zL := h.up(h.randn(B*S*H)), h.up(h.randn(B*S*H))
	before, _ := h.down(zH), h.down(zL)
	st := engine.ACTState{Steps: h.upI([]int32{5, 2, 0, 7}), Halted: h.upI([]int32{1, 0, 1, 0})}
	ci, cl, cp := h.upI(make([]int32, B*L)), h.upI(make([]int32, B*L)), h.upI([]int32{9, 9, 9, 9})
	bi, bl, bp := h.upI([]int32{1, 2, 3, 4, 5, 6, 7, 8}), h.upI([]int32{-100, 1, 2, 3, 4, 5, 6, 7}), h.upI([]int32{1, 2, 3, 4})
	hInit, lInit := h.up([]float32{10, 11}), h.up([]float32{20, 21})
	h.be.ACTReset(zH, zL, st, ci, cl, cp, bi, bl, bp, hInit, lInit, B, S, L, H)
	gH, gL := h.down(zH), h.down(zL)
	for b := 0; b < B; b++ {
		for i := 0; i < S*H; i++ {
			reset := b == 0 || b == 2
			wantH := before[b*S*H+i]
			if reset {
				wantH = float32(10 + i%H)
			}
			if gH[b*S*H+i] != wantH {
				t.Fatalf("ACTReset z_H slot %d element %d: %v want %v", b, i, gH[b*S*H+i], wantH)
			}
			if reset && gL[b*S*H+i] != float32(20+i%H) {
				t.Fatalf("ACTReset z_L slot %d: %v", b, gL[b*S*H+i])
			}
		}
	}
	Exact.Check(t, "ACTReset steps", i64(h.downI(st.Steps)), []float64{0, 2, 0, 7})
	Exact.Check(t, "ACTReset inputs", i64(h.downI(ci)), []float64{1, 2, 0, 0, 5, 6, 0, 0})
	Exact.Check(t, "ACTReset labels", i64(h.downI(cl)), []float64{-100, 1, 0, 0, 4, 5, 0, 0})
	Exact.Check(t, "ACTReset pids", i64(h.downI(cp)), []float64{1, 9, 3, 9})

	// Halting: steps after increment 1, 3, 1, 8 with max 8.
	q := h.up([]float32{0.5, 1, -0.1, -0.2, 2, 3, -1, -2})
	for _, c := range []struct {
		train, noCont bool
		min           []int32
		want          []float64
	}{
		{false, true, []int32{0, 0, 0, 0}, []float64{0, 0, 0, 1}},
		{true, true, []int32{0, 0, 0, 0}, []float64{1, 0, 1, 1}},
		{true, false, []int32{0, 0, 0, 0}, []float64{0, 1, 0, 1}},
		{true, true, []int32{2, 0, 0, 9}, []float64{0, 0, 1, 0}},
	} {
		s := engine.ACTState{Steps: h.upI([]int32{0, 2, 0, 7}), Halted: h.upI(make([]int32, B))}
		h.be.ACTHalt(s, q, h.upI(c.min), B, 8, c.train, c.noCont)
		Exact.Check(t, "ACTHalt steps", i64(h.downI(s.Steps)), []float64{1, 3, 1, 8})
		Exact.Check(t, "ACTHalt halted", i64(h.downI(s.Halted)), c.want)
	}
}

func testErrors(t *testing.T, h *harness) {
	// A too-short buffer must surface as an error from Sync, naming the op.
	a := h.up(make([]float32, 4))
	h.be.Gemm(engine.Gemm{M: 3, N: 3, K: 3, Alpha: 1, A: a, Lda: 3, B: a, Ldb: 3, C: a, Ldc: 3})
	if err := h.be.Sync(); err == nil {
		t.Fatal("Gemm on a short buffer: no error")
	} else if !contains(err.Error(), "Gemm") {
		t.Fatalf("error does not name the op: %v", err)
	}
	if err := h.be.Sync(); err != nil {
		t.Fatalf("Sync did not clear the error: %v", err)
	}
	d := engine.EmbedDims{B: 1, L: 2, H: 2, V: 3, PosScale: 1, Scale: 1}
	h.be.Embed(h.up(make([]float32, 4)), h.up(make([]float32, 6)), nil, nil, h.upI([]int32{1, 3}), h.upI([]int32{0}), d)
	if err := h.be.Sync(); err == nil || !contains(err.Error(), "token 3") {
		t.Fatalf("Embed with token 3 of vocabulary 3: error %v", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// testOptimizers checks the optimizer ops against values computed by hand
// from the update rules of docs/training.md (written out in the comments).
func testOptimizers(t *testing.T, h *harness) {
	// AdamATan2, lr 0.1, betas (0.9, 0.95), wd 0.1, g = (0.5, -1) twice:
	// step 1: m = (0.05, -0.1), v = (0.0125, 0.05), denominators
	// sqrt(v)/sqrt(0.05) = (0.5, 1), p = p*0.99 - 1*atan2(m, denom).
	p, g := h.up([]float32{1, -2}), h.up([]float32{0.5, -1})
	m, v := h.up(make([]float32, 2)), h.up(make([]float32, 2))
	hp := engine.AdamHyper{LR: 0.1, Beta1: 0.9, Beta2: 0.95, WeightDecay: 0.1, Step: 1}
	h.be.AdamATan2(p, g, m, v, hp)
	opTol.Check(t, "AdamATan2 step 1", f64(h.down(p)), []float64{0.99 - math.Atan2(0.05, 0.5), -1.98 - math.Atan2(-0.1, 1)})
	opTol.Check(t, "AdamATan2 m", f64(h.down(m)), []float64{0.05, -0.1})
	opTol.Check(t, "AdamATan2 v", f64(h.down(v)), []float64{0.0125, 0.05})
	hp.Step = 2
	h.be.AdamATan2(p, g, m, v, hp)
	opTol.Check(t, "AdamATan2 step 2", f64(h.down(p)), []float64{0.782605956921332, -1.762705956921332})
	h.sync()
	hp.Step = 0
	h.be.AdamATan2(p, g, m, v, hp)
	if err := h.be.Sync(); err == nil {
		t.Error("AdamATan2 at step 0: no error")
	}

	// Sign-SGD: rows of ids (2, 0, 2) summed per id: row 2 gets
	// (1-3, 0.5+0.25) = (-2, 0.75), row 0 gets (0, -1) (sign 0 stays 0),
	// row 1 is untouched. w = w (1 - 0.1*0.5) - 0.1 sign(g).
	table := h.up([]float32{1, 1, 2, 2, 3, 3})
	grads := h.up([]float32{1, 0.5, 0, -1, -3, 0.25})
	h.be.SignSGDRows(table, grads, h.upI([]int32{2, 0, 2}), 3, 2, 0.1, 0.5)
	opTol.Check(t, "SignSGDRows", f64(h.down(table)), []float64{0.95, 0.95 + 0.1, 2, 2, 3*0.95 + 0.1, 3*0.95 - 0.1})

	// EMA with rate 0.9: shadow = 0.1 p + 0.9 shadow.
	sh := h.up([]float32{1, 2})
	h.be.EMA(sh, h.up([]float32{3, -4}), 0.9)
	opTol.Check(t, "EMA", f64(h.down(sh)), []float64{1.2, 1.4})

	x := h.randn(100003)
	var want float64
	for _, e := range x {
		want += float64(e) * float64(e)
	}
	dst := h.be.Alloc(engine.F64, 1)
	h.be.SumSquares(dst, h.up(x))
	opTol.Check(t, "SumSquares", h.downD(dst), []float64{want})
	x[77] = float32(math.NaN())
	h.be.SumSquares(dst, h.up(x))
	if s := h.downD(dst)[0]; !math.IsNaN(s) {
		t.Errorf("SumSquares with a NaN element: %v", s)
	}
}
