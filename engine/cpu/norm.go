package cpu

import (
	"math"

	"github.com/tinyrecursive/trm/engine"
)

// AddRMSNorm implements engine.Backend. Per row: v = a + b,
// rstd = 1/sqrt(mean(v^2) + eps), y = v * rstd, all in float32 as the
// reference; the sum of squares accumulates in float64 so that the result
// does not depend on the row length's rounding.
// FLOPs 4 per element; bytes 12-16 per element.
func (b *Backend) AddRMSNorm(y, rstd, a, bb engine.Buf, rows, cols int, eps float32) {
	n := rows * cols
	if !b.need("AddRMSNorm", "y", y, n, "rstd", rstd, rows, "a", a) {
		return
	}
	if bb != nil && !b.need("AddRMSNorm", "b", bb, n) {
		return
	}
	yy, rr, aa, xb := f32s(y), f32s(rstd), f32s(a), f32s(bb)
	b.parallel(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := yy[r*cols : (r+1)*cols]
			ar := aa[r*cols : (r+1)*cols]
			var ss float64
			if xb != nil {
				ss = addSumSq(row, ar, xb[r*cols:(r+1)*cols])
			} else {
				copy(row, ar)
				ss = dot64(row, row)
			}
			rs := float32(1 / math.Sqrt(float64(float32(ss/float64(cols))+eps)))
			rr[r] = rs
			scale(row, rs)
		}
	})
}

// RMSNormBackward implements engine.Backend:
// dx = rstd * (dy - y * mean(dy * y)), with the mean in float64.
func (b *Backend) RMSNormBackward(dx, dy, y, rstd engine.Buf, rows, cols int) {
	n := rows * cols
	if !b.need("RMSNormBackward", "dx", dx, n, "dy", dy, n, "y", y, n, "rstd", rstd, rows) {
		return
	}
	dxx, dyy, yy, rr := f32s(dx), f32s(dy), f32s(y), f32s(rstd)
	b.parallel(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g, o, d := dyy[r*cols:(r+1)*cols], yy[r*cols:(r+1)*cols], dxx[r*cols:(r+1)*cols]
			mean := float32(dot64(g, o) / float64(cols))
			rmsBack(d, g, o, rr[r], mean)
		}
	})
}

// SwiGLU implements engine.Backend: act = silu(g) * u, [g | u] = gu row.
// FLOPs ~6 per output; bytes 12 per output.
func (b *Backend) SwiGLU(act, gu engine.Buf, rows, inter int) {
	if !b.need("SwiGLU", "act", act, rows*inter, "gu", gu, rows*2*inter) {
		return
	}
	aa, gg := f32s(act), f32s(gu)
	b.parallel(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g, u, o := gg[2*r*inter:(2*r+1)*inter], gg[(2*r+1)*inter:(2*r+2)*inter], aa[r*inter:(r+1)*inter]
			swiglu(o, g, u)
		}
	})
}

// SwiGLUBackward implements engine.Backend:
// dg = dact * u * sig(g) * (1 + g (1 - sig(g))), du = dact * silu(g).
func (b *Backend) SwiGLUBackward(dgu, dact, gu engine.Buf, rows, inter int) {
	if !b.need("SwiGLUBackward", "dgu", dgu, rows*2*inter, "dact", dact, rows*inter, "gu", gu, rows*2*inter) {
		return
	}
	dd, da, gg := f32s(dgu), f32s(dact), f32s(gu)
	b.parallel(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g, u := gg[2*r*inter:(2*r+1)*inter], gg[(2*r+1)*inter:(2*r+2)*inter]
			dg, du := dd[2*r*inter:(2*r+1)*inter], dd[(2*r+1)*inter:(2*r+2)*inter]
			a := da[r*inter : (r+1)*inter]
			swigluBack(dg, du, a, g, u)
		}
	})
}
