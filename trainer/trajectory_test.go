package trainer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/enginetest"
	"github.com/tinyrecursive/trm/internal/safetensors"
)

// trajectoryDirs lists the shipped trajectory case and those named in
// TRM_TRAJECTORY_DIRS (colon-separated case folders or folders of them).
func trajectoryDirs(t *testing.T) []string {
	roots := []string{filepath.Join(enginetest.GoldenDir(), "trajectory_att_rope_small")}
	if env := os.Getenv("TRM_TRAJECTORY_DIRS"); env != "" {
		roots = append(roots, strings.Split(env, ":")...)
	}
	isCase := func(d string) bool { _, err := os.Stat(filepath.Join(d, "batches.safetensors")); return err == nil }
	var out []string
	for _, r := range roots {
		if r == "" {
			continue
		}
		if isCase(r) {
			out = append(out, r)
			continue
		}
		ents, err := os.ReadDir(r)
		if err != nil {
			t.Fatalf("trajectory folder %s: %v", r, err)
		}
		n := 0
		for _, e := range ents {
			if d := filepath.Join(r, e.Name()); e.IsDir() && isCase(d) {
				out = append(out, d)
				n++
			}
		}
		if n == 0 {
			t.Fatalf("trajectory folder %s holds no case (a folder with batches.safetensors)", r)
		}
	}
	return out
}

// trajectoryConfig reads a trajectory case's config.json: `model` with the
// engine keys and `train` with the training keys.
func trajectoryConfig(t *testing.T, dir string) (Config, int) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Model json.RawMessage            `json:"model"`
		Train map[string]json.RawMessage `json:"train"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	arch, err := engine.ParseConfig(doc.Model, dir+"/config.json model")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Arch = arch
	cfg.EMA = true
	total := 0
	keys := make([]string, 0, len(doc.Train))
	for k := range doc.Train {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.Trim(string(doc.Train[k]), `"`)
		if k == "total_steps" {
			fmt.Sscan(v, &total)
			continue
		}
		if err := cfg.Set(k + "=" + v); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Epochs, cfg.EvalInterval = 1, 1
	return cfg, total
}

func tensor(t *testing.T, f *safetensors.File, key string) []float64 {
	t.Helper()
	tt, ok := f.Tensors[key]
	if !ok {
		t.Fatalf("no key %s", key)
	}
	v, err := tt.Float64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func ints(v []float64) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

func floats(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestTrajectory reproduces the reference's training loop over given
// batches: losses, metrics, halting and learning rates per step, the final
// weights, puzzle table and EMA shadow, and evaluation with EMA weights.
func TestTrajectory(t *testing.T) {
	for _, dir := range trajectoryDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg, total := trajectoryConfig(t, dir)
			params, err := engine.LoadState(filepath.Join(dir, "weights.safetensors"), engine.NewLayout(cfg.Arch))
			if err != nil {
				t.Fatal(err)
			}
			batches, err := safetensors.ReadFile(filepath.Join(dir, "batches.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := safetensors.ReadFile(filepath.Join(dir, "expected.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			tr, err := New(cfg, cpu.New(0), params, total, 1)
			if err != nil {
				t.Fatal(err)
			}
			// Losses and parameters drift apart slowly as float32 rounding
			// compounds through six optimizer steps.
			tol := enginetest.ThreeSteps
			for k := 1; ; k++ {
				pre := fmt.Sprintf("step%d.", k)
				if _, ok := batches.Tensors[pre+"inputs"]; !ok {
					if k == 1 {
						t.Fatal("no batches")
					}
					break
				}
				rep, err := tr.TrainBatch(ints(tensor(t, batches, pre+"inputs")), ints(tensor(t, batches, pre+"labels")), ints(tensor(t, batches, pre+"puzzle_identifiers")))
				if err != nil {
					t.Fatal(err)
				}
				m := rep.Metrics
				tol.Check(t, pre+"loss", []float64{m.Loss}, tensor(t, want, pre+"loss"))
				enginetest.Exact.Check(t, pre+"halted", floats(i2f(rep.Result.Halted)), tensor(t, want, pre+"halted"))
				enginetest.Exact.Check(t, pre+"steps", floats(i2f(rep.Result.Steps)), tensor(t, want, pre+"steps"))
				for _, mk := range []struct {
					k string
					v float64
				}{{"count", m.Count}, {"exact_accuracy", m.ExactAccuracy}, {"q_halt_accuracy", m.QHaltAccuracy}, {"steps", m.Steps}} {
					enginetest.Exact.Check(t, pre+"metrics."+mk.k, []float64{mk.v}, tensor(t, want, pre+"metrics."+mk.k))
				}
				tol.Check(t, pre+"metrics.accuracy", []float64{m.Accuracy}, tensor(t, want, pre+"metrics.accuracy"))
				tol.Check(t, pre+"metrics.lm_loss", []float64{m.LMLoss}, tensor(t, want, pre+"metrics.lm_loss"))
				tol.Check(t, pre+"metrics.q_halt_loss", []float64{m.QHaltLoss}, tensor(t, want, pre+"metrics.q_halt_loss"))
				enginetest.OneStep.Check(t, pre+"lr.model", []float64{rep.Info.LR}, tensor(t, want, pre+"lr.model"))
				enginetest.OneStep.Check(t, pre+"lr.puzzle_emb", []float64{rep.Info.PuzzleLR}, tensor(t, want, pre+"lr.puzzle_emb"))
			}
			final, err := tr.Model.Params()
			if err != nil {
				t.Fatal(err)
			}
			ema, err := tr.Optim.EMAParams()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range final.Layout.Entries {
				switch e.Kind {
				case engine.Trained:
					tol.Check(t, "final."+e.Key, floats(final.View(e.Key)), tensor(t, want, "final."+e.Key))
					tol.Check(t, "final.ema."+e.Key, floats(ema.View(e.Key)), tensor(t, want, "final.ema."+e.Key))
				case engine.PuzzleEmb:
					tol.Check(t, "final."+e.Key, floats(final.View(e.Key)), tensor(t, want, "final."+e.Key))
				}
			}
			// Evaluation with the EMA weights from a fresh carry on the step-1 batch.
			ev, err := engine.NewModel(tr.Model.Config(), cpu.New(0), engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := ev.SetParams(ema); err != nil {
				t.Fatal(err)
			}
			if err := ev.SetBatch(ints(tensor(t, batches, "step1.inputs")), ints(tensor(t, batches, "step1.labels")), ints(tensor(t, batches, "step1.puzzle_identifiers"))); err != nil {
				t.Fatal(err)
			}
			c := ev.NewCarry()
			for k := 1; k <= 3; k++ {
				if err := ev.Step(c, engine.StepOptions{}); err != nil {
					t.Fatal(err)
				}
				r, err := ev.Result(c, true)
				if err != nil {
					t.Fatal(err)
				}
				pre := fmt.Sprintf("eval.step%d.", k)
				tol.Check(t, pre+"logits", floats(r.Logits), tensor(t, want, pre+"logits"))
				tol.Check(t, pre+"q_halt_logits", floats(r.QHalt), tensor(t, want, pre+"q_halt_logits"))
			}
		})
	}
}

func i2f(v []int32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
