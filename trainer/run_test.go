package trainer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// recorder keeps every step's loss and can cancel the run after a step.
type recorder struct {
	NopHook
	losses   []float64
	steps    []int
	evals    []*EvalReport
	cancelAt int
	cancel   context.CancelFunc
	ckpts    []CheckpointInfo
}

func (r *recorder) OnStep(s *StepReport) {
	r.losses = append(r.losses, s.Metrics.Loss)
	r.steps = append(r.steps, s.Step)
	if s.Step == r.cancelAt && r.cancel != nil {
		r.cancel()
	}
}
func (r *recorder) OnEval(e *EvalReport)          { r.evals = append(r.evals, e) }
func (r *recorder) OnCheckpoint(c CheckpointInfo) { r.ckpts = append(r.ckpts, c) }

func smallRunConfig(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	if err := BuildDemoSudoku(dir, 100, 20, 8, 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	cfg := DemoConfig()
	cfg.DataPaths = []string{dir}
	cfg.GlobalBatchSize = 16
	cfg.Epochs, cfg.EvalInterval = 4, 2
	cfg.Arch.HaltExplorationProb = 0.5 // exercise the exploration RNG across the resume
	cfg.TotalStepsLimit = 16           // crosses the end of the first pass (12 batches) and its evaluation
	cfg.CheckpointDir = filepath.Join(t.TempDir(), "ckpt")
	cfg.KeepCheckpoints = 2
	cfg.BestMetric = "all/exact_accuracy"
	return cfg
}

// TestResumeBitExact: a run interrupted mid-pass and resumed from its
// checkpoint produces the same losses, bit for bit, and the same final
// weights as an uninterrupted run.
func TestResumeBitExact(t *testing.T) {
	testResumeBitExact(t, func() engine.Backend { return cpu.New(0) })
}

// TestResumeBitExactBF16: the same in the CPU's bf16 training (bf16 GEMMs
// and activations, as TRM_CPU_GEMM=bf16 runs): the activations live only
// within a step, and the carry a checkpoint saves is float32, so a resumed
// run continues exactly there too.
func TestResumeBitExactBF16(t *testing.T) {
	if !gemm.BF16Supported() {
		t.Skip("this CPU lacks AVX512_BF16: the bf16 mode cannot run here")
	}
	testResumeBitExact(t, func() engine.Backend {
		b, err := cpu.NewWithOptions(cpu.Options{Gemm: cpu.GemmBF16, Activations: engine.BF16})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func testResumeBitExact(t *testing.T, newBackend func() engine.Backend) {
	cfg := smallRunConfig(t)
	full := &recorder{}
	sum, err := Run(context.Background(), cfg, RunOptions{Backend: newBackend(), Hooks: []Hook{full}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Steps != 16 || len(full.losses) != 16 || len(full.evals) != 2 {
		t.Fatalf("uninterrupted run: %d steps, %d losses, %d evaluations", sum.Steps, len(full.losses), len(full.evals))
	}
	meta, err := LoadMeta(sum.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	layout := engine.NewLayout(meta.Config.Arch)
	want, err := engine.LoadState(filepath.Join(sum.Checkpoint, ModelFile), layout)
	if err != nil {
		t.Fatal(err)
	}

	cfg2 := cfg
	cfg2.CheckpointDir = filepath.Join(t.TempDir(), "ckpt")
	ctx, cancel := context.WithCancel(context.Background())
	first := &recorder{cancelAt: 5, cancel: cancel}
	sum1, err := Run(ctx, cfg2, RunOptions{Backend: newBackend(), Hooks: []Hook{first}})
	if err != nil {
		t.Fatal(err)
	}
	if !sum1.Interrupted || sum1.Steps != 5 || sum1.Checkpoint == "" {
		t.Fatalf("interrupted run: %+v", sum1)
	}
	second := &recorder{}
	sum2, err := Run(context.Background(), Config{}, RunOptions{Backend: newBackend(), Hooks: []Hook{second}, Resume: cfg2.CheckpointDir})
	if err != nil {
		t.Fatal(err)
	}
	got := append(append([]float64{}, first.losses...), second.losses...)
	if !slices.Equal(got, full.losses) {
		t.Fatalf("losses after resume differ:\n got  %v\n want %v", got, full.losses)
	}
	if second.steps[0] != 6 || sum2.Steps != 16 {
		t.Fatalf("resumed at step %d, ended at %d", second.steps[0], sum2.Steps)
	}
	gotP, err := engine.LoadState(filepath.Join(sum2.Checkpoint, ModelFile), layout)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotP.Trained, want.Trained) || !slices.Equal(gotP.Puzzle, want.Puzzle) {
		t.Fatal("final weights differ after resume")
	}
	// Checkpoint housekeeping: the last 2 step checkpoints and a best.
	steps, _ := ListCheckpoints(cfg2.CheckpointDir)
	if len(steps) != 2 {
		t.Fatalf("kept %d checkpoints, want 2: %v", len(steps), steps)
	}
	if _, err := os.Stat(filepath.Join(cfg2.CheckpointDir, "best", "best.json")); err != nil {
		t.Fatalf("no best checkpoint: %v", err)
	}
	ents, _ := os.ReadDir(cfg2.CheckpointDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Fatalf("temporary checkpoint left behind: %s", e.Name())
		}
	}
}

// TestNonFiniteStops: a learning rate of 1e30 blows the weights up after
// the first update, so the next losses are non-finite; the run skips them, stops after max_non_finite in a row with
// an error naming the cause, and leaves a checkpoint of the last good state.
func TestNonFiniteStops(t *testing.T) {
	cfg := smallRunConfig(t)
	cfg.LR, cfg.LRWarmupSteps = 1e30, 0
	cfg.MaxNonFinite = 2
	rec := &recorder{}
	_, err := Run(context.Background(), cfg, RunOptions{Backend: cpu.New(0), Hooks: []Hook{rec}})
	if err == nil || !strings.Contains(err.Error(), "non-finite") || !strings.Contains(err.Error(), "last good state") {
		t.Fatalf("error %v", err)
	}
}

// TestLearnsSudoku is the learning test: the demo (DemoConfig, a small
// seeded TRM, on BuildDemoData's generated 4x4 Sudoku: at least 8 blanks,
// test puzzles disjoint from the training ones) must reach 95% held-out
// exact accuracy.
func TestLearnsSudoku(t *testing.T) {
	if testing.Short() {
		t.Skip("the learning test trains for about 25 s")
	}
	dir := t.TempDir()
	if err := BuildDemoData(dir, nil); err != nil {
		t.Fatal(err)
	}
	cfg := DemoConfig()
	cfg.DataPaths = []string{dir}
	sum, err := Run(context.Background(), cfg, RunOptions{Backend: cpu.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	acc := sum.LastEval.Flat["all/exact_accuracy"]
	t.Logf("%d steps in %s: held-out exact accuracy %.3f on %v examples", sum.Steps, sum.Wall, acc, sum.LastEval.Flat["all/count"])
	if acc < 0.95 || sum.LastEval.Flat["all/count"] != 200 {
		t.Fatalf("held-out exact accuracy %.3f on %v examples, want >= 0.95 on 200", acc, sum.LastEval.Flat["all/count"])
	}
}
