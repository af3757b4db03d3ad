package cpu

import (
	"math"

	"github.com/tinyrecursive/trm/engine"
)

// AdamATan2 implements engine.Backend in one pass over the flat buffer.
// The bias corrections are folded into two scalars; atan2 replaces the
// epsilon-guarded division, so there is no epsilon.
// FLOPs ~15 per element; bytes 28 per element (p, m, v read and written; g read).
func (b *Backend) AdamATan2(params, grads, m, v engine.Buf, h engine.AdamHyper) {
	n := params.Len()
	if !b.need("AdamATan2", req{"grads", grads, n}, req{"m", m, n}, req{"v", v, n}) {
		return
	}
	if h.Step < 1 {
		b.fail("AdamATan2: step %d, steps count from 1", h.Step)
		return
	}
	j := &b.jobs.adam
	*j = adamJob{p: f32s(params), g: f32s(grads), m: f32s(m), v: f32s(v),
		decay:    float32(1 - h.LR*h.WeightDecay),
		stepSize: float32(h.LR / (1 - math.Pow(h.Beta1, float64(h.Step)))),
		bc2:      float32(math.Sqrt(1 - math.Pow(h.Beta2, float64(h.Step)))),
		w1:       float32(1 - h.Beta1), w2: float32(1 - h.Beta2)}
	b.pool.run(j, n, grainElems/4)
	*j = adamJob{}
}

// adamJob is the AdamATan2 update of elements [lo, hi).
type adamJob struct {
	p, g, m, v                   []float32
	decay, stepSize, bc2, w1, w2 float32
}

func (j *adamJob) run(_, lo, hi int) {
	p, g, mm, vv := j.p[lo:hi], j.g[lo:hi], j.m[lo:hi], j.v[lo:hi]
	for i := range p {
		gi := g[i]
		mi := mm[i] + j.w1*(gi-mm[i])
		vi := vv[i] + j.w2*(gi*gi-vv[i])
		mm[i], vv[i] = mi, vi
		denom := float32(math.Sqrt(float64(vi))) / j.bc2
		p[i] = p[i]*j.decay - j.stepSize*float32(math.Atan2(float64(mi), float64(denom)))
	}
}

// SignSGDRows implements engine.Backend. Rows are summed per id in row
// order (deterministic), then each distinct row is updated once.
func (b *Backend) SignSGDRows(table, grads, ids engine.Buf, n, dim int, lr, wd float32) {
	if !b.need("SignSGDRows", req{"grads", grads, n * dim}, req{"ids", ids, n}) {
		return
	}
	t, g, id := f32s(table), f32s(grads), i32s(ids)
	rows := len(t) / max(dim, 1)
	// slot[k] is the accumulator of table row k (-1: none yet); slots are
	// handed out in order of first appearance and reset on the way out, so
	// the scratch is reused by every call without a map or allocation.
	if len(b.sign.slot) < rows {
		b.sign.slot = make([]int32, rows)
		for i := range b.sign.slot {
			b.sign.slot[i] = -1
		}
	}
	if cap(b.sign.acc) < n*dim {
		b.sign.acc = make([]float32, n*dim)
	}
	if cap(b.sign.order) < n {
		b.sign.order = make([]int32, 0, n)
	}
	slot, acc, order := b.sign.slot, b.sign.acc[:n*dim], b.sign.order[:0]
	defer func() {
		for _, k := range order {
			slot[k] = -1
		}
	}()
	for r := 0; r < n; r++ {
		k := id[r]
		if k < 0 || int(k) >= rows {
			b.fail("SignSGDRows: id %d outside the table's %d rows", k, rows)
			return
		}
		sl := slot[k]
		if sl < 0 {
			sl = int32(len(order))
			slot[k] = sl
			order = append(order, k)
			clear(acc[int(sl)*dim : (int(sl)+1)*dim])
		}
		a := acc[int(sl)*dim : (int(sl)+1)*dim]
		for i, x := range g[r*dim : (r+1)*dim] {
			a[i] += x
		}
	}
	for i, k := range order {
		w := t[int(k)*dim : (int(k)+1)*dim]
		for c, x := range acc[i*dim : (i+1)*dim] {
			s := float32(0)
			if x > 0 {
				s = 1
			} else if x < 0 {
				s = -1
			}
			w[c] = w[c]*(1-lr*wd) - lr*s
		}
	}
}

// emaJob is the EMA update of elements [lo, hi).
type emaJob struct {
	s, p []float32
	rate float32
}

func (j *emaJob) run(_, lo, hi int) {
	s, p := j.s[lo:hi], j.p[lo:hi]
	for i := range s {
		s[i] = (1-j.rate)*p[i] + j.rate*s[i]
	}
}

// EMA implements engine.Backend.
func (b *Backend) EMA(shadow, params engine.Buf, rate float32) {
	n := shadow.Len()
	if !b.need("EMA", req{"params", params, n}) {
		return
	}
	j := &b.jobs.ema
	*j = emaJob{f32s(shadow), f32s(params), rate}
	b.pool.run(j, n, grainElems)
	*j = emaJob{}
}

// sumSqChunk is SumSquares' fixed chunk: the sums of chunks are added in
// order, so the result does not depend on the thread count.
const sumSqChunk = 1 << 14

// sumSqJob sums the squares of chunks [lo, hi) into parts.
type sumSqJob struct {
	v     []float32
	parts []float64
}

func (j *sumSqJob) run(_, lo, hi int) {
	for c := lo; c < hi; c++ {
		x := j.v[c*sumSqChunk : min((c+1)*sumSqChunk, len(j.v))]
		j.parts[c] = dot64(x, x)
	}
}

// SumSquares implements engine.Backend: fixed chunks summed in float64,
// then the chunk sums added in order.
func (b *Backend) SumSquares(dst, x engine.Buf) {
	if !b.need("SumSquares", req{"dst", dst, 1}) {
		return
	}
	v := f32s(x)
	nc := (len(v) + sumSqChunk - 1) / sumSqChunk
	if cap(b.parts) < nc {
		b.parts = make([]float64, nc)
	}
	parts := b.parts[:nc]
	j := &b.jobs.sumSq
	*j = sumSqJob{v, parts}
	b.pool.run(j, nc, 1)
	*j = sumSqJob{}
	var s float64
	for _, p := range parts {
		s += p
	}
	f64s(dst)[0] = s
}
