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
	if !b.need("AdamATan2", "grads", grads, n, "m", m, n, "v", v, n) {
		return
	}
	if h.Step < 1 {
		b.fail("AdamATan2: step %d, steps count from 1", h.Step)
		return
	}
	p, g, mm, vv := f32s(params), f32s(grads), f32s(m), f32s(v)
	decay := float32(1 - h.LR*h.WeightDecay)
	stepSize := float32(h.LR / (1 - math.Pow(h.Beta1, float64(h.Step))))
	bc2 := float32(math.Sqrt(1 - math.Pow(h.Beta2, float64(h.Step))))
	w1, w2 := float32(1-h.Beta1), float32(1-h.Beta2)
	b.parallel(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gi := g[i]
			mi := mm[i] + w1*(gi-mm[i])
			vi := vv[i] + w2*(gi*gi-vv[i])
			mm[i], vv[i] = mi, vi
			denom := float32(math.Sqrt(float64(vi))) / bc2
			p[i] = p[i]*decay - stepSize*float32(math.Atan2(float64(mi), float64(denom)))
		}
	})
}

// SignSGDRows implements engine.Backend. Rows are summed per id in row
// order (deterministic), then each distinct row is updated once.
func (b *Backend) SignSGDRows(table, grads, ids engine.Buf, n, dim int, lr, wd float32) {
	if !b.need("SignSGDRows", "grads", grads, n*dim, "ids", ids, n) {
		return
	}
	t, g, id := f32s(table), f32s(grads), i32s(ids)
	rows := len(t) / max(dim, 1)
	sum := map[int32][]float32{}
	var order []int32
	for r := 0; r < n; r++ {
		k := id[r]
		if k < 0 || int(k) >= rows {
			b.fail("SignSGDRows: id %d outside the table's %d rows", k, rows)
			return
		}
		acc, ok := sum[k]
		if !ok {
			acc = make([]float32, dim)
			sum[k] = acc
			order = append(order, k)
		}
		for i, x := range g[r*dim : (r+1)*dim] {
			acc[i] += x
		}
	}
	for _, k := range order {
		w := t[int(k)*dim : (int(k)+1)*dim]
		for i, x := range sum[k] {
			s := float32(0)
			if x > 0 {
				s = 1
			} else if x < 0 {
				s = -1
			}
			w[i] = w[i]*(1-lr*wd) - lr*s
		}
	}
}

// EMA implements engine.Backend.
func (b *Backend) EMA(shadow, params engine.Buf, rate float32) {
	n := shadow.Len()
	if !b.need("EMA", "params", params, n) {
		return
	}
	s, p := f32s(shadow), f32s(params)
	b.parallel(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s[i] = (1-rate)*p[i] + rate*s[i]
		}
	})
}

// SumSquares implements engine.Backend: fixed chunks summed in float64,
// then the chunk sums added in order.
func (b *Backend) SumSquares(dst, x engine.Buf) {
	if !b.need("SumSquares", "dst", dst, 1) {
		return
	}
	v := f32s(x)
	const chunk = 1 << 14
	nc := (len(v) + chunk - 1) / chunk
	parts := make([]float64, nc)
	b.parallel(nc, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var s float64
			for _, e := range v[c*chunk : min((c+1)*chunk, len(v))] {
				s += float64(e) * float64(e)
			}
			parts[c] = s
		}
	})
	var s float64
	for _, p := range parts {
		s += p
	}
	f64s(dst)[0] = s
}
