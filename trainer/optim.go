package trainer

import (
	"fmt"
	"math"

	"github.com/tinyrecursive/trm/engine"
)

// Optim holds the optimizer and EMA state on the model's backend: the
// AdamATan2 moments of the flat trained buffer, the EMA shadow, and the
// step count.
type Optim struct {
	cfg    Config
	model  engine.Trainable
	be     engine.Backend
	m, v   engine.Buf // [NumTrained] moments
	shadow engine.Buf // [NumTrained] EMA of the trained parameters, or nil
	norm   engine.Buf // [1] f64, a squared norm read back each step
	delta  engine.Buf // [NumTrained] theta before the update, then the update itself
	// Step counts optimizer steps taken (the next step is Step+1).
	Step int
}

// NewOptim allocates the optimizer state for model. The EMA shadow starts
// as a copy of the current trained parameters.
func NewOptim(cfg Config, model engine.Trainable) *Optim {
	be := model.Backend()
	n := model.ParamLayout().NumTrained
	o := &Optim{cfg: cfg, model: model, be: be, m: be.Alloc(engine.F32, n), v: be.Alloc(engine.F32, n), norm: be.Alloc(engine.F64, 1),
		delta: be.Alloc(engine.F32, n)}
	if cfg.EMA {
		o.shadow = be.Alloc(engine.F32, n)
		params, _, _, _ := model.ParamBuffers()
		be.Copy2D(o.shadow, 0, params, 0, 1, n)
	}
	return o
}

// StepInfo reports what one optimizer step did.
type StepInfo struct {
	LR, PuzzleLR float64
	GradNorm     float64 // L2 norm of the trained-parameter gradient (after the 1/global batch scale)
	UpdateNorm   float64 // L2 norm of the change of the trained parameters (decay included)
	Skipped      bool    // the gradient or loss was not finite: no update
}

// Apply takes one optimizer step from the gradients of the last backward
// pass (already summed over replicas), with the puzzle-row gradients
// rowGrads [rows, puzzle_emb_ndim] identified by pids [rows] (the carries'
// current puzzle identifiers, gathered over replicas). totalSteps sets the
// schedule. A non-finite gradient skips the update (and leaves the step
// count unchanged).
func (o *Optim) Apply(pids, rowGrads engine.Buf, rows, totalSteps int, lossFinite bool) (StepInfo, error) {
	cfg := o.cfg
	params, grads, puzzle, _ := o.model.ParamBuffers()
	be := o.be
	be.SumSquares(o.norm, grads)
	sq := make([]float64, 1)
	be.Download(sq, o.norm)
	if err := be.Sync(); err != nil {
		return StepInfo{}, err
	}
	step := o.Step + 1
	info := StepInfo{
		LR:       LR(cfg.LR, step, cfg.LRWarmupSteps, totalSteps, cfg.LRMinRatio),
		PuzzleLR: LR(cfg.PuzzleEmbLR, step, cfg.LRWarmupSteps, totalSteps, cfg.LRMinRatio),
		GradNorm: math.Sqrt(sq[0]),
	}
	if !lossFinite || math.IsNaN(sq[0]) || math.IsInf(sq[0], 0) {
		info.Skipped = true
		return info, nil
	}
	n := o.model.ParamLayout().NumTrained
	if !cfg.FreezeWeights {
		// delta = theta before the update, then theta_new - delta: plain
		// elementwise ops, exact in fp32 whatever the backend's GEMM
		// precision (a GEMM would round theta to bf16 in bf16 mode).
		be.Copy2D(o.delta, 0, params, 0, 1, n)
		be.AdamATan2(params, grads, o.m, o.v, engine.AdamHyper{LR: info.LR, Beta1: cfg.Beta1, Beta2: cfg.Beta2, WeightDecay: cfg.WeightDecay, Step: step})
	}
	if puzzle != nil {
		nd := o.model.Config().PuzzleEmbNdim
		be.SignSGDRows(puzzle, rowGrads, pids, rows, nd, float32(info.PuzzleLR), float32(cfg.PuzzleEmbWeightDecay))
	}
	if o.shadow != nil {
		be.EMA(o.shadow, params, float32(cfg.EMARate))
	}
	if !cfg.FreezeWeights {
		be.Axpby(o.delta, params, o.delta, 1, -1)
		be.SumSquares(o.norm, o.delta)
		be.Download(sq, o.norm)
	}
	if err := be.Sync(); err != nil {
		return info, fmt.Errorf("optimizer step %d: %w", step, err)
	}
	if !cfg.FreezeWeights {
		info.UpdateNorm = math.Sqrt(sq[0])
	}
	o.Step = step
	return info, nil
}

// EMAParams returns the evaluation weights: the EMA shadow (with the
// current puzzle table and buffers) when EMA is on, else the current state.
func (o *Optim) EMAParams() (*engine.Params, error) {
	p, err := o.model.Params()
	if err != nil || o.shadow == nil {
		return p, err
	}
	o.be.Download(p.Trained, o.shadow)
	return p, o.be.Sync()
}

// OptimState is the host copy of the optimizer state for checkpoints.
type OptimState struct {
	M, V, Shadow []float32
	Step         int
}

// Save downloads the state.
func (o *Optim) Save() (*OptimState, error) {
	n := o.model.ParamLayout().NumTrained
	s := &OptimState{M: make([]float32, n), V: make([]float32, n), Step: o.Step}
	o.be.Download(s.M, o.m)
	o.be.Download(s.V, o.v)
	if o.shadow != nil {
		s.Shadow = make([]float32, n)
		o.be.Download(s.Shadow, o.shadow)
	}
	return s, o.be.Sync()
}

// Load uploads a saved state.
func (o *Optim) Load(s *OptimState) error {
	n := o.model.ParamLayout().NumTrained
	if len(s.M) != n || len(s.V) != n || (o.shadow != nil && len(s.Shadow) != n) {
		return fmt.Errorf("optimizer state sizes (%d, %d, %d) do not match the model's %d parameters (EMA %v)", len(s.M), len(s.V), len(s.Shadow), n, o.shadow != nil)
	}
	o.be.Upload(o.m, s.M)
	o.be.Upload(o.v, s.V)
	if o.shadow != nil {
		o.be.Upload(o.shadow, s.Shadow)
	}
	o.Step = s.Step
	return o.be.Sync()
}

// ResetEMA restarts the EMA shadow from the current parameters (after the
// starting weights were replaced, e.g. broadcast from rank 0).
func (o *Optim) ResetEMA() {
	if o.shadow == nil {
		return
	}
	params, _, _, _ := o.model.ParamBuffers()
	o.be.Copy2D(o.shadow, 0, params, 0, 1, o.model.ParamLayout().NumTrained)
}
