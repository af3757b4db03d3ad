package cpu

import (
	"math"

	"github.com/tinyrecursive/trm/engine"
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

// Attention implements engine.Backend: per (batch, head), scores
// q k^T / sqrt(hd), a softmax over all S keys and the weighted sum of v.
// The log-sum-exp of each row is kept so the backward pass recomputes the
// probabilities instead of storing S x S.
// FLOPs 4 S^2 hd per head; bytes ~(4 S hd + S) * 4 per head.
func (b *Backend) Attention(out, lse, qkv engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !b.need("Attention", "out", out, batch*seq*H, "lse", lse, batch*heads*seq, "qkv", qkv, batch*seq*3*H) {
		return
	}
	o, l, x := f32s(out), f32s(lse), f32s(qkv)
	scale := float32(1 / math.Sqrt(float64(hd)))
	b.parallel(batch*heads, func(lo, hi int) {
		p := make([]float32, seq)
		for job := lo; job < hi; job++ {
			bi, h := job/heads, job%heads
			base := bi * seq * 3 * H
			for i := 0; i < seq; i++ {
				q := x[base+i*3*H+h*hd : base+i*3*H+(h+1)*hd]
				m := float32(math.Inf(-1))
				for j := 0; j < seq; j++ {
					k := x[base+j*3*H+H+h*hd : base+j*3*H+H+(h+1)*hd]
					s := dot(q, k) * scale
					p[j] = s
					m = max(m, s)
				}
				var sum float64
				for j := range p {
					e := exp32(p[j] - m)
					p[j] = e
					sum += float64(e)
				}
				inv := float32(1 / sum)
				l[job*seq+i] = m + float32(math.Log(sum))
				od := o[(bi*seq+i)*H+h*hd : (bi*seq+i)*H+(h+1)*hd]
				clear(od)
				for j := 0; j < seq; j++ {
					v := x[base+j*3*H+2*H+h*hd : base+j*3*H+2*H+(h+1)*hd]
					axpy(od, p[j]*inv, v)
				}
			}
		}
	})
}

// AttentionBackward implements engine.Backend, recomputing
// P = exp(S - lse): dV = P^T dO, dS = P * (dO V^T - rowsum(dO * O)),
// dQ = dS K / sqrt(hd), dK = dS^T Q / sqrt(hd). Each (batch, head) job
// owns its slice of dqkv, so the accumulation order is fixed.
// FLOPs 8 S^2 hd per head.
func (b *Backend) AttentionBackward(dqkv, dout, qkv, out, lse engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !b.need("AttentionBackward", "dqkv", dqkv, batch*seq*3*H, "dout", dout, batch*seq*H, "qkv", qkv, batch*seq*3*H,
		"out", out, batch*seq*H, "lse", lse, batch*heads*seq) {
		return
	}
	dx, dO, x, o, l := f32s(dqkv), f32s(dout), f32s(qkv), f32s(out), f32s(lse)
	scale := float32(1 / math.Sqrt(float64(hd)))
	b.parallel(batch*heads, func(lo, hi int) {
		p := make([]float32, seq)
		for job := lo; job < hi; job++ {
			bi, h := job/heads, job%heads
			base := bi * seq * 3 * H
			for i := 0; i < seq; i++ {
				r := base + i*3*H + h*hd
				clear(dx[r : r+hd])
				clear(dx[r+H : r+H+hd])
				clear(dx[r+2*H : r+2*H+hd])
			}
			for i := 0; i < seq; i++ {
				q := x[base+i*3*H+h*hd : base+i*3*H+(h+1)*hd]
				do := dO[(bi*seq+i)*H+h*hd : (bi*seq+i)*H+(h+1)*hd]
				oi := o[(bi*seq+i)*H+h*hd : (bi*seq+i)*H+(h+1)*hd]
				D := dot(do, oi)
				li := l[job*seq+i]
				dq := dx[base+i*3*H+h*hd : base+i*3*H+(h+1)*hd]
				for j := 0; j < seq; j++ {
					k := x[base+j*3*H+H+h*hd : base+j*3*H+H+(h+1)*hd]
					v := x[base+j*3*H+2*H+h*hd : base+j*3*H+2*H+(h+1)*hd]
					pij := exp32(dot(q, k)*scale - li)
					p[j] = pij
					axpy(dx[base+j*3*H+2*H+h*hd:base+j*3*H+2*H+(h+1)*hd], pij, do)
					ds := pij * (dot(do, v) - D) * scale
					axpy(dq, ds, k)
					axpy(dx[base+j*3*H+H+h*hd:base+j*3*H+H+(h+1)*hd], ds, q)
				}
			}
		}
	})
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
