package promhook

import (
	"context"
	"path/filepath"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/trainer"
)

// TestRealRun attaches the exporter to a real trainer.Run on a small
// Sudoku set and checks that the families agree with the run: every
// example counted once per step, data wait observed per step, one
// evaluation and one checkpoint per pass.
func TestRealRun(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoSudoku(data, 64, 16, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	cfg := trainer.DefaultConfig()
	for _, kv := range []string{"data_paths=[" + data + "]", "global_batch_size=16", "epochs=2", "eval_interval=1", "checkpoint_every_eval=true",
		"arch.hidden_size=32", "arch.num_heads=2", "arch.puzzle_emb_ndim=32", "arch.H_cycles=1", "arch.L_cycles=1", "arch.halt_max_steps=3",
		"lr=1e-3", "lr_warmup_steps=2", "checkpoint_dir=" + filepath.Join(dir, "ckpt")} {
		if err := cfg.Set(kv); err != nil {
			t.Fatal(err)
		}
	}
	e := New(Options{Run: "real", NVMLLibrary: "off"})
	sum, err := trainer.Run(context.Background(), cfg, trainer.RunOptions{Backend: cpu.New(1), Hooks: []trainer.Hook{e}})
	if err != nil {
		t.Fatal(err)
	}
	steps := float64(sum.Steps)
	if steps != 8 {
		t.Fatalf("ran %v steps, want 8", steps)
	}
	mfs, err := e.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	fam := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		fam[mf.GetName()] = mf
	}
	value := func(name string) float64 {
		mf := fam[name]
		if mf == nil || len(mf.GetMetric()) != 1 {
			t.Fatalf("%s: want one series, got %v", name, mf)
		}
		m := mf.GetMetric()[0]
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		}
		t.Fatalf("%s: not a gauge or counter", name)
		return 0
	}
	for name, want := range map[string]float64{
		"trm_train_step": 8, "trm_train_total_steps": 8, "trm_train_steps_total": 8, "trm_train_examples_total": 8 * 16,
		"trm_train_tokens_total": 8 * 16 * 16, "trm_train_epoch": 2, "trm_evals_total": 2, "trm_eval_step": 8,
		"trm_checkpoints_total": 2, "trm_checkpoint_last_step": 8, "trm_run_running": 0, "trm_run_failed": 0,
	} {
		if got := value(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// Every example ran exactly one supervision step per training step.
	var ran uint64
	for _, m := range fam["trm_train_lm_loss"].GetMetric() {
		ran += m.GetSummary().GetSampleCount()
		if s := m.GetSummary(); s.GetSampleCount() > 0 && !(s.GetSampleSum() > 0) {
			t.Errorf("lm loss sum %v over %d examples", s.GetSampleSum(), s.GetSampleCount())
		}
	}
	if ran != 8*16 {
		t.Errorf("lm loss counted %d examples, want 128", ran)
	}
	// With halt_max_steps 3 every example halts by step 3, so at least
	// the first batch's examples halted by the eighth step.
	if h := fam["trm_train_act_steps"].GetMetric()[0].GetHistogram(); h.GetSampleCount() < 16 || h.GetSampleSum() > 3*float64(h.GetSampleCount()) {
		t.Errorf("ACT steps histogram: %d halts summing to %v", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, m := range fam["trm_train_step_duration_seconds"].GetMetric() {
		if n := m.GetHistogram().GetSampleCount(); n != 8 {
			t.Errorf("step duration %v: %d observations, want 8", m.GetLabel(), n)
		}
	}
	if n := len(fam["trm_eval_curve_exact_accuracy_ratio"].GetMetric()); n != 3 {
		t.Errorf("eval curve has %d series, want one per supervision step (3)", n)
	}
	if got := fam["trm_eval_examples"].GetMetric()[0].GetGauge().GetValue(); got != 16 {
		t.Errorf("evaluated %v examples, want the 16 test puzzles", got)
	}
}
