package cpu

import (
	"math"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// Rope implements engine.Backend. Per head the pairs (v_j, v_{j+hd/2}) are
// rotated by the position's angle: a' = a c - b s, b' = b c + a s (the
// reference's q cos + rotate_half(q) sin, with its duplicated tables). The
// inverse rotation is the transpose, used for the backward pass.
// FLOPs 6 per rotated pair; bytes 8 per element of q and k.
func (b *Backend) Rope(qkv, cos, sin engine.Buf, batch, seq, heads, hd int, inverse bool) {
	H := heads * hd
	if !b.need("Rope", "qkv", qkv, batch*seq*3*H, "cos", cos, seq*hd, "sin", sin, seq*hd) {
		return
	}
	x, cc, ss := f32s(qkv), f32s(cos), f32s(sin)
	half := hd / 2
	b.parallel(batch*seq, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			p := r % seq
			c, s := cc[p*hd:p*hd+half], ss[p*hd:p*hd+half]
			row := x[r*3*H : r*3*H+2*H] // q heads then k heads
			for h := 0; h < 2*heads; h++ {
				v := row[h*hd : (h+1)*hd]
				for j := 0; j < half; j++ {
					a, bb := v[j], v[j+half]
					if inverse {
						v[j], v[j+half] = a*c[j]+bb*s[j], bb*c[j]-a*s[j]
					} else {
						v[j], v[j+half] = a*c[j]-bb*s[j], bb*c[j]+a*s[j]
					}
				}
			}
		}
	})
}

// Attention implements engine.Backend: per batch row, the scores of all
// heads as one strided-batched GEMM (q k^T / sqrt(hd), heads hd apart in
// the qkv rows), a softmax per score row that keeps its log-sum-exp, and
// a second batched GEMM for p v. The S x S scores live only in a scratch
// buffer of one batch row; the backward pass recomputes them from the lse.
// FLOPs 4 S^2 hd per head (+ ~5 S^2 for the softmax); bytes ~(4 S hd + S^2) * 4 per head.
func (b *Backend) Attention(out, lse, qkv engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !b.need("Attention", "out", out, batch*seq*H, "lse", lse, batch*heads*seq, "qkv", qkv, batch*seq*3*H) {
		return
	}
	o, l, x := f32s(out), f32s(lse), f32s(qkv)
	qkScale := float32(1 / math.Sqrt(float64(hd)))
	sc := b.scratch(0, heads*seq*seq)
	for bi := 0; bi < batch; bi++ {
		xb := x[bi*seq*3*H:]
		gemm.SgemmStridedBatched(false, true, seq, seq, hd, qkScale, xb, 3*H, hd, xb[H:], 3*H, hd, 0, sc, seq, seq*seq, heads)
		lb := l[bi*heads*seq:]
		b.parallel(heads*seq, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				row := sc[r*seq : (r+1)*seq]
				m := maxOf(row)
				sum := expShiftSum(row, m)
				scale(row, float32(1/sum))
				lb[r] = m + float32(math.Log(sum))
			}
		})
		gemm.SgemmStridedBatched(false, false, seq, hd, seq, 1, sc, seq, seq*seq, xb[2*H:], 3*H, hd, 0, o[bi*seq*H:], H, hd, heads)
	}
}

// AttentionBackward implements engine.Backend, per batch row with
// strided-batched GEMMs over the heads: P = exp(q k^T/sqrt(hd) - lse)
// recomputed, dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)),
// dQ = dS K / sqrt(hd), dK = dS^T Q / sqrt(hd).
// FLOPs 10 S^2 hd per head (8 for the gradients, 2 to recompute P).
func (b *Backend) AttentionBackward(dqkv, dout, qkv, out, lse engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !b.need("AttentionBackward", "dqkv", dqkv, batch*seq*3*H, "dout", dout, batch*seq*H, "qkv", qkv, batch*seq*3*H,
		"out", out, batch*seq*H, "lse", lse, batch*heads*seq) {
		return
	}
	dx, dO, x, o, l := f32s(dqkv), f32s(dout), f32s(qkv), f32s(out), f32s(lse)
	qkScale := float32(1 / math.Sqrt(float64(hd)))
	P := b.scratch(0, heads*seq*seq)
	dP := b.scratch(1, heads*seq*seq)
	for bi := 0; bi < batch; bi++ {
		xb, db := x[bi*seq*3*H:], dx[bi*seq*3*H:]
		dOb, ob, lb := dO[bi*seq*H:], o[bi*seq*H:], l[bi*heads*seq:]
		gemm.SgemmStridedBatched(false, true, seq, seq, hd, qkScale, xb, 3*H, hd, xb[H:], 3*H, hd, 0, P, seq, seq*seq, heads)
		b.parallel(heads*seq, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				expShiftSum(P[r*seq:(r+1)*seq], lb[r])
			}
		})
		gemm.SgemmStridedBatched(true, false, seq, hd, seq, 1, P, seq, seq*seq, dOb, H, hd, 0, db[2*H:], 3*H, hd, heads)
		gemm.SgemmStridedBatched(false, true, seq, seq, hd, 1, dOb, H, hd, xb[2*H:], 3*H, hd, 0, dP, seq, seq*seq, heads)
		b.parallel(heads*seq, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				h, i := r/seq, r%seq
				D := dot(dOb[i*H+h*hd:i*H+(h+1)*hd], ob[i*H+h*hd:i*H+(h+1)*hd])
				pdsub(dP[r*seq:(r+1)*seq], P[r*seq:(r+1)*seq], D)
			}
		})
		gemm.SgemmStridedBatched(false, false, seq, hd, seq, qkScale, dP, seq, seq*seq, xb[H:], 3*H, hd, 0, db, 3*H, hd, heads)
		gemm.SgemmStridedBatched(true, false, seq, hd, seq, qkScale, dP, seq, seq*seq, xb, 3*H, hd, 0, db[H:], 3*H, hd, heads)
	}
}

// dot is a float32 dot product with four partial sums (a fixed order).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy computes y += alpha * x.
func axpy(y []float32, alpha float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += alpha * x[i]
	}
}
