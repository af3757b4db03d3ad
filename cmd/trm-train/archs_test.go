package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hrmTiny is the model of TestHRMCommands: an HRM of one H and one L layer
// at hidden size 16, small enough to train in a fraction of a second.
var hrmTiny = []string{"arch.hidden_size=16", "arch.num_heads=2", "arch.puzzle_emb_ndim=16", "arch.expansion=2",
	"arch.H_cycles=1", "arch.L_cycles=2", "arch.H_layers=1", "arch.L_layers=1", "arch.halt_max_steps=3"}

// TestHRMCommands trains an HRM through the command and runs every
// command that reads a model on its checkpoint: each must build the HRM's
// parameter table (inner.H_level.* beside inner.L_level.*), not a TRM's,
// and eval must score the checkpoint exactly as the trainer's own final
// evaluation did.
func TestHRMCommands(t *testing.T) {
	dir := t.TempDir()
	sud := filepath.Join(dir, "sudoku4")
	if code, o, e := runCmd("data", "sudoku", "--out", sud, "--size", "4", "--generate", "32", "--generate-test", "16", "--quiet"); code != 0 {
		t.Fatalf("%d %s %s", code, o, e)
	}
	out := filepath.Join(dir, "run")
	train := append([]string{"train", "--quiet", "--out", out, "data_paths=[" + sud + "]", "arch=hrm",
		"global_batch_size=16", "epochs=2", "eval_interval=2", "lr=1e-3", "lr_warmup_steps=1"}, hrmTiny...)
	code, stdout, stderr := runCmd(train...)
	if code != 0 || !strings.Contains(stdout, "done: 4 steps") {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	ck, err := os.ReadFile(filepath.Join(out, "step_000000004", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ck), "inner.H_level.layers.0.self_attn.qkv_proj.weight") {
		t.Fatal("the hrm run's checkpoint has no H_level weights")
	}

	// The trainer's final evaluation, from the run's log.
	log, err := os.ReadFile(filepath.Join(out, "run.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var final map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("run.jsonl: %v: %s", err, line)
		}
		if rec["type"] == "eval" {
			final = rec
		}
	}
	if final == nil || final["step"] != 4.0 {
		t.Fatalf("run.jsonl has no evaluation at step 4:\n%s", log)
	}
	sameMetrics := func(what, out string) {
		t.Helper()
		var j struct {
			Metrics map[string]float64 `json:"metrics"`
		}
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("%s --json: %v\n%s", what, err, out)
		}
		if len(j.Metrics) == 0 || j.Metrics["all/count"] != 16 {
			t.Fatalf("%s: metrics %v", what, j.Metrics)
		}
		for k, v := range j.Metrics {
			if final[k] != v {
				t.Errorf("%s: %s = %v, the trainer's final evaluation has %v", what, k, v, final[k])
			}
		}
	}
	code, stdout, stderr = runCmd("eval", "--checkpoint", out, "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d\n%s", code, stderr)
	}
	sameMetrics("eval --checkpoint", stdout)

	// The bare weights with an HRM preset as --model-config and the run's
	// sizes as overrides: the same model, the same numbers.
	weights := filepath.Join(out, "step_000000004", "model.safetensors")
	code, stdout, stderr = runCmd(append([]string{"eval", "--model", weights, "--model-config", "hrm-sudoku", "--data", sud, "--json"}, hrmTiny...)...)
	if code != 0 {
		t.Fatalf("eval --model-config hrm-sudoku: exit %d\n%s", code, stderr)
	}
	sameMetrics("eval --model --model-config hrm-sudoku", stdout)
	// The TRM preset does not hold these weights: the keys are named.
	code, _, stderr = runCmd(append([]string{"eval", "--model", weights, "--model-config", "sudoku-att", "--data", sud}, hrmTiny...)...)
	if code == 0 || !strings.Contains(stderr, "inner.H_level") {
		t.Fatalf("eval of HRM weights as a TRM: exit %d\n%s", code, stderr)
	}

	code, stdout, stderr = runCmd("solve", "--checkpoint", out, "1.3..2.......1.2")
	if code != 0 || !strings.Contains(stdout, "4x4 Sudoku, 3 supervision steps") || !strings.Contains(stdout, "answer after step 3: ") {
		t.Fatalf("solve: exit %d\n%s\n%s", code, stdout, stderr)
	}

	dry := append([]string{"train", "--dry-run", "--out", filepath.Join(dir, "run2"), "data_paths=[" + sud + "]", "arch=hrm",
		"global_batch_size=16", "epochs=2", "eval_interval=2"}, hrmTiny...)
	code, stdout, stderr = runCmd(dry...)
	if code != 0 || !strings.Contains(stdout, `"name": "hrm"`) || !strings.Contains(stderr, "dry run: 4 total steps") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestParamsHRM: params lists an HRM preset's two networks and its count,
// and reads the architecture of a model config.json from its name key.
func TestParamsHRM(t *testing.T) {
	code, out, errs := runCmd("params", "hrm-sudoku")
	if code != 0 {
		t.Fatalf("params hrm-sudoku: exit %d: %s", code, errs)
	}
	for _, k := range []string{"inner.H_level.layers.3.mlp.down_proj.weight", "inner.L_level.layers.3.mlp.down_proj.weight",
		"inner.H_init", "inner.L_init", "trained parameters (AdamATan2): 27,275,266", "buffers (init states):          1,024"} {
		if !strings.Contains(out, k) {
			t.Errorf("params hrm-sudoku lacks %q:\n%s", k, out)
		}
	}
	gold := filepath.Join("..", "..", "testdata", "golden", "hrm_small", "config.json")
	if code, out, errs = runCmd("params", gold); code != 0 || !strings.Contains(out, "inner.H_level.layers.1.") {
		t.Fatalf("params %s: exit %d\n%s\n%s", gold, code, out, errs)
	}
}

// TestImportChecksHRM: import --model-config checks a .pt against the
// architecture the config names: a TRM's weights lack the HRM's H_level.
func TestImportChecksHRM(t *testing.T) {
	gold := filepath.Join("..", "..", "testdata", "golden")
	out := filepath.Join(t.TempDir(), "m.safetensors")
	code, _, stderr := runCmd("import", "--model-config", filepath.Join(gold, "hrm_small", "config.json"),
		filepath.Join(gold, "torch", "att_rope_small.compiled.pt"), out)
	if code != 1 || !strings.Contains(stderr, "missing key inner.H_level.layers.0.self_attn.qkv_proj.weight") {
		t.Fatalf("import of a TRM .pt against an HRM config: exit %d, %s", code, stderr)
	}
}

// TestParamsGoldenCounts: params on each golden case's model config (one
// per architecture) prints the reference's num_parameters from the case's
// meta.json and the architecture's init buffers: one per carried state.
func TestParamsGoldenCounts(t *testing.T) {
	gold := filepath.Join("..", "..", "testdata", "golden")
	for name, inits := range map[string]int{"att_rope_small": 2, "hrm_small": 2, "trm_singlez_small": 1, "trm_hier6_small": 7, "transformers_baseline_small": 1} {
		b, err := os.ReadFile(filepath.Join(gold, name, "meta.json"))
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			NumParameters int `json:"num_parameters"`
		}
		if err := json.Unmarshal(b, &meta); err != nil || meta.NumParameters == 0 {
			t.Fatalf("%s/meta.json: no num_parameters (%v)", name, err)
		}
		code, out, errs := runCmd("params", filepath.Join(gold, name, "config.json"))
		if code != 0 {
			t.Fatalf("params %s: exit %d: %s", name, code, errs)
		}
		if want := "trained parameters (AdamATan2): " + group(meta.NumParameters); !strings.Contains(out, want) {
			t.Errorf("params %s lacks %q:\n%s", name, want, out)
		}
		n := 0
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasSuffix(f[0], "_init") {
				n++
			}
		}
		if n != inits {
			t.Errorf("params %s lists %d init buffers, want %d:\n%s", name, n, inits, out)
		}
	}
}

// TestOtherArchCommands: the single-latent, six-latent and plain
// transformer architectures train through the command, and eval and solve
// read their checkpoints: eval's numbers are the trainer's final
// evaluation's.
func TestOtherArchCommands(t *testing.T) {
	dir := t.TempDir()
	sud := filepath.Join(dir, "sudoku4")
	if code, o, e := runCmd("data", "sudoku", "--out", sud, "--size", "4", "--generate", "16", "--generate-test", "16", "--quiet"); code != 0 {
		t.Fatalf("%d %s %s", code, o, e)
	}
	for _, arch := range []string{"trm_singlez", "trm_hier6", "transformers_baseline"} {
		out := filepath.Join(dir, arch)
		train := append([]string{"train", "--quiet", "--out", out, "data_paths=[" + sud + "]", "arch=" + arch,
			"global_batch_size=16", "epochs=2", "eval_interval=2", "lr=1e-3", "lr_warmup_steps=1"}, hrmTiny...)
		code, stdout, stderr := runCmd(train...)
		if code != 0 || !strings.Contains(stdout, "done: 2 steps") {
			t.Fatalf("%s: train: exit %d\n%s\n%s", arch, code, stdout, stderr)
		}
		log, err := os.ReadFile(filepath.Join(out, "run.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		var final map[string]any
		for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["type"] == "eval" {
				final = rec
			}
		}
		code, stdout, stderr = runCmd("eval", "--checkpoint", out, "--json")
		var j struct {
			Metrics map[string]float64 `json:"metrics"`
		}
		if code != 0 || json.Unmarshal([]byte(stdout), &j) != nil || final == nil || j.Metrics["all/count"] != 16 {
			t.Fatalf("%s: eval: exit %d, final evaluation %v\n%s\n%s", arch, code, final, stdout, stderr)
		}
		for k, v := range j.Metrics {
			if final[k] != v {
				t.Errorf("%s: eval %s = %v, the trainer's final evaluation has %v", arch, k, v, final[k])
			}
		}
		code, stdout, stderr = runCmd("solve", "--checkpoint", out, "1.3..2.......1.2")
		if code != 0 || !strings.Contains(stdout, "answer after step 3: ") {
			t.Fatalf("%s: solve: exit %d\n%s\n%s", arch, code, stdout, stderr)
		}
	}
}
