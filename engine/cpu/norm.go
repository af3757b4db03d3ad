package cpu

import (
	"math"

	"github.com/tinyrecursive/trm/engine"
)

// addRMSNormJob normalises rows; b may be nil. The operands are views
// (operand) of float32 or BF16 buffers: a BF16 input row is widened into
// the worker's scratch slots (ws, set only when an operand is BF16), the
// row is computed by the same kernels on the whole row (so the float64
// lanes of the sum of squares see the elements they see in float32), and
// a BF16 y is rounded from its scratch row. Every input row is read
// before y's row is stored, so y may alias a or b.
type addRMSNormJob struct {
	rstd       []float32
	cols       int
	eps        float32
	yo, ao, bo operand
	hasB       bool
	ws         []workerScratch
}

// rmsScale is 1/sqrt(mean + eps) from a row's float64 sum of squares, in
// float32 as the reference computes it.
func rmsScale(ss float64, cols int, eps float32) float32 {
	return float32(1 / math.Sqrt(float64(float32(ss/float64(cols))+eps)))
}

func (j *addRMSNormJob) run(w, lo, hi int) {
	cols := j.cols
	var sa, sb, sy []float32
	if j.ws != nil {
		s := &j.ws[w]
		sa, sb, sy = s.slot(0, cols), s.slot(1, cols), s.slot(2, cols)
	}
	for r := lo; r < hi; r++ {
		o := r * cols
		ar := j.ao.load(sa, o, o+cols)
		row := j.yo.dst(sy, o, o+cols)
		var ss float64
		if j.hasB {
			// The residual add and the sum of squares in one pass.
			ss = addSumSq(row, ar, j.bo.load(sb, o, o+cols))
		} else {
			copy(row, ar)
			ss = dot64(row, row)
		}
		rs := rmsScale(ss, cols, j.eps)
		j.rstd[r] = rs
		scale(row, rs)
		j.yo.store(row, o)
	}
}

// AddRMSNorm implements engine.Backend. Per row: v = a + b,
// rstd = 1/sqrt(mean(v^2) + eps), y = v * rstd, all in float32 as the
// reference; the sum of squares accumulates in float64 so that the result
// does not depend on the row length's rounding. y, a and b may be BF16
// (engine.BF16Activations), rstd is float32.
// FLOPs 4 per element; bytes 12-16 per element (6-8 all in bf16).
func (b *Backend) AddRMSNorm(y, rstd, a, bb engine.Buf, rows, cols int, eps float32) {
	n := rows * cols
	if !b.needAny("AddRMSNorm", req{"y", y, n}) || !b.need("AddRMSNorm", req{"rstd", rstd, rows}) ||
		!b.needAny("AddRMSNorm", req{"a", a, n}) {
		return
	}
	if bb != nil && !b.needAny("AddRMSNorm", req{"b", bb, n}) {
		return
	}
	j := &b.jobs.addRMSNorm
	*j = addRMSNormJob{rstd: f32s(rstd), cols: cols, eps: eps,
		yo: operandOf(y), ao: operandOf(a), bo: operandOf(bb), hasB: bb != nil}
	if isBF16(y) || isBF16(a) || isBF16(bb) {
		b.growRowScratch(3 * cols)
		j.ws = b.ws
	}
	b.pool.run(j, rows, rowGrain(cols))
	*j = addRMSNormJob{}
}

// rmsBackJob is the RMSNorm backward of rows; with a BF16 y (y16 set)
// each row of y is widened into the worker's scratch first.
type rmsBackJob struct {
	dx, dy, y, rstd []float32
	y16             []uint16
	ws              []workerScratch
	cols            int
}

func (j *rmsBackJob) run(w, lo, hi int) {
	cols := j.cols
	if j.y16 != nil {
		j.runBF16(w, lo, hi)
		return
	}
	for r := lo; r < hi; r++ {
		g, o := j.dy[r*cols:(r+1)*cols], j.y[r*cols:(r+1)*cols]
		mean := float32(dot64(g, o) / float64(cols))
		rmsBack(j.dx[r*cols:(r+1)*cols], g, o, j.rstd[r], mean)
	}
}

// runBF16 is run with y's rows widened, one at a time, into the worker's
// scratch: the same kernels on the same values.
func (j *rmsBackJob) runBF16(w, lo, hi int) {
	cols := j.cols
	sy := j.ws[w].slot(0, cols)
	for r := lo; r < hi; r++ {
		g := j.dy[r*cols : (r+1)*cols]
		o := sy[:cols]
		widenBF16s(o, j.y16[r*cols:(r+1)*cols])
		mean := float32(dot64(g, o) / float64(cols))
		rmsBack(j.dx[r*cols:(r+1)*cols], g, o, j.rstd[r], mean)
	}
}

// RMSNormBackward implements engine.Backend:
// dx = rstd * (dy - y * mean(dy * y)), with the mean in float64. y may be
// BF16 (engine.BF16Activations).
func (b *Backend) RMSNormBackward(dx, dy, y, rstd engine.Buf, rows, cols int) {
	n := rows * cols
	if !b.need("RMSNormBackward", req{"dx", dx, n}, req{"dy", dy, n}, req{"rstd", rstd, rows}) ||
		!b.needAny("RMSNormBackward", req{"y", y, n}) {
		return
	}
	j := &b.jobs.rmsBack
	*j = rmsBackJob{dx: f32s(dx), dy: f32s(dy), rstd: f32s(rstd), cols: cols}
	if isBF16(y) {
		b.growRowScratch(cols)
		j.y16, j.ws = bf16s(y), b.ws
	} else {
		j.y = f32s(y)
	}
	b.pool.run(j, rows, rowGrain(cols))
	*j = rmsBackJob{}
}

// swigluJob is SwiGLU over rows of [g | u]. When act or gu is BF16
// (mixed set) each row goes through the operand views: a BF16 gu row is
// widened into the worker's scratch, a BF16 act row is computed into
// scratch by the same kernel and then rounded.
type swigluJob struct {
	act, gu []float32
	mixed   bool
	ao, guo operand
	ws      []workerScratch
	inter   int
}

func (j *swigluJob) run(w, lo, hi int) {
	I := j.inter
	if j.mixed {
		s := &j.ws[w]
		sg, sa := s.slot(0, 2*I), s.slot(1, 2*I)
		for r := lo; r < hi; r++ {
			gu := j.guo.load(sg, 2*r*I, (2*r+2)*I)
			act := j.ao.dst(sa, r*I, (r+1)*I)
			swiglu(act, gu[:I], gu[I:])
			j.ao.store(act, r*I)
		}
		return
	}
	for r := lo; r < hi; r++ {
		swiglu(j.act[r*I:(r+1)*I], j.gu[2*r*I:(2*r+1)*I], j.gu[(2*r+1)*I:(2*r+2)*I])
	}
}

// SwiGLU implements engine.Backend: act = silu(g) * u, [g | u] = gu row.
// act and gu may be BF16 (engine.BF16Activations): a BF16 act holds each
// element rounded to nearest even from the float32 it would hold.
// FLOPs ~6 per output; bytes 12 per output (6 with both in bf16).
func (b *Backend) SwiGLU(act, gu engine.Buf, rows, inter int) {
	if !b.needAny("SwiGLU", req{"gu", gu, rows * 2 * inter}, req{"act", act, rows * inter}) {
		return
	}
	j := &b.jobs.swiglu
	if isBF16(act) || isBF16(gu) {
		b.growRowScratch(4 * inter)
		*j = swigluJob{mixed: true, ao: operandOf(act), guo: operandOf(gu), ws: b.ws, inter: inter}
	} else {
		*j = swigluJob{act: f32s(act), gu: f32s(gu), inter: inter}
	}
	b.pool.run(j, rows, rowGrain(2*inter))
	*j = swigluJob{}
}

// swigluBackJob is SwiGLU's backward over rows. When dgu or gu is BF16
// (mixed set) a BF16 gu row is widened into the worker's scratch and a
// BF16 dgu row [dg | du] is computed into scratch by the same kernel,
// then rounded.
type swigluBackJob struct {
	dgu, dact, gu []float32
	mixed         bool
	do, guo       operand
	ws            []workerScratch
	inter         int
}

func (j *swigluBackJob) run(w, lo, hi int) {
	I := j.inter
	if j.mixed {
		s := &j.ws[w]
		sg, sd := s.slot(0, 2*I), s.slot(1, 2*I)
		for r := lo; r < hi; r++ {
			gu := j.guo.load(sg, 2*r*I, (2*r+2)*I)
			d := j.do.dst(sd, 2*r*I, (2*r+2)*I)
			swigluBack(d[:I], d[I:], j.dact[r*I:(r+1)*I], gu[:I], gu[I:])
			j.do.store(d, 2*r*I)
		}
		return
	}
	for r := lo; r < hi; r++ {
		g, u, a := j.gu[2*r*I:(2*r+1)*I], j.gu[(2*r+1)*I:(2*r+2)*I], j.dact[r*I:(r+1)*I]
		swigluBack(j.dgu[2*r*I:(2*r+1)*I], j.dgu[(2*r+1)*I:(2*r+2)*I], a, g, u)
	}
}

// SwiGLUBackward implements engine.Backend:
// dg = dact * u * sig(g) * (1 + g (1 - sig(g))), du = dact * silu(g).
// dgu and gu may be BF16 (engine.BF16Activations): a BF16 dgu holds each
// element rounded to nearest even from the float32 it would hold.
func (b *Backend) SwiGLUBackward(dgu, dact, gu engine.Buf, rows, inter int) {
	if !b.need("SwiGLUBackward", req{"dact", dact, rows * inter}) ||
		!b.needAny("SwiGLUBackward", req{"gu", gu, rows * 2 * inter}, req{"dgu", dgu, rows * 2 * inter}) {
		return
	}
	j := &b.jobs.swigluBack
	if isBF16(dgu) || isBF16(gu) {
		b.growRowScratch(4 * inter)
		*j = swigluBackJob{dact: f32s(dact), mixed: true, do: operandOf(dgu), guo: operandOf(gu), ws: b.ws, inter: inter}
	} else {
		*j = swigluBackJob{dgu: f32s(dgu), dact: f32s(dact), gu: f32s(gu), inter: inter}
	}
	b.pool.run(j, rows, rowGrain(3*inter))
	*j = swigluBackJob{}
}
