package cpu

import (
	"math"

	"github.com/tinyrecursive/trm/engine"
)

// addRMSNormJob normalises rows; b may be nil.
type addRMSNormJob struct {
	y, rstd, a, b []float32
	cols          int
	eps           float32
}

func (j *addRMSNormJob) run(_, lo, hi int) {
	cols := j.cols
	for r := lo; r < hi; r++ {
		row := j.y[r*cols : (r+1)*cols]
		ar := j.a[r*cols : (r+1)*cols]
		var ss float64
		if j.b != nil {
			// The residual add and the sum of squares in one pass.
			ss = addSumSq(row, ar, j.b[r*cols:(r+1)*cols])
		} else {
			copy(row, ar)
			ss = dot64(row, row)
		}
		rs := float32(1 / math.Sqrt(float64(float32(ss/float64(cols))+j.eps)))
		j.rstd[r] = rs
		scale(row, rs)
	}
}

// AddRMSNorm implements engine.Backend. Per row: v = a + b,
// rstd = 1/sqrt(mean(v^2) + eps), y = v * rstd, all in float32 as the
// reference; the sum of squares accumulates in float64 so that the result
// does not depend on the row length's rounding.
// FLOPs 4 per element; bytes 12-16 per element.
func (b *Backend) AddRMSNorm(y, rstd, a, bb engine.Buf, rows, cols int, eps float32) {
	n := rows * cols
	if !b.need("AddRMSNorm", req{"y", y, n}, req{"rstd", rstd, rows}, req{"a", a, n}) {
		return
	}
	if bb != nil && !b.need("AddRMSNorm", req{"b", bb, n}) {
		return
	}
	j := &b.jobs.addRMSNorm
	*j = addRMSNormJob{y: f32s(y), rstd: f32s(rstd), a: f32s(a), b: f32s(bb), cols: cols, eps: eps}
	b.pool.run(j, rows, rowGrain(cols))
	*j = addRMSNormJob{}
}

// rmsBackJob is the RMSNorm backward of rows.
type rmsBackJob struct {
	dx, dy, y, rstd []float32
	cols            int
}

func (j *rmsBackJob) run(_, lo, hi int) {
	cols := j.cols
	for r := lo; r < hi; r++ {
		g, o := j.dy[r*cols:(r+1)*cols], j.y[r*cols:(r+1)*cols]
		mean := float32(dot64(g, o) / float64(cols))
		rmsBack(j.dx[r*cols:(r+1)*cols], g, o, j.rstd[r], mean)
	}
}

// RMSNormBackward implements engine.Backend:
// dx = rstd * (dy - y * mean(dy * y)), with the mean in float64.
func (b *Backend) RMSNormBackward(dx, dy, y, rstd engine.Buf, rows, cols int) {
	n := rows * cols
	if !b.need("RMSNormBackward", req{"dx", dx, n}, req{"dy", dy, n}, req{"y", y, n}, req{"rstd", rstd, rows}) {
		return
	}
	j := &b.jobs.rmsBack
	*j = rmsBackJob{dx: f32s(dx), dy: f32s(dy), y: f32s(y), rstd: f32s(rstd), cols: cols}
	b.pool.run(j, rows, rowGrain(cols))
	*j = rmsBackJob{}
}

// swigluJob is SwiGLU over rows of [g | u]. With a BF16 act (act16 set)
// each row is computed into the worker's float32 row scratch by the same
// kernel, then rounded: the bf16 of exactly the float32 act holds
// otherwise.
type swigluJob struct {
	act, gu []float32
	act16   []uint16
	ws      []workerScratch
	inter   int
}

func (j *swigluJob) run(w, lo, hi int) {
	I := j.inter
	for r := lo; r < hi; r++ {
		g, u := j.gu[2*r*I:(2*r+1)*I], j.gu[(2*r+1)*I:(2*r+2)*I]
		if j.act16 == nil {
			swiglu(j.act[r*I:(r+1)*I], g, u)
			continue
		}
		row := j.ws[w].f32[:I]
		swiglu(row, g, u)
		narrowBF16(j.act16[r*I:(r+1)*I], row)
	}
}

// SwiGLU implements engine.Backend: act = silu(g) * u, [g | u] = gu row.
// act may be BF16 (engine.BF16Storage): each element rounded to nearest
// even from the float32 it would hold.
// FLOPs ~6 per output; bytes 12 per output (10 with a BF16 act).
func (b *Backend) SwiGLU(act, gu engine.Buf, rows, inter int) {
	if !b.need("SwiGLU", req{"gu", gu, rows * 2 * inter}) || !b.needAny("SwiGLU", req{"act", act, rows * inter}) {
		return
	}
	j := &b.jobs.swiglu
	*j = swigluJob{gu: f32s(gu), inter: inter}
	if isBF16(act) {
		b.growRowScratch(inter)
		j.act16, j.ws = bf16s(act), b.ws
	} else {
		j.act = f32s(act)
	}
	b.pool.run(j, rows, rowGrain(2*inter))
	*j = swigluJob{}
}

// swigluBackJob is SwiGLU's backward over rows. With a BF16 dgu (dgu16
// set) each row [dg | du] is computed into the worker's float32 row
// scratch by the same kernel, then rounded.
type swigluBackJob struct {
	dgu, dact, gu []float32
	dgu16         []uint16
	ws            []workerScratch
	inter         int
}

func (j *swigluBackJob) run(w, lo, hi int) {
	I := j.inter
	for r := lo; r < hi; r++ {
		g, u, a := j.gu[2*r*I:(2*r+1)*I], j.gu[(2*r+1)*I:(2*r+2)*I], j.dact[r*I:(r+1)*I]
		if j.dgu16 == nil {
			swigluBack(j.dgu[2*r*I:(2*r+1)*I], j.dgu[(2*r+1)*I:(2*r+2)*I], a, g, u)
			continue
		}
		row := j.ws[w].f32[:2*I]
		swigluBack(row[:I], row[I:], a, g, u)
		narrowBF16(j.dgu16[2*r*I:(2*r+2)*I], row)
	}
}

// SwiGLUBackward implements engine.Backend:
// dg = dact * u * sig(g) * (1 + g (1 - sig(g))), du = dact * silu(g).
// dgu may be BF16 (engine.BF16Storage): each element rounded to nearest
// even from the float32 it would hold.
func (b *Backend) SwiGLUBackward(dgu, dact, gu engine.Buf, rows, inter int) {
	if !b.need("SwiGLUBackward", req{"dact", dact, rows * inter}, req{"gu", gu, rows * 2 * inter}) ||
		!b.needAny("SwiGLUBackward", req{"dgu", dgu, rows * 2 * inter}) {
		return
	}
	j := &b.jobs.swigluBack
	*j = swigluBackJob{dact: f32s(dact), gu: f32s(gu), inter: inter}
	if isBF16(dgu) {
		b.growRowScratch(2 * inter)
		j.dgu16, j.ws = bf16s(dgu), b.ws
	} else {
		j.dgu = f32s(dgu)
	}
	b.pool.run(j, rows, rowGrain(3*inter))
	*j = swigluBackJob{}
}
