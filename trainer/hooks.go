package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/tinyrecursive/trm/engine"
)

// RunInfo describes a run to its hooks when it starts.
type RunInfo struct {
	Config     Config
	TotalSteps int
	StartStep  int // > 0 when resumed
	Backend    string
	Params     int
	TrainSets  []string
	TestSets   []string
	// StepsPerEpoch is the number of optimizer steps one epoch takes
	// (total_groups * mean_puzzle_examples / global_batch_size), so a
	// hook can report progress in epochs even when total_steps_limit
	// shortens the run.
	StepsPerEpoch float64
	// RunDir is the run directory ("" without checkpoints) and RunLabel
	// the run's metrics label recorded there (RunFile).
	RunDir, RunLabel string
	// ResumedFrom is the checkpoint a resumed run continues ("" for a
	// fresh run), and Notes what the resume changed or recovered.
	ResumedFrom string
	Notes       []string
}

// CheckpointInfo describes a checkpoint just written.
type CheckpointInfo struct {
	Step     int
	Dir      string
	Duration time.Duration
	Best     bool
}

// Hook observes a run. The JSONL log, the progress line and the
// Prometheus exporter are hooks; the loop calls them in order.
type Hook interface {
	OnStart(RunInfo)
	OnStep(*StepReport)
	OnEval(*EvalReport)
	OnCheckpoint(CheckpointInfo)
	OnEnd(err error)
}

// NopHook implements Hook with no-ops, for embedding.
type NopHook struct{}

// OnStart implements Hook.
func (NopHook) OnStart(RunInfo) {}

// OnStep implements Hook.
func (NopHook) OnStep(*StepReport) {}

// OnEval implements Hook.
func (NopHook) OnEval(*EvalReport) {}

// OnCheckpoint implements Hook.
func (NopHook) OnCheckpoint(CheckpointInfo) {}

// OnEnd implements Hook.
func (NopHook) OnEnd(error) {}

// TrainMetrics returns the reported train metrics of a step, as the
// reference reports them: losses divided by the global batch size, the
// others by max(count, 1), plus the learning rates, the gradient norm and
// halting per supervision step (`train/halted_at_step_k`).
func TrainMetrics(r *StepReport, globalBatch int) map[string]float64 {
	m := r.Metrics
	cnt := math.Max(m.Count, 1)
	gb := float64(globalBatch)
	out := map[string]float64{
		"train/count":           m.Count,
		"train/accuracy":        m.Accuracy / cnt,
		"train/exact_accuracy":  m.ExactAccuracy / cnt,
		"train/q_halt_accuracy": m.QHaltAccuracy / cnt,
		"train/steps":           m.Steps / cnt,
		"train/lm_loss":         m.LMLoss / gb,
		"train/q_halt_loss":     m.QHaltLoss / gb,
		"train/q_continue_loss": m.QContinueLoss / gb,
		"train/loss":            m.Loss / gb,
		"train/lr":              r.Info.LR,
		"train/puzzle_emb_lr":   r.Info.PuzzleLR,
		"train/grad_norm":       r.Info.GradNorm,
		"train/update_norm":     r.Info.UpdateNorm,
	}
	if r.Info.Skipped {
		out["train/skipped"] = 1
	}
	return out
}

// SupStepStats are the sums over the examples of one training batch that
// have just run their k-th supervision step. A training batch mixes
// examples at every depth of recursion (each slot halts on its own), so
// grouping by the depth shows how loss and accuracy improve with
// recursion during training, which the batch means hide.
type SupStepStats struct {
	// Examples counts the examples with supervised tokens (n_b > 0) that
	// ran this supervision step; the other fields sum over them.
	Examples      int
	LMLoss        float64 // per-example LM loss (mean cross-entropy per token)
	QHaltLoss     float64
	QContinueLoss float64
	Accuracy      float64 // per-example token accuracy
	ExactAccuracy float64 // examples entirely right
	// QHaltAccuracy counts examples whose halting logit sign agrees with
	// their correctness (the reference's q_halt_accuracy, at every step).
	QHaltAccuracy float64
	// Halted counts the examples that halted after this step.
	Halted int
}

// SupSteps groups a training step's per-example outputs by supervision
// step: element k-1 holds the examples whose step count is k after the
// step, for k in 1..maxSteps. Examples without supervised tokens (padding)
// are left out because their losses and accuracies are zero by
// definition and would dilute the means.
func SupSteps(r *engine.StepResult, maxSteps int) []SupStepStats {
	out := make([]SupStepStats, maxSteps)
	for i, n := range r.NValid {
		k := int(r.Steps[i])
		if n <= 0 || k < 1 || k > maxSteps {
			continue
		}
		s := &out[k-1]
		s.Examples++
		s.LMLoss += r.LMLoss[i]
		s.QHaltLoss += r.QHaltLoss[i]
		s.QContinueLoss += r.QContLoss[i]
		s.Accuracy += float64(r.NCorrect[i]) / float64(n)
		seq := r.SeqCorrect[i] != 0
		if seq {
			s.ExactAccuracy++
		}
		if (r.QHalt[i] >= 0) == seq {
			s.QHaltAccuracy++
		}
		if r.Halted[i] != 0 {
			s.Halted++
		}
	}
	return out
}

// supStepJSON is the JSONL form of SupSteps: per supervision step k
// (index k-1) the example count and the means over those examples, null
// where no example ran step k (JSON has no NaN).
func supStepJSON(st []SupStepStats) map[string]any {
	n := len(st)
	count, halted := make([]int, n), make([]int, n)
	cols := map[string][]any{}
	names := []string{"lm_loss", "q_halt_loss", "q_continue_loss", "accuracy", "exact_accuracy", "q_halt_accuracy"}
	for _, name := range names {
		cols[name] = make([]any, n)
	}
	for k, s := range st {
		count[k], halted[k] = s.Examples, s.Halted
		if s.Examples == 0 {
			continue
		}
		c := float64(s.Examples)
		for j, v := range []float64{s.LMLoss, s.QHaltLoss, s.QContinueLoss, s.Accuracy, s.ExactAccuracy, s.QHaltAccuracy} {
			cols[names[j]][k] = v / c
		}
	}
	out := map[string]any{"count": count, "halted": halted}
	for name, c := range cols {
		out[name] = c
	}
	return out
}

// JSONLHook writes one JSON object per line: one per step, one per
// evaluation, one per checkpoint, a start record (and a resume record for
// a resumed run) and an end record. A failed write (a full disk, a closed
// pipe) is kept and reported by Err (HookError), so Run stops, or warns
// with RunOptions.LogDegrade, instead of training on with no log.
type JSONLHook struct {
	NopHook
	w           io.Writer
	f           *os.File
	path        string
	globalBatch int
	maxSteps    int
	enc         *json.Encoder
	err         error
}

// NewJSONLHook appends to the file at path (created if needed), so a
// resumed run continues the same log. A log whose last line a killed
// process left unfinished is ended with a newline first, so the records
// of the new run stay lines of their own (only the cut record is lost).
func NewJSONLHook(path string) (*JSONLHook, error) {
	cut := lastLineCut(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if cut {
		if _, err := f.Write([]byte{'\n'}); err != nil {
			f.Close()
			return nil, fmt.Errorf("log %s: %w", path, err)
		}
	}
	return &JSONLHook{w: f, f: f, path: path, enc: json.NewEncoder(f)}, nil
}

// lastLineCut reports whether path is a regular file whose last line has
// no newline.
func lastLineCut(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
		return false
	}
	last := make([]byte, 1)
	_, err = f.ReadAt(last, st.Size()-1)
	return err == nil && last[0] != '\n'
}

// NewJSONLWriter logs to w (a pipe, a test buffer); Err reports its write
// errors as for a file.
func NewJSONLWriter(w io.Writer, name string) *JSONLHook {
	return &JSONLHook{w: w, path: name, enc: json.NewEncoder(w)}
}

func (h *JSONLHook) write(v map[string]any) {
	if h.err != nil {
		return
	}
	v["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	if err := h.enc.Encode(v); err != nil {
		h.err = fmt.Errorf("log %s: %w", h.path, err)
	}
}

// Err implements HookError: the first write, sync or close error.
func (h *JSONLHook) Err() error { return h.err }

// OnStart implements Hook.
func (h *JSONLHook) OnStart(ri RunInfo) {
	h.globalBatch, h.maxSteps = ri.Config.GlobalBatchSize, ri.Config.Arch.HaltMaxSteps
	h.write(map[string]any{"type": "start", "total_steps": ri.TotalSteps, "start_step": ri.StartStep, "backend": ri.Backend, "params": ri.Params, "config": ri.Config,
		"run_dir": ri.RunDir, "run": ri.RunLabel})
	if ri.ResumedFrom != "" {
		notes := ri.Notes
		if notes == nil {
			notes = []string{}
		}
		h.write(map[string]any{"type": "resume", "from": ri.ResumedFrom, "step": ri.StartStep, "notes": notes})
	}
}

// OnStep implements Hook: the step's train metrics, per supervision step
// k the number of examples that halted after k steps, and under
// "sup_step" the per-step means of SupSteps (what `trm-train plot` draws).
func (h *JSONLHook) OnStep(r *StepReport) {
	v := map[string]any{"type": "train", "step": r.Step, "compute_seconds": r.Compute.Seconds(), "data_wait_seconds": r.DataWait.Seconds()}
	for k, x := range TrainMetrics(r, h.globalBatch) {
		v[k] = x
	}
	halts := map[string]int{}
	for i, hd := range r.Result.Halted {
		if hd != 0 {
			halts[fmt.Sprint(r.Result.Steps[i])]++
		}
	}
	v["halted_at_step"] = halts
	if h.maxSteps > 0 {
		v["sup_step"] = supStepJSON(SupSteps(r.Result, h.maxSteps))
	}
	h.write(v)
}

// OnEval implements Hook.
func (h *JSONLHook) OnEval(r *EvalReport) {
	v := map[string]any{"type": "eval", "step": r.Step}
	for k, x := range r.Flat {
		v[k] = x
	}
	curves := map[string]StepCurve{}
	for name, se := range r.Sets {
		curves[name] = se.Curve
	}
	v["curve"] = curves
	if len(r.Warning) > 0 {
		v["warnings"] = r.Warning
	}
	h.write(v)
}

// OnCheckpoint implements Hook. The log is synced with each checkpoint,
// so what the checkpoint records is in the log on disk too.
func (h *JSONLHook) OnCheckpoint(c CheckpointInfo) {
	h.write(map[string]any{"type": "checkpoint", "step": c.Step, "dir": c.Dir, "seconds": c.Duration.Seconds(), "best": c.Best})
	if h.f != nil && h.err == nil {
		if err := h.f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
			// EINVAL/ENOTSUP: a pipe or a character device, which has
			// nothing to sync.
			h.err = fmt.Errorf("log %s: %w", h.path, err)
		}
	}
}

// OnEnd implements Hook and closes the file.
func (h *JSONLHook) OnEnd(err error) {
	v := map[string]any{"type": "end"}
	if err != nil {
		v["error"] = err.Error()
	}
	h.write(v)
	if h.f != nil {
		if cerr := h.f.Close(); cerr != nil && h.err == nil {
			h.err = fmt.Errorf("log %s: %w", h.path, cerr)
		}
	}
}

// ProgressHook prints a progress line at most every Every: step, epoch,
// elapsed time, examples/s, an ETA, the loss, exact accuracy and learning
// rate; and evaluation summaries. The ETA is held back ("ETA --") until
// the run has taken etaMinSteps steps and etaMinElapsed since it started:
// the first steps include warm-up (allocation, the first evaluation's
// compilation on a GPU) and would extrapolate to a wrong time.
type ProgressHook struct {
	NopHook
	W             io.Writer
	Every         time.Duration
	total         int
	start         time.Time
	startStep     int
	last          time.Time
	globalBatch   int
	stepsPerEpoch float64
	sumLoss       float64
	sumExact      float64
	sumCount      float64
	n             int
	now           func() time.Time // the clock (tests set it)
}

// The ETA needs this much of the run behind it.
const (
	etaMinSteps   = 5
	etaMinElapsed = 10 * time.Second
)

func (p *ProgressHook) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// OnStart implements Hook.
func (p *ProgressHook) OnStart(ri RunInfo) {
	p.total, p.start, p.startStep, p.globalBatch = ri.TotalSteps, p.clock(), ri.StartStep, ri.Config.GlobalBatchSize
	p.stepsPerEpoch = ri.StepsPerEpoch
	if ri.ResumedFrom != "" {
		fmt.Fprintf(p.W, "resuming %s at step %d\n", ri.ResumedFrom, ri.StartStep)
	}
	fmt.Fprintf(p.W, "training %d steps on %s (%d parameters), global batch %d\n", ri.TotalSteps, ri.Backend, ri.Params, ri.Config.GlobalBatchSize)
}

// OnStep implements Hook.
func (p *ProgressHook) OnStep(r *StepReport) {
	p.sumLoss += r.Metrics.Loss / float64(p.globalBatch)
	p.sumExact += r.Metrics.ExactAccuracy
	p.sumCount += r.Metrics.Count
	p.n++
	now := p.clock()
	if now.Sub(p.last) < p.Every && r.Step != p.total {
		return
	}
	p.last = now
	done := r.Step - p.startStep
	el := now.Sub(p.start)
	eta := "--"
	if done >= etaMinSteps && el >= etaMinElapsed {
		eta = fmtDuration(time.Duration(float64(el) / float64(done) * float64(p.total-r.Step)))
	}
	epoch := ""
	if p.stepsPerEpoch > 0 {
		epoch = fmt.Sprintf("  epoch %.1f", float64(r.Step)/p.stepsPerEpoch)
	}
	rate := 0.0
	if el > 0 {
		rate = float64(done*p.globalBatch) / el.Seconds()
	}
	exact := p.sumExact / math.Max(p.sumCount, 1)
	fmt.Fprintf(p.W, "step %d/%d%s  elapsed %s  %.0f ex/s  ETA %s  loss %.4f  exact %.1f%%  lr %.2e\n",
		r.Step, p.total, epoch, fmtDuration(el), rate, eta, p.sumLoss/float64(p.n), 100*exact, r.Info.LR)
	p.sumLoss, p.sumExact, p.sumCount, p.n = 0, 0, 0, 0
}

// fmtDuration prints whole seconds (1h2m3s).
func fmtDuration(d time.Duration) string { return d.Round(time.Second).String() }

// OnEval implements Hook.
func (p *ProgressHook) OnEval(r *EvalReport) {
	fmt.Fprintf(p.W, "eval at step %d:", r.Step)
	for _, k := range r.SortedKeys() {
		if strings.HasSuffix(k, "/exact_accuracy") || strings.HasPrefix(k, "ARC/") {
			fmt.Fprintf(p.W, "  %s %.4f", k, r.Flat[k])
		}
	}
	fmt.Fprintln(p.W)
	for _, w := range r.Warning {
		fmt.Fprintln(p.W, "warning:", w)
	}
}

// OnCheckpoint implements Hook.
func (p *ProgressHook) OnCheckpoint(c CheckpointInfo) {
	best := ""
	if c.Best {
		best = " (best so far)"
	}
	fmt.Fprintf(p.W, "checkpoint step %d -> %s in %s%s\n", c.Step, c.Dir, c.Duration.Round(time.Millisecond), best)
}
