package engine

// StepResult is the host copy of one step's per-example outputs, from which
// the trainer builds the batch sums and the per-supervision-step metrics
// (docs/model.md#metrics).
type StepResult struct {
	QHalt, QContinue []float32 // [B]
	Halted, Steps    []int32   // [B] after the step (halted 0/1)
	Preds            []int32   // [B*L]
	LMLoss           []float64 // [B] sum over positions of CE / max(n_b, 1)
	QHaltLoss        []float64 // [B]
	QContLoss        []float64 // [B]
	QTarget          []float32 // [B] target_q_continue (no_ACT_continue false, training)
	NValid           []int32   // [B] supervised positions n_b
	NCorrect         []int32   // [B]
	SeqCorrect       []int32   // [B] 0/1
	Logits           []float32 // [B*L*V], only when asked for
}

// Result downloads the outputs of the last Step on carry c. Logits are
// copied only when withLogits is set (they are B*L*V floats).
func (m *Model) Result(c *Carry, withLogits bool) (*StepResult, error) {
	be := m.be
	B := m.B
	r := &StepResult{
		QHalt: make([]float32, B), QContinue: make([]float32, B),
		Halted: make([]int32, B), Steps: make([]int32, B), Preds: make([]int32, B*m.L),
		LMLoss: make([]float64, B), QHaltLoss: make([]float64, B), QContLoss: make([]float64, B), QTarget: make([]float32, B),
		NValid: make([]int32, B), NCorrect: make([]int32, B), SeqCorrect: make([]int32, B),
	}
	q := make([]float32, 2*B)
	be.Download(q, m.q)
	for b := range B {
		r.QHalt[b], r.QContinue[b] = q[2*b], q[2*b+1]
	}
	be.Download(r.Halted, c.St.Halted)
	be.Download(r.Steps, c.St.Steps)
	be.Download(r.Preds, m.loss.Preds)
	be.Download(r.LMLoss, m.loss.LMLoss)
	be.Download(r.QHaltLoss, m.loss.QHaltLoss)
	be.Download(r.QContLoss, m.loss.QContLoss)
	be.Download(r.QTarget, m.loss.QTarget)
	be.Download(r.NValid, m.loss.NValid)
	be.Download(r.NCorrect, m.loss.NCorrect)
	be.Download(r.SeqCorrect, m.loss.SeqCorrect)
	if withLogits {
		r.Logits = make([]float32, B*m.L*m.V)
		be.Download(r.Logits, m.logits)
	}
	return r, be.Sync()
}

// Metrics are the per-step sums of docs/model.md#metrics over a batch. The
// metric fields sum over valid = halted & n_b > 0; the losses over every
// example.
type Metrics struct {
	Count         float64 `json:"count"`
	Accuracy      float64 `json:"accuracy"`
	ExactAccuracy float64 `json:"exact_accuracy"`
	QHaltAccuracy float64 `json:"q_halt_accuracy"`
	Steps         float64 `json:"steps"`
	LMLoss        float64 `json:"lm_loss"`
	QHaltLoss     float64 `json:"q_halt_loss"`
	QContinueLoss float64 `json:"q_continue_loss"`
	Loss          float64 `json:"loss"` // lm_loss + 0.5 (q_halt_loss + q_continue_loss)
}

// Metrics sums the step's outputs as the reference does.
func (r *StepResult) Metrics() Metrics {
	var m Metrics
	for b := range r.LMLoss {
		m.LMLoss += r.LMLoss[b]
		m.QHaltLoss += r.QHaltLoss[b]
		m.QContinueLoss += r.QContLoss[b]
		if r.Halted[b] == 0 || r.NValid[b] == 0 {
			continue
		}
		seq := r.SeqCorrect[b] != 0
		m.Count++
		m.Accuracy += float64(float32(r.NCorrect[b]) / float32(max(r.NValid[b], 1)))
		if seq {
			m.ExactAccuracy++
		}
		if (r.QHalt[b] >= 0) == seq {
			m.QHaltAccuracy++
		}
		m.Steps += float64(r.Steps[b])
	}
	m.Loss = m.LMLoss + 0.5*(m.QHaltLoss+m.QContinueLoss)
	return m
}

// Add accumulates another batch's sums.
func (m *Metrics) Add(o Metrics) {
	m.Count += o.Count
	m.Accuracy += o.Accuracy
	m.ExactAccuracy += o.ExactAccuracy
	m.QHaltAccuracy += o.QHaltAccuracy
	m.Steps += o.Steps
	m.LMLoss += o.LMLoss
	m.QHaltLoss += o.QHaltLoss
	m.QContinueLoss += o.QContinueLoss
	m.Loss += o.Loss
}

// AllHalted reports whether every slot halted in this step.
func (r *StepResult) AllHalted() bool {
	for _, h := range r.Halted {
		if h == 0 {
			return false
		}
	}
	return true
}
