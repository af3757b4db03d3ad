package cpu

import (
	"math"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// ropeJob rotates the q and k heads of rows of qkv.
type ropeJob struct {
	x, cos, sin            []float32
	seq, heads, hd, stride int
	inverse                bool
}

func (j *ropeJob) run(_, lo, hi int) {
	hd, half := j.hd, j.hd/2
	for r := lo; r < hi; r++ {
		p := r % j.seq
		c, s := j.cos[p*hd:p*hd+half], j.sin[p*hd:p*hd+half]
		row := j.x[r*j.stride : r*j.stride+2*j.heads*hd] // q heads then k heads
		for h := 0; h < 2*j.heads; h++ {
			v := row[h*hd : (h+1)*hd]
			rope(v[:half], v[half:hd], c, s, j.inverse)
		}
	}
}

// Rope implements engine.Backend. Per head the pairs (v_j, v_{j+hd/2}) are
// rotated by the position's angle: a' = a c - b s, b' = b c + a s (the
// reference's q cos + rotate_half(q) sin, with its duplicated tables). The
// inverse rotation is the transpose, used for the backward pass.
// FLOPs 6 per rotated pair; bytes 8 per element of q and k.
func (b *Backend) Rope(qkv, cos, sin engine.Buf, batch, seq, heads, hd int, inverse bool) {
	H := heads * hd
	if !b.need("Rope", req{"qkv", qkv, batch * seq * 3 * H}, req{"cos", cos, seq * hd}, req{"sin", sin, seq * hd}) {
		return
	}
	j := &b.jobs.rope
	*j = ropeJob{x: f32s(qkv), cos: f32s(cos), sin: f32s(sin), seq: seq, heads: heads, hd: hd, stride: 3 * H, inverse: inverse}
	b.pool.run(j, batch*seq, rowGrain(2*H))
	*j = ropeJob{}
}

// softmaxJob turns score rows into probabilities and records each row's
// log-sum-exp.
type softmaxJob struct {
	sc, lse []float32
	seq     int
}

func (j *softmaxJob) run(_, lo, hi int) {
	for r := lo; r < hi; r++ {
		row := j.sc[r*j.seq : (r+1)*j.seq]
		m := maxOf(row)
		sum := expShiftSum(row, m)
		scale(row, float32(1/sum))
		j.lse[r] = m + float32(math.Log(sum))
	}
}

// Attention implements engine.Backend: per batch row, the scores of all
// heads as one strided-batched GEMM (q k^T / sqrt(hd), heads hd apart in
// the qkv rows), a softmax per score row that keeps its log-sum-exp, and
// a second batched GEMM for p v. The S x S scores live only in a scratch
// buffer of one batch row; the backward pass recomputes them from the lse.
// FLOPs 4 S^2 hd per head (+ ~5 S^2 for the softmax); bytes ~(4 S hd + S^2) * 4 per head.
func (b *Backend) Attention(out, lse, qkv engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !b.need("Attention", req{"out", out, batch * seq * H}, req{"lse", lse, batch * heads * seq}, req{"qkv", qkv, batch * seq * 3 * H}) {
		return
	}
	o, l, x := f32s(out), f32s(lse), f32s(qkv)
	qkScale := float32(1 / math.Sqrt(float64(hd)))
	sc := b.scratch(0, heads*seq*seq)
	j := &b.jobs.softmax
	for bi := 0; bi < batch; bi++ {
		xb := x[bi*seq*3*H:]
		gemm.SgemmStridedBatched(false, true, seq, seq, hd, qkScale, xb, 3*H, hd, xb[H:], 3*H, hd, 0, sc, seq, seq*seq, heads)
		*j = softmaxJob{sc: sc, lse: l[bi*heads*seq:], seq: seq}
		b.pool.run(j, heads*seq, rowGrain(seq))
		gemm.SgemmStridedBatched(false, false, seq, hd, seq, 1, sc, seq, seq*seq, xb[2*H:], 3*H, hd, 0, o[bi*seq*H:], H, hd, heads)
	}
	*j = softmaxJob{}
}

// attnExpJob recomputes probability rows P = exp(S - lse) in place.
type attnExpJob struct {
	p, lse []float32
	seq    int
}

func (j *attnExpJob) run(_, lo, hi int) {
	for r := lo; r < hi; r++ {
		expShiftSum(j.p[r*j.seq:(r+1)*j.seq], j.lse[r])
	}
}

// attnDSJob turns dP rows into dS = P * (dP - rowsum(dO * O)).
type attnDSJob struct {
	p, dp, dO, o   []float32
	seq, hd, width int
}

func (j *attnDSJob) run(_, lo, hi int) {
	seq, hd, H := j.seq, j.hd, j.width
	for r := lo; r < hi; r++ {
		h, i := r/seq, r%seq
		D := dot(j.dO[i*H+h*hd:i*H+(h+1)*hd], j.o[i*H+h*hd:i*H+(h+1)*hd])
		pdsub(j.dp[r*seq:(r+1)*seq], j.p[r*seq:(r+1)*seq], D)
	}
}

// AttentionBackward implements engine.Backend, per batch row with
// strided-batched GEMMs over the heads: P = exp(q k^T/sqrt(hd) - lse)
// recomputed, dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)),
// dQ = dS K / sqrt(hd), dK = dS^T Q / sqrt(hd).
// FLOPs 10 S^2 hd per head (8 for the gradients, 2 to recompute P).
func (b *Backend) AttentionBackward(dqkv, dout, qkv, out, lse engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !b.need("AttentionBackward", req{"dqkv", dqkv, batch * seq * 3 * H}, req{"dout", dout, batch * seq * H},
		req{"qkv", qkv, batch * seq * 3 * H}, req{"out", out, batch * seq * H}, req{"lse", lse, batch * heads * seq}) {
		return
	}
	dx, dO, x, o, l := f32s(dqkv), f32s(dout), f32s(qkv), f32s(out), f32s(lse)
	qkScale := float32(1 / math.Sqrt(float64(hd)))
	P := b.scratch(0, heads*seq*seq)
	dP := b.scratch(1, heads*seq*seq)
	je, jd := &b.jobs.attnExp, &b.jobs.attnDS
	for bi := 0; bi < batch; bi++ {
		xb, db := x[bi*seq*3*H:], dx[bi*seq*3*H:]
		dOb, ob, lb := dO[bi*seq*H:], o[bi*seq*H:], l[bi*heads*seq:]
		gemm.SgemmStridedBatched(false, true, seq, seq, hd, qkScale, xb, 3*H, hd, xb[H:], 3*H, hd, 0, P, seq, seq*seq, heads)
		*je = attnExpJob{p: P, lse: lb, seq: seq}
		b.pool.run(je, heads*seq, rowGrain(seq))
		gemm.SgemmStridedBatched(true, false, seq, hd, seq, 1, P, seq, seq*seq, dOb, H, hd, 0, db[2*H:], 3*H, hd, heads)
		gemm.SgemmStridedBatched(false, true, seq, seq, hd, 1, dOb, H, hd, xb[2*H:], 3*H, hd, 0, dP, seq, seq*seq, heads)
		*jd = attnDSJob{p: P, dp: dP, dO: dOb, o: ob, seq: seq, hd: hd, width: H}
		b.pool.run(jd, heads*seq, rowGrain(seq))
		gemm.SgemmStridedBatched(false, false, seq, hd, seq, qkScale, dP, seq, seq*seq, xb[H:], 3*H, hd, 0, db, 3*H, hd, heads)
		gemm.SgemmStridedBatched(true, false, seq, hd, seq, qkScale, dP, seq, seq*seq, xb, 3*H, hd, 0, db[H:], 3*H, hd, heads)
	}
	*je, *jd = attnExpJob{}, attnDSJob{}
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
