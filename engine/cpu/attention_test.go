package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tinyrecursive/trm/engine"
)

// refAttn64 is attention in float64 from the definition: out [B*S, H],
// lse [B, heads, S] and, given dout, dqkv [B*S, 3H] by the analytic
// gradient (softmax backward written out), from qkv [B*S, 3H].
func refAttn64(x, dout []float32, batch, seq, heads, hd int) (out, lse, dx []float64) {
	H := heads * hd
	ld := 3 * H
	out, lse, dx = make([]float64, batch*seq*H), make([]float64, batch*heads*seq), make([]float64, batch*seq*ld)
	sc := 1 / math.Sqrt(float64(hd))
	P := make([]float64, seq*seq)
	dS := make([]float64, seq*seq)
	for b := 0; b < batch; b++ {
		q := func(i, c int) float64 { return float64(x[(b*seq+i)*ld+c]) }
		for h := 0; h < heads; h++ {
			qi, ki, vi := h*hd, H+h*hd, 2*H+h*hd
			for i := 0; i < seq; i++ {
				m := math.Inf(-1)
				for j := 0; j < seq; j++ {
					var d float64
					for c := 0; c < hd; c++ {
						d += q(i, qi+c) * q(j, ki+c)
					}
					P[i*seq+j] = d * sc
					m = math.Max(m, d*sc)
				}
				var z float64
				for j := 0; j < seq; j++ {
					P[i*seq+j] = math.Exp(P[i*seq+j] - m)
					z += P[i*seq+j]
				}
				lse[(b*heads+h)*seq+i] = m + math.Log(z)
				for j := 0; j < seq; j++ {
					P[i*seq+j] /= z
					for c := 0; c < hd; c++ {
						out[(b*seq+i)*H+h*hd+c] += P[i*seq+j] * q(j, vi+c)
					}
				}
			}
			if dout == nil {
				continue
			}
			g := func(i, c int) float64 { return float64(dout[(b*seq+i)*H+h*hd+c]) }
			for i := 0; i < seq; i++ {
				var D float64
				for j := 0; j < seq; j++ {
					var dp float64
					for c := 0; c < hd; c++ {
						dp += g(i, c) * q(j, vi+c)
					}
					dS[i*seq+j] = dp
					D += P[i*seq+j] * dp
				}
				for j := 0; j < seq; j++ {
					dS[i*seq+j] = P[i*seq+j] * (dS[i*seq+j] - D)
				}
			}
			for i := 0; i < seq; i++ {
				for j := 0; j < seq; j++ {
					p, ds := P[i*seq+j], dS[i*seq+j]
					for c := 0; c < hd; c++ {
						dx[(b*seq+i)*ld+qi+c] += sc * ds * q(j, ki+c)
						dx[(b*seq+j)*ld+ki+c] += sc * ds * q(i, qi+c)
						dx[(b*seq+j)*ld+vi+c] += p * g(i, c)
					}
				}
			}
		}
	}
	return out, lse, dx
}

// checkClose fails when |got - want| > abs * max(1, max|want|) + rel * |want| somewhere.
func checkClose(t *testing.T, what string, got []float32, want []float64, abs, rel float64) {
	t.Helper()
	scale := 1.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	worst := 0.0 // the largest |diff| as a fraction of its limit
	for i, w := range want {
		d := math.Abs(float64(got[i]) - w)
		lim := abs*scale + rel*math.Abs(w)
		if !(d <= lim) {
			t.Fatalf("%s [%d]: %v, want %v (|diff| %.3g)", what, i, got[i], w, d)
		}
		worst = max(worst, d/lim)
	}
	if testing.Verbose() {
		t.Logf("%s: worst |diff| %.2f of the limit", what, worst)
	}
}

// attnSeqs and attnHDs make awkward attention shapes: sequences of 1,
// below, at and past the 4-row groups and the 16-column tiles, which none
// of the block sizes divides (production 128 x 512, test 16 x 32); head
// sizes below a vector, with Go tails after the vector columns, and the
// 64 of the presets.
var attnSeqs = []int{1, 7, 17, 63, 65, 97, 130, 300}
var attnHDs = []int{5, 8, 24, 64, 80}

// attnCase runs the backend's forward and backward on random inputs.
func attnCase(be *Backend, x, dout []float32, batch, seq, heads, hd int) (out, lse, dx []float32) {
	H := heads * hd
	up := func(v []float32) engine.Buf {
		b := be.Alloc(engine.F32, len(v))
		be.Upload(b, v)
		return b
	}
	qkv, ob, lb := up(x), be.Alloc(engine.F32, batch*seq*H), be.Alloc(engine.F32, batch*heads*seq)
	db := be.Alloc(engine.F32, len(x))
	be.Fill(db, float32(math.NaN())) // every element must be written
	be.Attention(ob, lb, qkv, batch, seq, heads, hd)
	be.AttentionBackward(db, up(dout), qkv, ob, lb, batch, seq, heads, hd)
	out, lse, dx = make([]float32, batch*seq*H), make([]float32, batch*heads*seq), make([]float32, len(x))
	be.Download(out, ob)
	be.Download(lse, lb)
	be.Download(dx, db)
	if err := be.Sync(); err != nil {
		panic(err)
	}
	return out, lse, dx
}

// forEachAttnBlocks runs f with the production block sizes and with small
// ones (16 query rows, 32 keys), under which the test sequences span many
// blocks that do not divide them, so the online softmax rescales often.
func forEachAttnBlocks(t *testing.T, name string, f func(t *testing.T)) {
	q, k := attnQBlock, attnKBlock
	defer func() { attnQBlock, attnKBlock = q, k }()
	for _, bs := range [][2]int{{q, k}, {16, 32}} {
		attnQBlock, attnKBlock = bs[0], bs[1]
		t.Run(fmt.Sprintf("%s/bq%d-bk%d", name, bs[0], bs[1]), f)
	}
}

// TestAttentionBlocked checks the blocked forward and backward of every
// SIMD variant against float64 attention on the awkward shapes, with the
// production and small blocks; with the small ones a row's max changes
// from key block to key block, so the online softmax rescales.
func TestAttentionBlocked(t *testing.T) {
	if testing.Short() {
		attnSeqs = []int{1, 7, 65, 130}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	const batch, heads = 2, 2
	for _, seq := range attnSeqs {
		for _, hd := range attnHDs {
			spread := float32(1)
			if seq == 300 {
				spread = 1.5
			}
			x := randVec(rng, batch*seq*3*heads*hd, spread)
			dout := randVec(rng, batch*seq*heads*hd, 1)
			wo, wl, wdx := refAttn64(x, dout, batch, seq, heads, hd)
			forEachSIMD(t, func(t *testing.T) {
				forEachAttnBlocks(t, fmt.Sprintf("seq%d-hd%d", seq, hd), func(t *testing.T) {
					out, lse, dx := attnCase(New(2), x, dout, batch, seq, heads, hd)
					checkClose(t, "out", out, wo, 2e-6, 1e-5)
					checkClose(t, "lse", lse, wl, 5e-7, 2e-7)
					checkClose(t, "dqkv", dx, wdx, 3e-6, 3e-5)
				})
			})
		}
	}
}

// TestAttentionThreads: the blocked attention gives the same bits on 1, 2
// and 3 threads, under every variant (units own their outputs).
func TestAttentionThreads(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, s := range []struct{ batch, seq, heads, hd int }{{3, 130, 3, 64}, {2, 97, 5, 8}, {1, 300, 2, 24}} {
		x := randVec(rng, s.batch*s.seq*3*s.heads*s.hd, 2)
		dout := randVec(rng, s.batch*s.seq*s.heads*s.hd, 1)
		forEachSIMD(t, func(t *testing.T) {
			forEachAttnBlocks(t, fmt.Sprintf("seq%d", s.seq), func(t *testing.T) { testAttnThreads(t, x, dout, s.batch, s.seq, s.heads, s.hd) })
		})
	}
}

// testAttnThreads requires the same bits from 2 and 3 threads as from 1.
func testAttnThreads(t *testing.T, x, dout []float32, batch, seq, heads, hd int) {
	o1, l1, d1 := attnCase(New(1), x, dout, batch, seq, heads, hd)
	for _, threads := range []int{2, 3} {
		o, l, d := attnCase(New(threads), x, dout, batch, seq, heads, hd)
		for _, c := range []struct {
			name   string
			a, ref []float32
		}{{"out", o, o1}, {"lse", l, l1}, {"dqkv", d, d1}} {
			for i := range c.ref {
				if math.Float32bits(c.a[i]) != math.Float32bits(c.ref[i]) {
					t.Fatalf("%s [%d] on %d threads %v, on 1 thread %v", c.name, i, threads, c.a[i], c.ref[i])
				}
			}
		}
	}
}

// TestAttentionTiles checks the tile kernels of every variant against
// float64 sums (the packing against its definition) on odd sizes and
// strides, and that they leave everything outside their tile alone.
func TestAttentionTiles(t *testing.T) {
	forEachSIMD(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(15, 16))
		for _, hd := range []int{1, 5, 8, 16, 17, 33, 64, 80, 113} {
			// packRows4: full and partial groups, vector columns and tails.
			for _, n := range []int{1, 4, 7, 13} {
				ld := hd + 9
				src := randVec(rng, n*ld, 1)
				ap := randVec(rng, roundUp(n, 4)*hd, 1) // stale contents: pad rows must be zeroed
				packRows4(ap, src, ld, n, hd)
				for r := 0; r < roundUp(n, 4); r++ {
					for c := 0; c < hd; c++ {
						want := float32(0)
						if r < n {
							want = src[r*ld+c]
						}
						if got := ap[((r/4)*hd+c)*4+r%4]; got != want {
							t.Fatalf("packRows4 n %d hd %d (%d, %d): %v, want %v", n, hd, r, c, got, want)
						}
					}
				}
			}
			for _, groups := range []int{1, 3} {
				for _, n := range []int{16, 32, 48, 112} {
					rows := 4 * groups
					ap := randVec(rng, rows*hd, 1)
					ldb, lds := n+5, n+3
					bt := randVec(rng, hd*ldb, 1)
					s := make([]float32, rows*lds)
					qkTile(s, lds, ap, hd, bt, ldb, n, groups, 0.3)
					for r := 0; r < rows; r++ {
						for j := 0; j < lds; j++ {
							if j >= n {
								if s[r*lds+j] != 0 {
									t.Fatalf("qkTile hd %d n %d: wrote column %d", hd, n, j)
								}
								continue
							}
							var want float64
							for c := 0; c < hd; c++ {
								want += float64(ap[((r/4)*hd+c)*4+r%4]) * float64(bt[c*ldb+j])
							}
							want *= 0.3
							if !closeTo(float64(s[r*lds+j]), want, 1e-5, 1e-6*math.Sqrt(float64(hd))) {
								t.Fatalf("qkTile hd %d n %d groups %d [%d][%d]: %v, want %v", hd, n, groups, r, j, s[r*lds+j], want)
							}
						}
					}
				}
				// axpyRows with coefficients by rows and by columns.
				for _, k := range []int{1, 6, 37} {
					rows, w := 4*groups, hd
					ldo, ldx, ldc := w+3, w+7, max(k, rows)+2
					o := randVec(rng, rows*ldo, 1)
					x := randVec(rng, k*ldx, 1)
					c := randVec(rng, max(k, rows)*ldc, 1)
					for _, byCol := range []bool{false, true} {
						rs, ks := ldc, 1
						if byCol {
							rs, ks = 1, ldc
						}
						got := append([]float32(nil), o...)
						axpyRows(got, ldo, c, rs, ks, x, ldx, k, w, groups)
						for r := 0; r < rows; r++ {
							for col := 0; col < ldo; col++ {
								want := float64(o[r*ldo+col])
								if col >= w {
									if got[r*ldo+col] != o[r*ldo+col] {
										t.Fatalf("axpyRows w %d: wrote column %d", w, col)
									}
									continue
								}
								for kk := 0; kk < k; kk++ {
									want += float64(c[r*rs+kk*ks]) * float64(x[kk*ldx+col])
								}
								if !closeTo(float64(got[r*ldo+col]), want, 1e-5, 1e-5*math.Sqrt(float64(k))) {
									t.Fatalf("axpyRows w %d k %d groups %d byCol %v [%d][%d]: %v, want %v", w, k, groups, byCol, r, col, got[r*ldo+col], want)
								}
							}
						}
					}
				}
			}
		}
	})
}
