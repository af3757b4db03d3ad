package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalWholeTestSet: eval scores every test example by default (not
// the checkpoint's eval_max_batches, which bounded training's
// evaluations), --max-batches and eval_max_batches= limit it, the
// coverage is printed, --json prints one object, and on the CPU the batch
// is at most the test set's size.
func TestEvalWholeTestSet(t *testing.T) {
	dir := t.TempDir()
	sud := filepath.Join(dir, "sudoku4")
	if code, o, e := runCmd("data", "sudoku", "--out", sud, "--size", "4", "--generate", "16", "--generate-test", "20", "--quiet"); code != 0 {
		t.Fatalf("%d %s %s", code, o, e)
	}
	// Trained with global_batch_size=16 and eval_max_batches=1.
	ck := tinyCheckpoint(t, sud, filepath.Join(dir, "run"))

	code, out, errs := runCmd("eval", "--checkpoint", ck)
	if code != 0 {
		t.Fatalf("eval: exit %d\n%s", code, errs)
	}
	if !strings.HasPrefix(out, "20 of 20 examples evaluated\n") || !strings.Contains(out, "all/count                    20.0000") {
		t.Errorf("eval did not cover the test set:\n%s", out)
	}
	for _, args := range [][]string{{"--max-batches", "1"}, {"eval_max_batches=1"}} {
		code, out, errs = runCmd(append([]string{"eval", "--checkpoint", ck}, args...)...)
		if code != 0 || !strings.HasPrefix(out, "16 of 20 examples evaluated\n") {
			t.Errorf("eval %v: exit %d\n%s\n%s", args, code, out, errs)
		}
	}

	code, out, errs = runCmd("eval", "--checkpoint", ck, "--json")
	if code != 0 {
		t.Fatalf("eval --json: exit %d\n%s", code, errs)
	}
	var j struct {
		Metrics           map[string]*float64 `json:"metrics"`
		ExamplesEvaluated int                 `json:"examples_evaluated"`
		Examples          int                 `json:"examples"`
		Sets              map[string]struct {
			ExamplesEvaluated int `json:"examples_evaluated"`
			Curve             struct {
				Accuracy []float64 `json:"accuracy"`
			} `json:"curve"`
		} `json:"sets"`
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("eval --json printed more than one line:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, out)
	}
	if j.ExamplesEvaluated != 20 || j.Examples != 20 || j.Metrics["all/count"] == nil || *j.Metrics["all/count"] != 20 ||
		j.Metrics["all/exact_accuracy"] == nil || len(j.Sets["all"].Curve.Accuracy) != 3 {
		t.Errorf("eval --json: %+v\n%s", j, out)
	}

	// An architecture override reads the checkpoint's weights as the
	// overridden model: five supervision steps instead of the run's three.
	code, out, errs = runCmd("eval", "--checkpoint", ck, "--json", "arch.halt_max_steps=5")
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || len(j.Sets["all"].Curve.Accuracy) != 5 {
		t.Errorf("eval arch.halt_max_steps=5: exit %d, curve %v\n%s\n%s", code, j.Sets["all"].Curve.Accuracy, out, errs)
	}
	// One that changes the weights' shapes is refused naming the file.
	if code, _, errs = runCmd("eval", "--checkpoint", ck, "arch.hidden_size=32"); code != 1 || !strings.Contains(errs, "model.safetensors") {
		t.Errorf("eval arch.hidden_size=32 of a 16-wide checkpoint: exit %d\n%s", code, errs)
	}

	// A test set of 5 on the CPU: one batch of 5, not of the training's 16.
	small := filepath.Join(dir, "sudoku4-small")
	if code, o, e := runCmd("data", "sudoku", "--out", small, "--size", "4", "--generate", "4", "--generate-test", "5", "--quiet"); code != 0 {
		t.Fatalf("%d %s %s", code, o, e)
	}
	code, _, errs = runCmd("eval", "--checkpoint", ck, "--data", small, "--dry-run")
	if code != 0 || !strings.Contains(errs, "5 examples, 1 batches of 5") {
		t.Errorf("eval --dry-run on 5 examples: exit %d\n%s", code, errs)
	}
	code, _, errs = runCmd("eval", "--checkpoint", ck, "--data", small, "--dry-run", "--batch", "8")
	if code != 0 || !strings.Contains(errs, "1 batches of 8") {
		t.Errorf("eval --batch 8 --dry-run: exit %d\n%s", code, errs)
	}
	if code, _, _ := runCmd("eval", "--checkpoint", ck, "--max-batches", "-1"); code != 2 {
		t.Errorf("--max-batches -1: exit %d", code)
	}
}
