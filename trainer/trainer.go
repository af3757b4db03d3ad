package trainer

import (
	"fmt"
	"math"
	"time"

	"github.com/tinyrecursive/trm/device/comm"
	"github.com/tinyrecursive/trm/engine"
)

// Trainer owns one model replica, its optimizer state and its persistent
// ACT carry, and takes one optimizer step per batch.
type Trainer struct {
	Cfg        Config
	Model      engine.Trainable
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

	// Data parallelism: the replica group (nil: one replica), and buffers
	// for the gathered puzzle rows and ids and the reduced metrics.
	comm            comm.Comm
	gLocal, gPIDs   engine.Buf
	metricBuf, flag engine.Buf
	// staging holds the device buffers of GlobalCarry and
	// BroadcastParams, by type and length, made on first use and reused:
	// both run on every checkpoint or resume, and a device backend does
	// not return memory to the garbage collector, so buffers made per call
	// would grow device memory for the whole run.
	staging map[stagingKey]engine.Buf
}

// stagingKey names one of Trainer.staging's buffers.
type stagingKey struct {
	dt engine.DType
	n  int
	// role separates buffers of the same type and length that one
	// collective uses at once (send and receive).
	role int
}

// stagingBuf returns the trainer's reused device buffer for key (dt, n,
// role), allocating it the first time.
func (t *Trainer) stagingBuf(dt engine.DType, n, role int) engine.Buf {
	k := stagingKey{dt, n, role}
	if b, ok := t.staging[k]; ok {
		return b
	}
	if t.staging == nil {
		t.staging = map[stagingKey]engine.Buf{}
	}
	b := t.Model.Backend().Alloc(dt, n)
	t.staging[k] = b
	return b
}

// New builds a trainer on backend be from an initial state. The model's
// batch size is the global batch divided by worldSize.
func New(cfg Config, be engine.Backend, params *engine.Params, totalSteps, worldSize int) (*Trainer, error) {
	return NewReplica(cfg, be, params, totalSteps, nil, worldSize)
}

// NewReplica builds one data-parallel replica: its model holds
// global_batch_size / worldSize slots, and each step sums the gradients
// over the group c (nil for a single replica, worldSize 1). Every replica
// must start from the same params.
func NewReplica(cfg Config, be engine.Backend, params *engine.Params, totalSteps int, c comm.Comm, worldSize int) (*Trainer, error) {
	rank := 0
	if c != nil {
		rank, worldSize = c.Rank(), c.Size()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if worldSize < 1 || cfg.GlobalBatchSize%worldSize != 0 {
		return nil, fmt.Errorf("global_batch_size %d is not divisible by %d replicas", cfg.GlobalBatchSize, worldSize)
	}
	arch := cfg.Arch
	arch.BatchSize = cfg.GlobalBatchSize / worldSize
	cfg.Arch = arch
	m, err := engine.NewModel(arch, be, engine.Options{Backward: true, ExplorationSeed: cfg.Seed, Replica: rank, Replicas: worldSize, Arch: cfg.ArchSettings})
	if err != nil {
		return nil, err
	}
	if err := m.SetParams(params); err != nil {
		return nil, err
	}
	t := &Trainer{Cfg: cfg, Model: m, Optim: NewOptim(cfg, m), Carry: m.NewCarry(), TotalSteps: totalSteps}
	// A group of one still runs every collective: a one-GPU job then takes
	// the multi-GPU code path (what the GPU check exercises on one device).
	if c != nil {
		t.comm = c
		if nd := arch.PuzzleEmbNdim; nd > 0 {
			t.gLocal = be.Alloc(engine.F32, worldSize*arch.BatchSize*nd)
			t.gPIDs = be.Alloc(engine.I32, worldSize*arch.BatchSize)
		}
		t.metricBuf = be.Alloc(engine.F64, numMetrics)
		t.flag = be.Alloc(engine.I32, 1)
	}
	return t, nil
}

// Comm returns the replica group, or nil for a single replica.
func (t *Trainer) Comm() comm.Comm { return t.comm }

// numMetrics is the number of fields of engine.Metrics reduced over replicas.
const numMetrics = 9

func metricsVec(m engine.Metrics) []float64 {
	return []float64{m.Count, m.Accuracy, m.ExactAccuracy, m.QHaltAccuracy, m.Steps, m.LMLoss, m.QHaltLoss, m.QContinueLoss, m.Loss}
}

func metricsFrom(v []float64) engine.Metrics {
	return engine.Metrics{Count: v[0], Accuracy: v[1], ExactAccuracy: v[2], QHaltAccuracy: v[3], Steps: v[4],
		LMLoss: v[5], QHaltLoss: v[6], QContinueLoss: v[7], Loss: v[8]}
}

// reduceStep sums the gradients, gathers the puzzle rows and ids, and sums
// the metrics over the replicas, in that order on every replica.
func (t *Trainer) reduceStep(met *engine.Metrics) error {
	be := t.Model.Backend()
	_, grads, _, dLocal := t.Model.ParamBuffers()
	if err := t.comm.AllReduceSum(be, grads); err != nil {
		return err
	}
	if t.gLocal != nil {
		if err := t.comm.AllGather(be, dLocal, t.gLocal); err != nil {
			return err
		}
		if err := t.comm.AllGather(be, t.Carry.PIDs, t.gPIDs); err != nil {
			return err
		}
	}
	be.Upload(t.metricBuf, metricsVec(*met))
	if err := t.comm.AllReduceSum(be, t.metricBuf); err != nil {
		return err
	}
	v := make([]float64, numMetrics)
	be.Download(v, t.metricBuf)
	*met = metricsFrom(v)
	return be.Sync()
}

// AnyStop is a collective: it reports whether stop is true on any replica,
// so every replica stops after the same step (a signal seen by one replica
// a moment earlier must not split the group).
func (t *Trainer) AnyStop(stop bool) (bool, error) {
	if t.comm == nil {
		return stop, nil
	}
	be := t.Model.Backend()
	v := []int32{0}
	if stop {
		v[0] = 1
	}
	be.Upload(t.flag, v)
	if err := t.comm.AllReduceSum(be, t.flag); err != nil {
		return false, err
	}
	be.Download(v, t.flag)
	return v[0] > 0, be.Sync()
}

// StepReport is what one training step produced.
type StepReport struct {
	Step    int
	Result  *engine.StepResult // per-example outputs of this replica's ACT step
	Metrics engine.Metrics     // sums over the global batch (all replicas)
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
	_, _, _, dLocal := t.Model.ParamBuffers()
	rowIDs, rows := t.Carry.PIDs, t.Model.Shape().B
	if t.comm != nil {
		if err := t.reduceStep(&met); err != nil {
			return nil, fmt.Errorf("step %d: reducing over replicas: %w", t.Step+1, err)
		}
		dLocal, rowIDs, rows = t.gLocal, t.gPIDs, t.comm.Size()*t.Model.Shape().B
	}
	finite := !math.IsNaN(met.Loss) && !math.IsInf(met.Loss, 0)
	info, err := t.Optim.Apply(rowIDs, dLocal, rows, t.TotalSteps, finite)
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

// GlobalCarry returns the ACT carry of every slot of the global batch
// (gathered over replicas in rank order), what a checkpoint stores so a
// resumed run can re-shard it over any number of replicas. With replicas
// it is a collective: every replica must call it.
func (t *Trainer) GlobalCarry() (*engine.CarryHost, error) {
	h, err := t.Model.SaveCarry(t.Carry)
	if err != nil || t.comm == nil {
		return h, err
	}
	be := t.Model.Backend()
	n := t.comm.Size()
	gf := func(v []float32) ([]float32, error) {
		send, recv := t.stagingBuf(engine.F32, len(v), 0), t.stagingBuf(engine.F32, n*len(v), 1)
		be.Upload(send, v)
		if err := t.comm.AllGather(be, send, recv); err != nil {
			return nil, err
		}
		out := make([]float32, n*len(v))
		be.Download(out, recv)
		return out, be.Sync()
	}
	gi := func(v []int32) ([]int32, error) {
		send, recv := t.stagingBuf(engine.I32, len(v), 0), t.stagingBuf(engine.I32, n*len(v), 1)
		be.Upload(send, v)
		if err := t.comm.AllGather(be, send, recv); err != nil {
			return nil, err
		}
		out := make([]int32, n*len(v))
		be.Download(out, recv)
		return out, be.Sync()
	}
	g := &engine.CarryHost{}
	for _, z := range h.Z {
		v, err := gf(z)
		if err != nil {
			return nil, err
		}
		g.Z = append(g.Z, v)
	}
	g.ZH, g.ZL = carryNamed(t.Model, g.Z)
	for _, f := range []struct {
		dst *[]int32
		src []int32
	}{{&g.Steps, h.Steps}, {&g.Halted, h.Halted}, {&g.Inputs, h.Inputs}, {&g.Labels, h.Labels}, {&g.PIDs, h.PIDs}} {
		if *f.dst, err = gi(f.src); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// carryNamed returns the states named z_H and z_L of a carry's states in
// the order of m.CarryFields (nil where the architecture has none), the
// CarryHost fields that name them.
func carryNamed(m engine.Trainable, z [][]float32) (zH, zL []float32) {
	for i, name := range m.CarryFields() {
		switch name {
		case "z_H":
			zH = z[i]
		case "z_L":
			zL = z[i]
		}
	}
	return zH, zL
}

// sliceCarry cuts replica rank's slots out of a global carry of n replicas.
func sliceCarry(g *engine.CarryHost, rank, n int) (*engine.CarryHost, error) {
	B := len(g.Steps)
	if n < 1 || B%n != 0 {
		return nil, fmt.Errorf("a carry of %d slots does not split over %d replicas", B, n)
	}
	b := B / n
	cut32 := func(v []float32) []float32 { per := len(v) / B; return v[rank*b*per : (rank+1)*b*per] }
	cuti := func(v []int32) []int32 { per := len(v) / B; return v[rank*b*per : (rank+1)*b*per] }
	var z [][]float32
	for _, v := range g.Z {
		z = append(z, cut32(v))
	}
	return &engine.CarryHost{Z: z, Steps: cuti(g.Steps), Halted: cuti(g.Halted),
		Inputs: cuti(g.Inputs), Labels: cuti(g.Labels), PIDs: cuti(g.PIDs)}, nil
}

// BroadcastParams makes every replica start from rank 0's state (trained
// parameters, puzzle table, buffers), whatever each replica initialised
// or loaded, and restarts the EMA shadow from it. A collective.
func (t *Trainer) BroadcastParams() error {
	if t.comm == nil {
		return nil
	}
	be := t.Model.Backend()
	p, err := t.Model.Params()
	if err != nil {
		return err
	}
	for _, v := range [][]float32{p.Trained, p.Puzzle, p.Buffers} {
		if len(v) == 0 {
			continue
		}
		b := t.stagingBuf(engine.F32, len(v), 0)
		be.Upload(b, v)
		if err := t.comm.Broadcast(be, b, 0); err != nil {
			return fmt.Errorf("broadcasting the weights from rank 0: %w", err)
		}
		be.Download(v, b)
	}
	if err := t.Model.SetParams(p); err != nil {
		return err
	}
	t.Optim.ResetEMA()
	return be.Sync()
}
