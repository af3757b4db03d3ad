package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tinyrecursive/trm/engine"
)

// extendData builds the small Sudoku set the extension tests train on.
func extendData(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	if err := BuildDemoSudoku(data, 64, 16, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	return data
}

// extendReference builds the data and runs extendConfig's whole budget
// uninterrupted: the losses a stopped and extended run must reproduce.
func extendReference(t *testing.T) (string, *recorder) {
	t.Helper()
	data := extendData(t)
	full := &recorder{}
	if _, err := Run(context.Background(), extendConfig(t, data), quiet(RunOptions{Hooks: []Hook{full}})); err != nil {
		t.Fatal(err)
	}
	return data, full
}

// extendConfig is a run of 4 steps per epoch (64 puzzles, batch 16) with
// an evaluation and a checkpoint after every epoch, on a tiny model. The
// learning rate is constant (no warm-up, lr_min_ratio 1), so the schedule
// does not depend on the total steps and a run extended on resume can be
// compared bit for bit with a run given the larger budget from the start.
func extendConfig(t *testing.T, data string) Config {
	t.Helper()
	cfg := DemoConfig()
	a := &cfg.Arch
	a.HiddenSize, a.NumHeads, a.Expansion, a.PuzzleEmbNdim = 16, 2, 2, 16
	a.HCycles, a.LCycles, a.LLayers, a.HaltMaxSteps = 1, 1, 1, 2
	a.HaltExplorationProb = 0.5 // the exploration RNG crosses the resume
	cfg.DataPaths = []string{data}
	cfg.GlobalBatchSize = 16
	cfg.Epochs, cfg.EvalInterval = 2, 1
	cfg.LRWarmupSteps, cfg.LRMinRatio = 0, 1
	cfg.KeepCheckpoints = 100
	cfg.CheckpointDir = filepath.Join(t.TempDir(), "run")
	return cfg
}

// TestResumeExtendsBudget: a run that ended because it reached its total
// steps, resumed with a larger max_steps or epochs, trains exactly up to
// the new total, whether the old limit fell inside a pass, at its last
// batch or at the end of the run's last pass.
//
// The extended run is bit-exact with a run given the larger budget from
// the start when, as here, the learning-rate schedule does not depend on
// the total: the data order, the exploration draws and the optimizer state
// continue unchanged across the resume. With a warm-up or a cosine decay
// the schedule is recomputed from the resume step on over the new total
// (the resume's note says the run is no longer bit-exact), so the
// extended run then differs from one started with the larger budget.
func TestResumeExtendsBudget(t *testing.T) {
	data := extendData(t)
	// The reference: 3 epochs, 12 steps, a checkpoint after each epoch.
	ref := extendConfig(t, data)
	ref.Epochs = 3
	full := &recorder{}
	sum, err := Run(context.Background(), ref, quiet(RunOptions{Hooks: []Hook{full}}))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Steps != 12 || len(full.losses) != 12 {
		t.Fatalf("reference run: %d steps, %d losses", sum.Steps, len(full.losses))
	}
	weightsAt := func(cfg Config, dir string) *engine.Params {
		t.Helper()
		meta, err := LoadMeta(dir)
		if err != nil {
			t.Fatal(err)
		}
		p, err := engine.LoadState(filepath.Join(dir, ModelFile), engine.NewLayout(meta.Config.Arch))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	for _, row := range []struct {
		first, resume []string // overrides of the first run and of the resume
		firstSteps    int
		want          int
	}{
		{[]string{"max_steps=3"}, []string{"max_steps=8"}, 3, 8}, // the limit inside a pass
		{[]string{"max_steps=4"}, []string{"max_steps=8"}, 4, 8}, // at a pass's last batch
		{[]string{"epochs=1"}, []string{"epochs=2"}, 4, 8},       // at the end of the run's only pass
		{nil, []string{"epochs=3"}, 8, 12},                       // at the end of the run's last pass
	} {
		t.Run(fmt.Sprint(row.first, "->", row.resume), func(t *testing.T) {
			cfg := extendConfig(t, data)
			if err := cfg.SetAll(row.first); err != nil {
				t.Fatal(err)
			}
			first := &recorder{}
			sum1, err := Run(context.Background(), cfg, quiet(RunOptions{Hooks: []Hook{first}}))
			if err != nil {
				t.Fatal(err)
			}
			if sum1.Steps != row.firstSteps || sum1.Interrupted {
				t.Fatalf("first run: %+v", sum1)
			}
			second := &recorder{}
			sum2, err := Run(context.Background(), Config{}, quiet(RunOptions{Hooks: []Hook{second}, Resume: cfg.CheckpointDir, ResumeOverrides: row.resume}))
			if err != nil {
				t.Fatal(err)
			}
			if sum2.Steps != row.want || len(second.steps) != row.want-row.firstSteps || second.steps[0] != row.firstSteps+1 {
				t.Fatalf("resumed run: ended at step %d, trained steps %v; want %d..%d", sum2.Steps, second.steps, row.firstSteps+1, row.want)
			}
			// The evaluation at the end of every pass the resume finished.
			if n := len(second.evals); n != row.want/4-row.firstSteps/4 {
				t.Errorf("resumed run evaluated %d times, want %d", n, row.want/4-row.firstSteps/4)
			}
			got := append(append([]float64{}, first.losses...), second.losses...)
			if !slices.Equal(got, full.losses[:row.want]) {
				t.Fatalf("losses differ from the run given the budget from the start:\n got  %v\n want %v", got, full.losses[:row.want])
			}
			gotP := weightsAt(cfg, sum2.Checkpoint)
			wantP := weightsAt(ref, filepath.Join(ref.CheckpointDir, StepDirName(row.want)))
			if !slices.Equal(gotP.Trained, wantP.Trained) || !slices.Equal(gotP.Puzzle, wantP.Puzzle) {
				t.Fatal("final weights differ from the run given the budget from the start")
			}
			// Resumed again with the same budget: nothing left to train.
			sum3, err := Run(context.Background(), Config{}, quiet(RunOptions{Resume: cfg.CheckpointDir}))
			if err != nil || sum3.Steps != row.want {
				t.Fatalf("resumed at the end: %+v, %v", sum3, err)
			}
		})
	}
}

// TestResumeExtendsAfterInterruptedEvaluation: a run whose step limit fell
// inside a pass and whose evaluation was then interrupted records that
// pass as trained with its evaluation pending. Resumed with the same
// budget it evaluates and trains nothing; resumed with a larger one it
// trains the rest of the pass (whose end evaluates) and the passes after,
// bit-exact with a run given the larger budget from the start.
func TestResumeExtendsAfterInterruptedEvaluation(t *testing.T) {
	data, full := extendReference(t)
	cfg := extendConfig(t, data)
	cfg.TotalStepsLimit = 3
	// 3 training steps ask once each; the 5th ask is the evaluation's
	// second supervision step.
	first := &recorder{}
	sum, err := Run(&countingCtx{Context: context.Background(), at: 5}, cfg, quiet(RunOptions{Hooks: []Hook{first}}))
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.Steps != 3 || len(first.evals) != 0 {
		t.Fatalf("interrupted evaluation: %+v, %d evaluations", sum, len(first.evals))
	}
	m, err := LoadMeta(sum.Checkpoint)
	if err != nil || !m.PassDone || m.Pass != 0 || m.Data.PassBatches != 3 {
		t.Fatalf("checkpoint: pass %d pass_done %v, %d batches of the pass drawn (%v)", m.Pass, m.PassDone, m.Data.PassBatches, err)
	}
	same := filepath.Join(t.TempDir(), "same")
	copyDir(t, cfg.CheckpointDir, same)

	second := &recorder{}
	sum2, err := Run(context.Background(), Config{}, quiet(RunOptions{Hooks: []Hook{second}, Resume: cfg.CheckpointDir, ResumeOverrides: []string{"max_steps=8"}}))
	if err != nil {
		t.Fatal(err)
	}
	if sum2.Steps != 8 || len(second.evals) != 2 || second.evals[0].Step != 4 {
		t.Fatalf("resumed with max_steps=8: %d steps, %d evaluations", sum2.Steps, len(second.evals))
	}
	if got := append(first.losses, second.losses...); !slices.Equal(got, full.losses) {
		t.Fatalf("losses differ from the run given the budget from the start:\n got  %v\n want %v", got, full.losses)
	}

	third := &recorder{}
	sum3, err := Run(context.Background(), Config{}, quiet(RunOptions{Hooks: []Hook{third}, Resume: same, Out: same}))
	if err != nil {
		t.Fatal(err)
	}
	if sum3.Steps != 3 || len(third.steps) != 0 || len(third.evals) != 1 || third.evals[0].Step != 3 {
		t.Fatalf("resumed with the same budget: %d steps, trained %v, %d evaluations", sum3.Steps, third.steps, len(third.evals))
	}
}

// TestResumeExtendsVersion1: a checkpoint of the previous trainer.json
// format, which counted a pass the step limit cut short as completed, is
// read with its pass corrected, so the resume trains to the new total.
func TestResumeExtendsVersion1(t *testing.T) {
	data, full := extendReference(t)
	cfg := extendConfig(t, data)
	cfg.TotalStepsLimit = 3
	first := &recorder{}
	sum, err := Run(context.Background(), cfg, quiet(RunOptions{Hooks: []Hook{first}}))
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadMeta(sum.Checkpoint)
	if err != nil || m.Version != MetaVersion || m.Pass != 0 || m.PassDone {
		t.Fatalf("checkpoint at the step limit: version %d, pass %d, pass_done %v (%v)", m.Version, m.Pass, m.PassDone, err)
	}
	// What version 1 wrote for the same state.
	m.Version, m.Pass = 1, 1
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sum.Checkpoint, MetaFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	rewriteManifest(t, sum.Checkpoint)
	if m, err = LoadMeta(sum.Checkpoint); err != nil || m.Pass != 0 {
		t.Fatalf("version 1 read back: pass %d (%v)", m.Pass, err)
	}
	second := &recorder{}
	sum2, err := Run(context.Background(), Config{}, quiet(RunOptions{Hooks: []Hook{second}, Resume: cfg.CheckpointDir, ResumeOverrides: []string{"max_steps=8"}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first.losses, second.losses...); sum2.Steps != 8 || !slices.Equal(got, full.losses) {
		t.Fatalf("resumed version 1 checkpoint: %d steps, losses\n got  %v\n want %v", sum2.Steps, got, full.losses)
	}
}
