package cpu

import (
	"math"

	"github.com/tinyrecursive/trm/engine"
)

// ACTReset implements engine.Backend (spec section 4, step 1).
func (b *Backend) ACTReset(zH, zL engine.Buf, st engine.ACTState, curInputs, curLabels, curPIDs, inputs, labels, pids, hInit, lInit engine.Buf, batch, seqTotal, seqLen, hidden int) {
	n := batch * seqTotal * hidden
	if !b.need("ACTReset", "zH", zH, n, "zL", zL, n, "steps", st.Steps, batch, "halted", st.Halted, batch,
		"curInputs", curInputs, batch*seqLen, "curLabels", curLabels, batch*seqLen, "curPIDs", curPIDs, batch,
		"inputs", inputs, batch*seqLen, "labels", labels, batch*seqLen, "pids", pids, batch, "hInit", hInit, hidden, "lInit", lInit, hidden) {
		return
	}
	h, l, steps, halted := f32s(zH), f32s(zL), i32s(st.Steps), i32s(st.Halted)
	hi, li := f32s(hInit), f32s(lInit)
	ci, cl, cp, bi, bl, bp := i32s(curInputs), i32s(curLabels), i32s(curPIDs), i32s(inputs), i32s(labels), i32s(pids)
	rowLen := seqTotal * hidden
	b.parallel(batch, func(lo, hi2 int) {
		for r := lo; r < hi2; r++ {
			if halted[r] == 0 {
				continue
			}
			for s := 0; s < seqTotal; s++ {
				copy(h[r*rowLen+s*hidden:r*rowLen+(s+1)*hidden], hi[:hidden])
				copy(l[r*rowLen+s*hidden:r*rowLen+(s+1)*hidden], li[:hidden])
			}
			steps[r] = 0
			copy(ci[r*seqLen:(r+1)*seqLen], bi[r*seqLen:(r+1)*seqLen])
			copy(cl[r*seqLen:(r+1)*seqLen], bl[r*seqLen:(r+1)*seqLen])
			cp[r] = bp[r]
		}
	})
}

// ACTHalt implements engine.Backend (spec section 4, steps 3-5).
func (b *Backend) ACTHalt(st engine.ACTState, q, minSteps engine.Buf, batch, maxSteps int, training, noACTContinue bool) {
	if !b.need("ACTHalt", "steps", st.Steps, batch, "halted", st.Halted, batch, "q", q, 2*batch, "minSteps", minSteps, batch) {
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

// LossHead implements engine.Backend (spec section 5). Cross entropy runs
// in float64 per position; each example is one job, so sums have a fixed
// order.
// FLOPs ~6 V per position; bytes 8 V per position (logits in, gradient out).
func (b *Backend) LossHead(lb engine.LossBufs, d engine.LossDims) {
	B, L, V := d.B, d.L, d.V
	if !b.need("LossHead", "logits", lb.Logits, B*L*V, "labels", lb.Labels, B*L, "q", lb.Q, 2*B, "steps", lb.Steps, B,
		"preds", lb.Preds, B*L, "lm_loss", lb.LMLoss, B, "q_halt_loss", lb.QHaltLoss, B, "q_continue_loss", lb.QContLoss, B,
		"n_valid", lb.NValid, B, "n_correct", lb.NCorrect, B, "seq_correct", lb.SeqCorrect, B, "q_target", lb.QTarget, B) {
		return
	}
	if lb.DLogits != nil && !b.need("LossHead", "dlogits", lb.DLogits, B*L*V, "dq", lb.DQ, 2*B) {
		return
	}
	if lb.NextQ != nil && !b.need("LossHead", "next_q", lb.NextQ, 2*B) {
		return
	}
	logits, labels, q, nq, steps := f32s(lb.Logits), i32s(lb.Labels), f32s(lb.Q), f32s(lb.NextQ), i32s(lb.Steps)
	preds, lm, qh, qc := i32s(lb.Preds), f64s(lb.LMLoss), f64s(lb.QHaltLoss), f64s(lb.QContLoss)
	nv, nc, sc, qt := i32s(lb.NValid), i32s(lb.NCorrect), i32s(lb.SeqCorrect), f32s(lb.QTarget)
	dlog, dq := f32s(lb.DLogits), f32s(lb.DQ)
	for _, y := range labels[:B*L] {
		if y != engine.IgnoreLabel && (y < 0 || int(y) >= V) {
			b.fail("LossHead: label %d outside [0, %d)", y, V)
			return
		}
	}
	b.parallel(B, func(lo, hi int) {
		s := make([]float64, V)
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
				scale := float64(d.GradScale) / div
				if d.Softmax {
					loss += softmaxCE(x, y, s, g, scale) / div
				} else {
					loss += stablemaxCE(x, y, s, g, scale) / div
				}
			}
			lm[r] = loss
			nv[r], nc[r] = int32(n), int32(correct)
			seq := correct == n
			sc[r] = 0
			t := 0.0
			if seq {
				sc[r], t = 1, 1
			}
			qh[r] = bce(q[2*r], t)
			qc[r], qt[r] = 0, 0
			if dq != nil {
				dq[2*r] = float32(float64(d.GradScale) * 0.5 * (sigmoid(float64(q[2*r])) - t))
				dq[2*r+1] = 0
			}
			if nq != nil {
				// target_q_continue = sigmoid(is_last ? next_halt : max(next_halt, next_continue))
				next := float64(nq[2*r])
				if steps[r] < int32(d.HaltMaxSteps) {
					next = math.Max(next, float64(nq[2*r+1]))
				}
				target := float64(float32(sigmoid(next)))
				qt[r] = float32(target)
				qc[r] = bce(q[2*r+1], target)
				if dq != nil {
					dq[2*r+1] = float32(float64(d.GradScale) * 0.5 * (sigmoid(float64(q[2*r+1])) - target))
				}
			}
		}
	})
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
