package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/trainer"
)

// TestTrainLogFormatJSON: with --log-format json every stderr line of a
// run is one JSON object, with the start, progress, evaluation,
// checkpoint and end records and their figures as numbers.
func TestTrainLogFormatJSON(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoSudoku(data, 32, 8, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd("train", "--log-format", "json", "--out", filepath.Join(dir, "run"), "data_paths=["+data+"]", "evaluators=[]",
		"global_batch_size=16", "epochs=2", "eval_interval=1", "checkpoint_every_eval=true", "arch.hidden_size=16", "arch.num_heads=2",
		"arch.puzzle_emb_ndim=16", "arch.H_cycles=1", "arch.L_cycles=1", "arch.halt_max_steps=2")
	if code != 0 || !strings.Contains(stdout, "done: 4 steps") {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	recs := map[string][]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("stderr line is not JSON: %q (%v)", l, err)
		}
		if r["time"] == nil || r["level"] == nil {
			t.Errorf("record without time or level: %q", l)
		}
		msg, _ := r["msg"].(string)
		recs[msg] = append(recs[msg], r)
	}
	one := func(msg string) map[string]any {
		if len(recs[msg]) == 0 {
			t.Fatalf("no %q record in:\n%s", msg, stderr)
		}
		return recs[msg][len(recs[msg])-1]
	}
	if w := one("config warning"); w["level"] != "WARN" || !strings.Contains(w["warning"].(string), "evaluators") {
		t.Errorf("config warning: %v", w)
	}
	if s := one("start"); s["total_steps"] != float64(4) || s["global_batch_size"] != float64(16) || s["params"].(float64) <= 0 {
		t.Errorf("start: %v", s)
	}
	if p := one("progress"); p["step"] != float64(4) || p["loss"].(float64) <= 0 || p["epoch"] != float64(2) {
		t.Errorf("last progress: %v", p)
	}
	if e := one("evaluation"); e["step"] != float64(4) {
		t.Errorf("evaluation: %v", e)
	} else if m, _ := e["metrics"].(map[string]any); m["all/count"] != float64(8) {
		t.Errorf("evaluation metrics: %v", m)
	}
	if len(recs["evaluation"]) != 2 || len(recs["checkpoint"]) != 2 {
		t.Errorf("%d evaluations and %d checkpoints, want 2 of each", len(recs["evaluation"]), len(recs["checkpoint"]))
	}
	if c := one("checkpoint"); c["step"] != float64(4) || !strings.Contains(c["dir"].(string), "run") {
		t.Errorf("checkpoint: %v", c)
	}
	if e := one("end"); e["level"] != "INFO" || e["step"] != float64(4) || e["error"] != nil {
		t.Errorf("end: %v", e)
	}

	if code, _, stderr := runCmd("train", "--log-format", "xml", "data_paths=["+data+"]"); code != 2 || !strings.Contains(stderr, `--log-format "xml"`) {
		t.Errorf("--log-format xml: exit %d, %s", code, stderr)
	}
}
