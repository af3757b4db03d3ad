package cpu

import (
	"math"

	"github.com/tinyrecursive/trm/engine"
)

// ACTReset implements engine.Backend (docs/model.md#the-act-step-and-the-carry,
// step 1).
func (b *Backend) ACTReset(zH, zL engine.Buf, st engine.ACTState, curInputs, curLabels, curPIDs, inputs, labels, pids, hInit, lInit engine.Buf, batch, seqTotal, seqLen, hidden int) {
	n := batch * seqTotal * hidden
	if !b.need("ACTReset", req{"zH", zH, n}, req{"zL", zL, n}, req{"steps", st.Steps, batch}, req{"halted", st.Halted, batch},
		req{"curInputs", curInputs, batch * seqLen}, req{"curLabels", curLabels, batch * seqLen}, req{"curPIDs", curPIDs, batch},
		req{"inputs", inputs, batch * seqLen}, req{"labels", labels, batch * seqLen}, req{"pids", pids, batch},
		req{"hInit", hInit, hidden}, req{"lInit", lInit, hidden}) {
		return
	}
	j := &b.jobs.actReset
	*j = actResetJob{h: f32s(zH), l: f32s(zL), hInit: f32s(hInit), lInit: f32s(lInit), steps: i32s(st.Steps), halted: i32s(st.Halted),
		ci: i32s(curInputs), cl: i32s(curLabels), cp: i32s(curPIDs), bi: i32s(inputs), bl: i32s(labels), bp: i32s(pids),
		seqTotal: seqTotal, seqLen: seqLen, hidden: hidden}
	b.pool.run(j, batch, rowGrain(seqTotal*hidden))
	*j = actResetJob{}
}

// actResetJob resets the halted slots among [lo, hi).
type actResetJob struct {
	h, l, hInit, lInit                    []float32
	steps, halted, ci, cl, cp, bi, bl, bp []int32
	seqTotal, seqLen, hidden              int
}

func (j *actResetJob) run(_, lo, hi int) {
	H, L := j.hidden, j.seqLen
	rowLen := j.seqTotal * H
	for r := lo; r < hi; r++ {
		if j.halted[r] == 0 {
			continue
		}
		for s := 0; s < j.seqTotal; s++ {
			copy(j.h[r*rowLen+s*H:r*rowLen+(s+1)*H], j.hInit[:H])
			copy(j.l[r*rowLen+s*H:r*rowLen+(s+1)*H], j.lInit[:H])
		}
		j.steps[r] = 0
		copy(j.ci[r*L:(r+1)*L], j.bi[r*L:(r+1)*L])
		copy(j.cl[r*L:(r+1)*L], j.bl[r*L:(r+1)*L])
		j.cp[r] = j.bp[r]
	}
}

// ACTHalt implements engine.Backend (docs/model.md#the-act-step-and-the-carry,
// steps 3-5).
func (b *Backend) ACTHalt(st engine.ACTState, q, minSteps engine.Buf, batch, maxSteps int, training, noACTContinue bool) {
	if !b.need("ACTHalt", req{"steps", st.Steps, batch}, req{"halted", st.Halted, batch}, req{"q", q, 2 * batch}, req{"minSteps", minSteps, batch}) {
		return
	}
	steps, halted, qq, ms := i32s(st.Steps), i32s(st.Halted), f32s(q), i32s(minSteps)
	for r := 0; r < batch; r++ {
		steps[r]++
		h := steps[r] >= int32(maxSteps)
		if training && maxSteps > 1 {
			if noACTContinue {
				h = h || qq[2*r] > 0
			} else {
				h = h || qq[2*r] > qq[2*r+1]
			}
			h = h && steps[r] >= ms[r]
		}
		halted[r] = 0
		if h {
			halted[r] = 1
		}
	}
}

// LossHead implements engine.Backend (docs/model.md#loss-head). Cross entropy runs
// in float64 per position; each example is one job, so sums have a fixed
// order.
// FLOPs ~6 V per position; bytes 8 V per position (logits in, gradient out).
func (b *Backend) LossHead(lb engine.LossBufs, d engine.LossDims) {
	B, L, V := d.B, d.L, d.V
	if !b.need("LossHead", req{"logits", lb.Logits, B * L * V}, req{"labels", lb.Labels, B * L}, req{"q", lb.Q, 2 * B}, req{"steps", lb.Steps, B},
		req{"preds", lb.Preds, B * L}, req{"lm_loss", lb.LMLoss, B}, req{"q_halt_loss", lb.QHaltLoss, B}, req{"q_continue_loss", lb.QContLoss, B},
		req{"n_valid", lb.NValid, B}, req{"n_correct", lb.NCorrect, B}, req{"seq_correct", lb.SeqCorrect, B}, req{"q_target", lb.QTarget, B}) {
		return
	}
	if lb.DLogits != nil && !b.need("LossHead", req{"dlogits", lb.DLogits, B * L * V}, req{"dq", lb.DQ, 2 * B}) {
		return
	}
	if lb.NextQ != nil && !b.need("LossHead", req{"next_q", lb.NextQ, 2 * B}) {
		return
	}
	labels := i32s(lb.Labels)
	for _, y := range labels[:B*L] {
		if y != engine.IgnoreLabel && (y < 0 || int(y) >= V) {
			b.fail("LossHead: label %d outside [0, %d)", y, V)
			return
		}
	}
	for w := range b.ws {
		if cap(b.ws[w].f64) < V {
			b.ws[w].f64 = make([]float64, V)
		}
	}
	j := &b.jobs.loss
	*j = lossJob{logits: f32s(lb.Logits), labels: labels, q: f32s(lb.Q), nq: f32s(lb.NextQ), steps: i32s(lb.Steps),
		preds: i32s(lb.Preds), lm: f64s(lb.LMLoss), qh: f64s(lb.QHaltLoss), qc: f64s(lb.QContLoss),
		nv: i32s(lb.NValid), nc: i32s(lb.NCorrect), sc: i32s(lb.SeqCorrect), qt: f32s(lb.QTarget),
		dlog: f32s(lb.DLogits), dq: f32s(lb.DQ), d: d, ws: b.ws}
	b.pool.run(j, B, 1)
	*j = lossJob{}
}

// lossJob is the loss head of examples [lo, hi), one example per index so
// that its sums have a fixed order.
type lossJob struct {
	logits, q, nq, qt, dlog, dq []float32
	labels, steps, preds        []int32
	nv, nc, sc                  []int32
	lm, qh, qc                  []float64
	d                           engine.LossDims
	ws                          []workerScratch
}

func (j *lossJob) run(w, lo, hi int) {
	L, V := j.d.L, j.d.V
	s := j.ws[w].f64[:V]
	labels, logits, preds, dlog := j.labels, j.logits, j.preds, j.dlog
	for r := lo; r < hi; r++ {
		n := 0
		for _, y := range labels[r*L : (r+1)*L] {
			if y != engine.IgnoreLabel {
				n++
			}
		}
		div := float64(max(n, 1))
		correct := 0
		var loss float64
		for p := 0; p < L; p++ {
			x := logits[(r*L+p)*V : (r*L+p+1)*V]
			best := 0
			for i := 1; i < V; i++ {
				if x[i] > x[best] {
					best = i
				}
			}
			preds[r*L+p] = int32(best)
			y := int(labels[r*L+p])
			var g []float32
			if dlog != nil {
				g = dlog[(r*L+p)*V : (r*L+p+1)*V]
				clear(g)
			}
			if y == engine.IgnoreLabel {
				continue
			}
			if best == y {
				correct++
			}
			scale := float64(j.d.GradScale) / div
			if j.d.Softmax {
				loss += softmaxCE(x, y, s, g, scale) / div
			} else {
				loss += stablemaxCE(x, y, s, g, scale) / div
			}
		}
		j.lm[r] = loss
		j.nv[r], j.nc[r] = int32(n), int32(correct)
		seq := correct == n
		j.sc[r] = 0
		t := 0.0
		if seq {
			j.sc[r], t = 1, 1
		}
		q := j.q
		j.qh[r] = bce(q[2*r], t)
		j.qc[r], j.qt[r] = 0, 0
		if j.dq != nil {
			j.dq[2*r] = float32(float64(j.d.GradScale) * 0.5 * (sigmoid(float64(q[2*r])) - t))
			j.dq[2*r+1] = 0
		}
		if j.nq != nil {
			// target_q_continue = sigmoid(is_last ? next_halt : max(next_halt, next_continue))
			next := float64(j.nq[2*r])
			if j.steps[r] < int32(j.d.HaltMaxSteps) {
				next = math.Max(next, float64(j.nq[2*r+1]))
			}
			target := float64(float32(sigmoid(next)))
			j.qt[r] = float32(target)
			j.qc[r] = bce(q[2*r+1], target)
			if j.dq != nil {
				j.dq[2*r+1] = float32(float64(j.d.GradScale) * 0.5 * (sigmoid(float64(q[2*r+1])) - target))
			}
		}
	}
}

// stablemaxCE returns -log(s(x_y) / sum_j s(x_j)) with s(t) = 1/(1-t) for
// t < 0 and t + 1 otherwise, in float64, and writes scale times its
// gradient into g (when g is not nil).
func stablemaxCE(x []float32, y int, s []float64, g []float32, scale float64) float64 {
	var sum float64
	for i, v := range x {
		t := float64(v)
		if t < 0 {
			s[i] = 1 / (1 - t)
		} else {
			s[i] = t + 1
		}
		sum += s[i]
	}
	loss := -math.Log(s[y] / sum)
	if g != nil {
		for i, v := range x {
			t := float64(v)
			ds := 1.0 // s'(t)
			if t < 0 {
				ds = 1 / ((1 - t) * (1 - t))
			}
			gi := ds / sum
			if i == y {
				gi -= ds / s[y]
			}
			g[i] = float32(scale * gi)
		}
	}
	return loss
}

// softmaxCE is the ordinary softmax cross entropy (computed in float64).
func softmaxCE(x []float32, y int, e []float64, g []float32, scale float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	var sum float64
	for i, v := range x {
		e[i] = math.Exp(float64(v) - m)
		sum += e[i]
	}
	loss := m + math.Log(sum) - float64(x[y])
	if g != nil {
		for i := range x {
			gi := e[i] / sum
			if i == y {
				gi--
			}
			g[i] = float32(scale * gi)
		}
	}
	return loss
}

// bce is binary cross entropy with logits, max(x,0) - x t + log1p(exp(-|x|)),
// from a float32 logit.
func bce(x32 float32, t float64) float64 {
	x := float64(x32)
	return math.Max(x, 0) - x*t + math.Log1p(math.Exp(-math.Abs(x)))
}

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}
