package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/trainer"
)

// TestKeysCommand: every key Set accepts is listed with its default,
// unit, limit and meaning, and every preset with its description, in the
// table and in --json.
func TestKeysCommand(t *testing.T) {
	code, out, stderr := runCmd("keys")
	if code != 0 {
		t.Fatalf("keys: exit %d: %s", code, stderr)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	for _, k := range trainer.Keys() {
		if _, ok := lines[k]; !ok {
			t.Errorf("key %s not listed", k)
		}
	}
	for k, want := range map[string][]string{
		"arch.hidden_size":            {"512", "8192", "width of the network"},
		"global_batch_size":           {"examples", "summed over all replicas"},
		"evaluators":                  {"no effect"},
		"arch.puzzle_emb_ndim":        {"${.hidden_size}", "follows hidden_size"},
		"lr_warmup_steps":             {"steps"},
		"checkpoint_path":             {"checkpoint_dir"},
		"arch.num_puzzle_identifiers": {"set from the dataset"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[k], w) {
				t.Errorf("line of %s lacks %q: %q", k, w, lines[k])
			}
		}
	}
	for _, p := range trainer.Presets() {
		if l := lines[p.Name]; !strings.Contains(l, p.Description) {
			t.Errorf("preset %s: line %q lacks its description %q", p.Name, l, p.Description)
		}
	}

	code, out, stderr = runCmd("keys", "--json")
	if code != 0 {
		t.Fatalf("keys --json: exit %d: %s", code, stderr)
	}
	var got struct {
		Keys    []struct{ Key, Default, Unit, Max, Meaning string }
		Presets []struct{ Name, Description string }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("keys --json: %v\n%s", err, out)
	}
	docs := trainer.KeyDocs()
	if len(got.Keys) != len(docs) || len(got.Presets) != len(trainer.Presets()) {
		t.Fatalf("keys --json: %d keys, %d presets; want %d, %d", len(got.Keys), len(got.Presets), len(docs), len(trainer.Presets()))
	}
	for i, d := range docs {
		g := got.Keys[i]
		if g.Key != d.Key || g.Default != d.Default || g.Unit != d.Unit || g.Max != d.Max || g.Meaning != d.Meaning || g.Meaning == "" {
			t.Errorf("keys --json entry %d: %+v, want %+v", i, g, d)
		}
	}
	if code, _, stderr := runCmd("keys", "extra"); code != 2 || !strings.Contains(stderr, "unexpected arguments") {
		t.Errorf("keys extra: exit %d, %s", code, stderr)
	}
}

// TestOverrideTypoAndWarnings: a mistyped key is a usage error (exit 2)
// that names the nearest key; a reference key without effect is accepted
// with one warning however often it is given; the reference's hydra forms
// resolve as SetAll resolves them.
func TestOverrideTypoAndWarnings(t *testing.T) {
	for _, kv := range []string{"arch.hiden_size=64", "global_bach_size=8"} {
		code, _, stderr := runCmd("train", "--dry-run", kv, "data_paths=[x]")
		want := strings.Replace(strings.Replace(strings.Split(kv, "=")[0], "hiden", "hidden", 1), "bach", "batch", 1)
		if code != 2 || !strings.Contains(stderr, "did you mean "+want) {
			t.Errorf("%s: exit %d, %s; want 2 and a suggestion of %s", kv, code, stderr, want)
		}
	}

	data := filepath.Join(t.TempDir(), "sudoku4")
	if err := trainer.BuildDemoSudoku(data, 32, 8, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd("train", "--dry-run", "data_paths=["+data+"]", "evaluators=[]", "arch.L_cycles=4", "arch=trm",
		"+run_name=x", "evaluators=[]", "hydra.run.dir=out", "checkpoint_path="+filepath.Join(t.TempDir(), "ck"))
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, stderr)
	}
	if n := strings.Count(stderr, "warning: "); n != 2 || strings.Count(stderr, "evaluators") != 1 || !strings.Contains(stderr, "hydra") {
		t.Errorf("want one warning for evaluators and one for hydra, got %d:\n%s", n, stderr)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(stdout), &cfg); err != nil {
		t.Fatalf("dry-run JSON: %v\n%s", err, stdout)
	}
	arch, _ := cfg["arch"].(map[string]any)
	if arch["L_cycles"] != float64(4) || cfg["run_name"] != "x" || !strings.HasSuffix(cfg["checkpoint_dir"].(string), "ck") {
		t.Errorf("arch.L_cycles=4 before arch=trm must survive it, run_name x, checkpoint_dir ck: %s", stdout)
	}
}
