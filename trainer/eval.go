package trainer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/arc"
)

// StepCurve is how answers improve with recursion: the accuracy and exact
// accuracy of every real test example after each supervision step (the
// reference reports only the last).
type StepCurve struct {
	Count         float64   `json:"count"`
	Accuracy      []float64 `json:"accuracy"`       // mean per-example token accuracy after step k+1
	ExactAccuracy []float64 `json:"exact_accuracy"` // fraction of examples entirely right after step k+1
	QHaltPositive []float64 `json:"q_halt_positive"`
}

// SetEval is one dataset set's evaluation.
type SetEval struct {
	// Metrics are the sums of the final supervision step over all
	// batches (reported divided by count).
	Metrics engine.Metrics
	Curve   StepCurve
	// Early exit (eval_early_exit): supervision steps run and saved, and
	// the accuracy of each example's answer at the step it stopped.
	StepsRun, StepsSaved   int
	EarlyAccuracy, EarlyEx float64
}

// EvalReport is one evaluation of every test set, plus ARC pass@K.
type EvalReport struct {
	Step    int
	Sets    map[string]*SetEval
	ARC     map[string]float64 // ARC/pass@K where the test set is ARC
	Flat    map[string]float64 // every reported metric by its reference name
	Warning []string
}

// Evaluator runs evaluation with a model of its own (no gradient buffers),
// so the training carry is untouched.
type Evaluator struct {
	cfg    Config
	model  engine.Trainable
	ds     *data.Dataset
	arc    *arc.Evaluator
	outDir string
	// carry is the evaluation's ACT carry, made on the first evaluation
	// and reset for every batch after: a carry is B x S x H floats per
	// state (gigabytes at ARC size), and on a device backend, whose memory
	// the garbage collector does not return, a carry per evaluation would
	// grow device memory with every evaluation of the run.
	carry *engine.Carry
}

// NewEvaluator opens the evaluation model for test set ds. outDir, if
// set, receives submission.json for ARC sets.
func NewEvaluator(cfg Config, be engine.Backend, ds *data.Dataset, localBatch int, outDir string) (*Evaluator, error) {
	arch := cfg.Arch
	arch.BatchSize = localBatch
	m, err := engine.NewModel(arch, be, engine.Options{Arch: cfg.ArchSettings})
	if err != nil {
		return nil, err
	}
	e := &Evaluator{cfg: cfg, model: m, ds: ds, outDir: outDir}
	// ARC test sets carry test_puzzles.json. Merged directories are
	// scored together: the merged identifiers (offset per directory) name
	// the puzzles, and every directory's test puzzles are the answers.
	var tests []arc.NamedTask
	var arcDirs, otherDirs []string
	for _, d := range ds.Dirs {
		p := filepath.Join(d, "test_puzzles.json")
		if _, err := os.Stat(p); err != nil {
			otherDirs = append(otherDirs, d)
			continue
		}
		ts, err := arc.LoadTestPuzzles(p)
		if err != nil {
			return nil, fmt.Errorf("ARC scorer: %w", err)
		}
		tests = append(tests, ts...)
		arcDirs = append(arcDirs, d)
	}
	if len(arcDirs) > 0 && len(otherDirs) > 0 {
		return nil, fmt.Errorf("test data mixes ARC directories (%v, with test_puzzles.json) and others (%v): evaluate them separately", arcDirs, otherDirs)
	}
	if len(arcDirs) > 0 {
		e.arc = arc.NewEvaluator(ds.Identifiers, tests, int32(ds.Meta.BlankIdentifierID), cfg.AggregatedVoting)
	}
	return e, nil
}

// Evaluate runs every test batch for halt_max_steps supervision steps from
// a fresh carry with the given weights, as the reference evaluates.
func (e *Evaluator) Evaluate(params *engine.Params, sh data.Sharding, step int) (*EvalReport, error) {
	return e.EvaluateContext(context.Background(), params, sh, step)
}

// EvaluateContext is Evaluate that gives up when ctx ends: it checks
// before every supervision step, so a SIGTERM ends even a long evaluation
// within one step's time. The error then wraps the context's cause.
func (e *Evaluator) EvaluateContext(ctx context.Context, params *engine.Params, sh data.Sharding, step int) (*EvalReport, error) {
	if err := e.model.SetParams(params); err != nil {
		return nil, err
	}
	it, err := e.ds.Test(sh)
	if err != nil {
		return nil, err
	}
	if e.arc != nil {
		e.arc.BeginEval()
	}
	rep := &EvalReport{Step: step, Sets: map[string]*SetEval{}, Flat: map[string]float64{}}
	m := e.model
	maxSteps := m.Config().HaltMaxSteps
	dims := m.Shape()
	B, L := dims.B, dims.L
	if e.carry == nil {
		e.carry = m.NewCarry()
	}
	c := e.carry
	var b data.Batch
	perSet := map[string]int{}
	for {
		if err := it.Next(&b); errors.Is(err, data.ErrEndOfPass) {
			break
		} else if err != nil {
			return nil, err
		}
		if e.cfg.EvalBatches > 0 && perSet[b.Set] >= e.cfg.EvalBatches {
			continue
		}
		perSet[b.Set]++
		se := rep.Sets[b.Set]
		if se == nil {
			se = &SetEval{Curve: StepCurve{Accuracy: make([]float64, maxSteps), ExactAccuracy: make([]float64, maxSteps), QHaltPositive: make([]float64, maxSteps)}}
			rep.Sets[b.Set] = se
		}
		if err := m.SetBatch(b.Inputs, b.Labels, b.PuzzleIdentifiers); err != nil {
			return nil, fmt.Errorf("test set %s: %w", b.Set, err)
		}
		m.ResetCarry(c)
		// Early-exit bookkeeping: per example, the step its q_halt first
		// turned positive and its correctness then.
		stopped := make([]bool, B)
		earlyAcc, earlyEx := make([]float64, B), make([]float64, B)
		var last *engine.StepResult
		ran := 0
		for k := 0; k < maxSteps; k++ {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("evaluation at step %d abandoned: %w", step, context.Cause(ctx))
			}
			if err := m.Step(c, engine.StepOptions{}); err != nil {
				return nil, err
			}
			r, err := m.Result(c, false)
			if err != nil {
				return nil, err
			}
			ran++
			last = r
			all := true
			for i := range B {
				if r.NValid[i] == 0 {
					continue
				}
				acc := float64(r.NCorrect[i]) / float64(r.NValid[i])
				se.Curve.Accuracy[k] += acc
				se.Curve.ExactAccuracy[k] += float64(r.SeqCorrect[i])
				if r.QHalt[i] > 0 {
					se.Curve.QHaltPositive[k]++
				}
				if !stopped[i] {
					earlyAcc[i], earlyEx[i] = acc, float64(r.SeqCorrect[i])
					if r.QHalt[i] > 0 {
						stopped[i] = true
					} else {
						all = false
					}
				}
			}
			if e.cfg.EvalEarlyExit && all {
				break
			}
		}
		if ran < maxSteps {
			// The batch stopped early: its reported metrics are those of
			// each example's stopping step.
			for i := range B {
				if last.NValid[i] > 0 {
					se.Metrics.Count++
					se.Metrics.Accuracy += earlyAcc[i]
					se.Metrics.ExactAccuracy += earlyEx[i]
				}
			}
			se.Metrics.Steps += float64(ran * countReal(last))
		} else {
			se.Metrics.Add(last.Metrics())
		}
		n := countReal(last)
		se.Curve.Count += float64(n)
		se.StepsRun += ran * n
		se.StepsSaved += (maxSteps - ran) * n
		for i := range B {
			if last.NValid[i] > 0 {
				se.EarlyAccuracy += earlyAcc[i]
				se.EarlyEx += earlyEx[i]
			}
		}
		if e.arc != nil {
			if err := e.arc.AddBatch(&b, last.Preds[:B*L], last.QHalt); err != nil {
				return nil, err
			}
		}
	}
	for name, se := range rep.Sets {
		cnt := se.Metrics.Count
		if cnt == 0 {
			rep.Warning = append(rep.Warning, fmt.Sprintf("set %s: no evaluated example (count 0): metrics reported as 0", name))
			cnt = 1
		}
		rep.Flat[name+"/count"] = se.Metrics.Count
		rep.Flat[name+"/accuracy"] = se.Metrics.Accuracy / cnt
		rep.Flat[name+"/exact_accuracy"] = se.Metrics.ExactAccuracy / cnt
		rep.Flat[name+"/q_halt_accuracy"] = se.Metrics.QHaltAccuracy / cnt
		rep.Flat[name+"/steps"] = se.Metrics.Steps / cnt
		rep.Flat[name+"/lm_loss"] = se.Metrics.LMLoss / cnt
		rep.Flat[name+"/q_halt_loss"] = se.Metrics.QHaltLoss / cnt
		if cc := se.Curve.Count; cc > 0 {
			for k := range se.Curve.Accuracy {
				se.Curve.Accuracy[k] /= cc
				se.Curve.ExactAccuracy[k] /= cc
				se.Curve.QHaltPositive[k] /= cc
			}
			se.EarlyAccuracy /= cc
			se.EarlyEx /= cc
		}
		if e.cfg.EvalEarlyExit {
			rep.Flat[name+"/steps_saved_fraction"] = float64(se.StepsSaved) / float64(max(1, se.StepsRun+se.StepsSaved))
		}
	}
	if e.arc != nil {
		scores, sub := e.arc.Result()
		rep.ARC = scores
		for k, v := range scores {
			rep.Flat[k] = v
		}
		if e.outDir != "" {
			if err := os.MkdirAll(e.outDir, 0o755); err != nil {
				return nil, err
			}
			if err := arc.WriteSubmission(filepath.Join(e.outDir, "submission.json"), sub); err != nil {
				return nil, err
			}
		}
	}
	return rep, nil
}

func countReal(r *engine.StepResult) int {
	n := 0
	for _, v := range r.NValid {
		if v > 0 {
			n++
		}
	}
	return n
}

// SortedKeys returns the flat metric names in order (for stable logs).
func (r *EvalReport) SortedKeys() []string {
	ks := make([]string, 0, len(r.Flat))
	for k := range r.Flat {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
