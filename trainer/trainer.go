package trainer

import (
	"fmt"
	"math"
	"time"

	"github.com/tinyrecursive/trm/engine"
)

// Trainer owns one model replica, its optimizer state and its persistent
// ACT carry, and takes one optimizer step per batch (spec section 6).
type Trainer struct {
	Cfg        Config
	Model      *engine.Model
	Optim      *Optim
	Carry      *engine.Carry
	TotalSteps int
	// Step counts batches trained on, skipped updates included; the
	// schedule uses Optim.Step+1.
	Step int
	// NonFinite counts skipped updates in a row.
	NonFinite int
	// SkippedTotal counts every skipped update of the run.
	SkippedTotal int
}

// New builds a trainer on backend be from an initial state. The model's
// batch size is the global batch divided by worldSize.
func New(cfg Config, be engine.Backend, params *engine.Params, totalSteps, worldSize int) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if worldSize < 1 || cfg.GlobalBatchSize%worldSize != 0 {
		return nil, fmt.Errorf("global_batch_size %d is not divisible by %d replicas", cfg.GlobalBatchSize, worldSize)
	}
	arch := cfg.Arch
	arch.BatchSize = cfg.GlobalBatchSize / worldSize
	cfg.Arch = arch
	m, err := engine.NewModel(arch, be, engine.Options{Backward: true, ExplorationSeed: cfg.Seed})
	if err != nil {
		return nil, err
	}
	if err := m.SetParams(params); err != nil {
		return nil, err
	}
	return &Trainer{Cfg: cfg, Model: m, Optim: NewOptim(cfg, m), Carry: m.NewCarry(), TotalSteps: totalSteps}, nil
}

// StepReport is what one training step produced.
type StepReport struct {
	Step    int
	Result  *engine.StepResult // per-example outputs of the ACT step
	Metrics engine.Metrics     // the spec's sums over this replica's batch
	Info    StepInfo
	Compute time.Duration
	// DataWait is how long the loop waited for this batch from the data
	// iterator before the step: with Compute it tells an input-bound run
	// from a compute-bound one.
	DataWait time.Duration
}

// ErrNonFinite is wrapped by the error that stops a run after
// max_non_finite consecutive non-finite steps.
var ErrNonFinite = fmt.Errorf("non-finite loss or gradient")

// TrainBatch runs one ACT step on the batch offered (only slots whose
// example halted take theirs), back-propagates total / global batch size,
// and applies the optimizers and EMA. A non-finite loss or gradient skips
// the update; max_non_finite of them in a row return an error wrapping
// ErrNonFinite.
func (t *Trainer) TrainBatch(inputs, labels, pids []int32) (*StepReport, error) {
	start := time.Now()
	if err := t.Model.SetBatch(inputs, labels, pids); err != nil {
		return nil, err
	}
	so := engine.StepOptions{Train: true, Backward: true, GradScale: float32(1 / float64(t.Cfg.GlobalBatchSize))}
	if err := t.Model.Step(t.Carry, so); err != nil {
		return nil, fmt.Errorf("step %d: %w", t.Step+1, err)
	}
	r, err := t.Model.Result(t.Carry, false)
	if err != nil {
		return nil, err
	}
	met := r.Metrics()
	finite := !math.IsNaN(met.Loss) && !math.IsInf(met.Loss, 0)
	info, err := t.Optim.Apply(t.Carry.PIDs, t.TotalSteps, finite)
	if err != nil {
		return nil, err
	}
	t.Step++
	rep := &StepReport{Step: t.Step, Result: r, Metrics: met, Info: info, Compute: time.Since(start)}
	if info.Skipped {
		t.NonFinite++
		t.SkippedTotal++
		if t.NonFinite >= t.Cfg.MaxNonFinite {
			return rep, fmt.Errorf("%w: %d steps in a row (last: step %d, loss %g, gradient norm %g)", ErrNonFinite, t.NonFinite, t.Step, met.Loss, info.GradNorm)
		}
	} else {
		t.NonFinite = 0
	}
	return rep, nil
}
