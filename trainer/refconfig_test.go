package trainer

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

const refDir = "../testdata/refconfig"

// tinyOverrides turn the sudoku-att preset into the model of
// testdata/refconfig/config/arch/trm_tiny.yaml.
var tinyOverrides = []string{
	"arch.hidden_size=32", "arch.num_heads=2", "arch.expansion=2", "arch.H_cycles=2", "arch.L_cycles=2",
	"arch.L_layers=1", "arch.puzzle_emb_len=2", "arch.halt_max_steps=4", "arch.halt_exploration_prob=0.5",
	"arch.forward_dtype=bfloat16",
}

// trainingOverrides are the training keys of all_config.yaml and
// cfg_tiny.yaml that differ from the sudoku-att recipe.
var trainingOverrides = []string{"global_batch_size=16", "epochs=4", "eval_interval=2", "data_paths=[data/sudoku-tiny]"}

func presetPlus(t *testing.T, preset string, kvs ...[]string) Config {
	t.Helper()
	c, err := FromPreset(preset)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range kvs {
		for _, kv := range l {
			if err := c.Set(kv); err != nil {
				t.Fatalf("%s: %v", kv, err)
			}
		}
	}
	return c
}

// sameConfig fails unless a and b are deep-equal in every key (the
// resolution state aside), with the differing keys named.
func sameConfig(t *testing.T, what string, got, want Config) {
	t.Helper()
	if d := want.Diff(got); len(d) > 0 {
		t.Fatalf("%s differs from the preset plus overrides:\n  %s", what, strings.Join(d, "\n  "))
	}
	got.res, want.res = resolution{}, resolution{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: not deep-equal\n got  %+v\n want %+v", what, got, want)
	}
}

// lossHook records every step's loss.
type lossHook struct {
	NopHook
	losses []float64
}

func (h *lossHook) OnStep(s *StepReport) { h.losses = append(h.losses, s.Metrics.Loss) }

// refOneStep trains cfg for one step on data and returns its loss.
func refOneStep(t *testing.T, cfg Config, data string) float64 {
	t.Helper()
	cfg.DataPaths, cfg.DataPathsTest = []string{data}, nil
	cfg.TotalStepsLimit, cfg.CheckpointDir = 1, ""
	h := &lossHook{}
	if _, err := Run(context.Background(), cfg, RunOptions{Backend: cpu.New(1), Hooks: []Hook{h}}); err != nil {
		t.Fatal(err)
	}
	if len(h.losses) != 1 || math.IsNaN(h.losses[0]) || h.losses[0] == 0 {
		t.Fatalf("losses %v, want one finite non-zero loss", h.losses)
	}
	return h.losses[0]
}

// TestReferenceFilesMatchPreset: an architecture file in the reference's
// config/arch format, a run's all_config.yaml and a cfg_pretrain-style
// file with a hydra defaults list each resolve to the sudoku-att preset
// plus overrides, deep-equal, and one training step from each gives the
// same loss bit for bit.
func TestReferenceFilesMatchPreset(t *testing.T) {
	// The architecture file replaces the model keys of whatever came before.
	fromArch, err := FromPreset("sudoku-att")
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadConfigFile(&fromArch, filepath.Join(refDir, "config/arch/trm_tiny.yaml")); err != nil {
		t.Fatal(err)
	}
	wantArch := presetPlus(t, "sudoku-att", tinyOverrides)
	sameConfig(t, "config/arch/trm_tiny.yaml", fromArch, wantArch)
	if fromArch.Arch.PuzzleEmbNdim != 32 {
		t.Fatalf("puzzle_emb_ndim %d, want hidden_size 32 (${.hidden_size})", fromArch.Arch.PuzzleEmbNdim)
	}

	// all_config.yaml over the defaults: every reference key is in it.
	fromAll := DefaultConfig()
	if err := LoadConfigFile(&fromAll, filepath.Join(refDir, "all_config.yaml")); err != nil {
		t.Fatal(err)
	}
	wantAll := presetPlus(t, "sudoku-att", tinyOverrides, trainingOverrides, []string{
		"checkpoint_path=checkpoints/Sudoku-tiny-ACT-torch/tiny_att", "+run_name=tiny_att", "project_name=Sudoku-tiny-ACT-torch",
		"arch.puzzle_emb_ndim=32"})
	sameConfig(t, "all_config.yaml", fromAll, wantAll)
	if w := fromAll.Warnings(); len(w) != 2 || !strings.HasPrefix(w[0], "eval_save_outputs: ") || !strings.HasPrefix(w[1], "evaluators: ") {
		t.Fatalf("warnings %q, want one for eval_save_outputs and one for evaluators", w)
	}

	// cfg_tiny.yaml: its defaults list loads arch/trm_tiny.yaml beside it.
	fromCfg := DefaultConfig()
	if err := LoadConfigFile(&fromCfg, filepath.Join(refDir, "config/cfg_tiny.yaml")); err != nil {
		t.Fatal(err)
	}
	wantCfg := presetPlus(t, "sudoku-att", tinyOverrides, trainingOverrides, []string{"checkpoint_every_eval=true"})
	sameConfig(t, "config/cfg_tiny.yaml", fromCfg, wantCfg)
	if w := fromCfg.Warnings(); len(w) != 2 || !strings.HasPrefix(w[0], "hydra: ") || !strings.HasPrefix(w[1], "evaluators: ") {
		t.Fatalf("warnings %q, want one for hydra and one for evaluators", w)
	}

	if testing.Short() {
		t.Skip("the training steps")
	}
	data := t.TempDir()
	if err := BuildDemoSudoku(data, 40, 8, 8, 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	want := refOneStep(t, wantAll, data)
	for name, c := range map[string]Config{"arch file": withTraining(t, fromArch), "all_config.yaml": fromAll, "cfg_tiny.yaml": fromCfg} {
		if got := refOneStep(t, c, data); math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("%s: loss %v, the preset plus overrides gives %v", name, got, want)
		}
	}
}

// withTraining gives an architecture-only config the training keys of
// all_config.yaml, so its step is comparable.
func withTraining(t *testing.T, c Config) Config {
	for _, kv := range trainingOverrides {
		if err := c.Set(kv); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestHydraOverrides: the reference's command-line forms.
func TestHydraOverrides(t *testing.T) {
	c, err := FromPreset("sudoku-mlp")
	if err != nil {
		t.Fatal(err)
	}
	c.Arch.SeqLen, c.Arch.VocabSize = 30, 5 // as a dataset would have set them
	for _, kv := range []string{"arch=trm", "+run_name=pretrain_att", "++project_name=P", "checkpoint_path=ck/x", "load_checkpoint=ref/step_1.pt",
		"evaluators=[]", "evaluators=[]", "eval_save_outputs=[inputs]", "hydra.run.dir=out", "ema=True", "data_paths=\"[data/a,data/b]\""} {
		if err := c.Set(kv); err != nil {
			t.Fatalf("%s: %v", kv, err)
		}
	}
	def := engine.DefaultConfig()
	if c.Arch.MLPT || c.Arch.PosEncodings != engine.PosRope || c.Arch.HCycles != def.HCycles || c.Arch.LCycles != def.LCycles {
		t.Fatalf("arch=trm did not reset the model keys: %+v", c.Arch)
	}
	if c.Arch.SeqLen != 30 || c.Arch.VocabSize != 5 {
		t.Fatalf("arch=trm dropped the dataset's sizes: seq_len %d, vocab_size %d", c.Arch.SeqLen, c.Arch.VocabSize)
	}
	if c.RunName != "pretrain_att" || c.ProjectName != "P" || c.CheckpointDir != "ck/x" || c.LoadCheckpoint != "ref/step_1.pt" || !c.EMA {
		t.Fatalf("names: %+v", c)
	}
	if !slices.Equal(c.DataPaths, []string{"data/a", "data/b"}) {
		t.Fatalf("data_paths %q", c.DataPaths)
	}
	w := c.Warnings()
	if len(w) != 3 || !strings.HasPrefix(w[0], "evaluators: ") || !strings.HasPrefix(w[1], "eval_save_outputs: ") || !strings.HasPrefix(w[2], "hydra: ") {
		t.Fatalf("warnings %q, want one each for evaluators, eval_save_outputs and hydra", w)
	}
	if err := c.Set("load_checkpoint=null"); err != nil || c.LoadCheckpoint != "" {
		t.Fatalf("load_checkpoint=null: %v %q", err, c.LoadCheckpoint)
	}
	if err := c.Set("eval_interval=null"); err != nil || c.EvalInterval != c.Epochs {
		t.Fatalf("eval_interval=null: %v, %d (epochs %d)", err, c.EvalInterval, c.Epochs)
	}

	errs := []struct{ kv, want string }{
		{"arch.act_enabled=maybe", "not true or false"},
		{"arch=gpt", "unknown architecture"},
		{"arch.hiden_size=64", `did you mean arch.hidden_size?`},
		{"hidden_size=64", `did you mean arch.hidden_size?`},
		{"lrr=1e-4", `did you mean lr?`},
		{"checkpoint_pth=x", `did you mean checkpoint_path?`},
		{"evaluator=[]", `did you mean evaluators?`},
		{"completely_unrelated_key=1", "valid keys: "},
		{"~lr", "deleting a key"},
		{"arch.loss.name=losses@Other", "not supported"},
		{"arch.name=recursive_reasoning.gpt@GPT", "unknown architecture"},
		{"epochs=1e300", "not an integer"},
		{"ema=maybe", "not true or false"},
		{"lr=null", "null is not a value"},
	}
	for _, e := range errs {
		c := DefaultConfig()
		err := c.Set(e.kv)
		if err == nil || !strings.Contains(err.Error(), e.want) {
			t.Errorf("%s: error %v, want %q", e.kv, err, e.want)
		}
	}
}

// TestPuzzleEmbNdimFollowsHidden: puzzle_emb_ndim follows hidden_size in
// presets, defaults, files and overrides unless given explicitly.
func TestPuzzleEmbNdimFollowsHidden(t *testing.T) {
	for _, base := range []string{"", "sudoku-mlp", "arc1"} {
		c := DefaultConfig()
		if base != "" {
			c, _ = FromPreset(base)
		}
		if err := c.Set("arch.hidden_size=64"); err != nil {
			t.Fatal(err)
		}
		if c.Arch.PuzzleEmbNdim != 64 {
			t.Errorf("%q + arch.hidden_size=64: puzzle_emb_ndim %d", base, c.Arch.PuzzleEmbNdim)
		}
	}
	// Given explicitly (in either order), it stays.
	for _, order := range [][]string{{"arch.puzzle_emb_ndim=512", "arch.hidden_size=64"}, {"arch.hidden_size=64", "arch.puzzle_emb_ndim=512"}} {
		c := DefaultConfig()
		for _, kv := range order {
			if err := c.Set(kv); err != nil {
				t.Fatal(err)
			}
		}
		if c.Arch.PuzzleEmbNdim != 512 {
			t.Errorf("%v: puzzle_emb_ndim %d, want 512", order, c.Arch.PuzzleEmbNdim)
		}
		// arch=trm is the group's ${.hidden_size} again.
		if err := c.Set("arch=trm"); err != nil {
			t.Fatal(err)
		}
		if err := c.Set("arch.hidden_size=128"); err != nil || c.Arch.PuzzleEmbNdim != 128 {
			t.Errorf("after arch=trm: puzzle_emb_ndim %d, %v", c.Arch.PuzzleEmbNdim, err)
		}
	}
	// A JSON or YAML file that gives hidden_size only.
	for name, src := range map[string]string{"a.json": `{"arch": {"hidden_size": 64, "num_heads": 4}}`, "a.yaml": "arch:\n  hidden_size: 64\n  num_heads: 4\n"} {
		c := DefaultConfig()
		var err error
		if strings.HasSuffix(name, ".json") {
			err = ParseConfigJSON(&c, []byte(src), name)
		} else {
			err = ParseConfigYAML(&c, []byte(src), name)
		}
		if err != nil || c.Arch.PuzzleEmbNdim != 64 {
			t.Errorf("%s: puzzle_emb_ndim %d, %v", name, c.Arch.PuzzleEmbNdim, err)
		}
	}
	// The arch file's ${.hidden_size} keeps following a later override.
	c := DefaultConfig()
	if err := LoadConfigFile(&c, filepath.Join(refDir, "config/arch/trm_tiny.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("arch.hidden_size=48"); err != nil || c.Arch.PuzzleEmbNdim != 48 {
		t.Fatalf("arch file then arch.hidden_size=48: puzzle_emb_ndim %d, %v", c.Arch.PuzzleEmbNdim, err)
	}
	// all_config.yaml has the resolved number: explicit.
	c = DefaultConfig()
	if err := LoadConfigFile(&c, filepath.Join(refDir, "all_config.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("arch.hidden_size=48"); err != nil || c.Arch.PuzzleEmbNdim != 32 {
		t.Fatalf("all_config.yaml then arch.hidden_size=48: puzzle_emb_ndim %d, %v", c.Arch.PuzzleEmbNdim, err)
	}
}

// TestConfigFileErrors: bad files get errors naming the file (and line)
// and the problem.
func TestConfigFileErrors(t *testing.T) {
	c := DefaultConfig()
	if err := LoadConfigFile(&c, filepath.Join(refDir, "arch_hrm.yaml")); err != nil || c.Group() != "hrm" || c.Arch.HLayers != 4 || c.Arch.LLayers != 4 || c.Arch.NoACTContinue {
		t.Fatalf("hrm: %v, group %s, %+v", err, c.Group(), c.Arch)
	}
	cases := []struct{ name, src, want string }{
		{"typo.yaml", "lr: 1e-4\narch:\n  hiden_size: 64\n", `typo.yaml:3: unknown key "arch.hiden_size"; did you mean arch.hidden_size?`},
		{"top.yaml", "epoch: 4\n", `top.yaml:1: unknown key "epoch"; did you mean epochs?`},
		{"loss.yaml", "arch:\n  loss:\n    name: losses@ACTLossHead\n    weight: 2\n", `loss.yaml:4: unknown key "arch.loss.weight"`},
		{"cycle.yaml", "arch:\n  hidden_size: ${.num_heads}\n  num_heads: ${.hidden_size}\n", "refers back to itself"},
		{"missing.yaml", "arch:\n  puzzle_emb_ndim: ${.hiden_size}\n", `missing.yaml:2: interpolation ${.hiden_size}: no key "hiden_size"`},
		{"env.yaml", "run_name: ${oc.env:USER}\n", "resolvers (such as oc.env) are not supported"},
		{"list.yaml", "- a\n- b\n", "the config must be a mapping"},
		{"type.yaml", "epochs: many\n", `type.yaml:1: key epochs: "many" is not an integer`},
		{"dup.yaml", "lr: 1\nlr: 2\n", `dup.yaml:2: key "lr" given twice`},
		{"bad.yaml", "lr: [1\n", "bad.yaml: "},
		{"defaults.yaml", "defaults:\n  - arch: gpt\n", "unknown architecture"},
		{"badname.yaml", "name: recursive_reasoning.gpt@GPT\n", "badname.yaml:1: name: key arch: unknown architecture"},
		{"bomb.yaml", bomb(), "more than 100000 values"},
		{"bad.json", `{"lr": 1,}`, "bad.json: invalid JSON"},
		{"dup.json", `{"lr": 1, "lr": 2}`, `key "lr" given twice`},
		{"trail.json", `{} {}`, "trailing data"},
		{"typo.json", `{"arch": {"hidden_sise": 64}}`, `did you mean arch.hidden_size?`},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		var err error
		if strings.HasSuffix(tc.name, ".json") {
			err = ParseConfigJSON(&c, []byte(tc.src), tc.name)
		} else {
			err = ParseConfigYAML(&c, []byte(tc.src), tc.name)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), tc.name) {
			t.Errorf("%s: error %v, want it to start with the file name and contain %q", tc.name, err, tc.want)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(p, []byte("lr = 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := LoadConfigFile(&c, p); err == nil || !strings.Contains(err.Error(), "want .json, .yaml or .yml") {
		t.Fatalf("toml: %v", err)
	}
	// Interpolations across the file, and JSON through the same reader.
	c = DefaultConfig()
	src := "arch:\n  hidden_size: 64\n  num_heads: 4\nrun_name: h${arch.hidden_size}_${.project_name}\nproject_name: p\n"
	if err := ParseConfigYAML(&c, []byte(src), "i.yaml"); err != nil || c.RunName != "h64_p" {
		t.Fatalf("interpolated run_name %q, %v", c.RunName, err)
	}
	c = DefaultConfig()
	if err := ParseConfigJSON(&c, []byte(`{"arch": "trm", "checkpoint_path": "ck", "evaluators": [{"name": "arc@ARC"}], "data_paths": ["a", "b,c"]}`), "j.json"); err != nil {
		t.Fatal(err)
	}
	if c.CheckpointDir != "ck" || !slices.Equal(c.DataPaths, []string{"a", "b,c"}) || len(c.Warnings()) != 1 {
		t.Fatalf("json: %+v, warnings %q", c, c.Warnings())
	}
}

// bomb is a YAML alias bomb: 9 levels of 10 aliases each.
func bomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// TestResolveModelConfig: the model of a preset, a model config.json, a
// training JSON and the reference's YAML files.
func TestResolveModelConfig(t *testing.T) {
	p, _ := engine.LookupPreset("sudoku-mlp")
	want := presetPlus(t, "sudoku-att", tinyOverrides).Arch
	cases := []struct {
		arg      string
		want     engine.Config
		warnings int
	}{
		{"sudoku-mlp", p.Model, 0},
		{filepath.Join(refDir, "config/arch/trm_tiny.yaml"), want, 0},
		{filepath.Join(refDir, "all_config.yaml"), want, 2},
	}
	for _, tc := range cases {
		got, w, err := ResolveModelConfig(tc.arg)
		if err != nil {
			t.Fatalf("%s: %v", tc.arg, err)
		}
		// The dataset's sizes are those of the defaults, not the preset's.
		got.SeqLen, got.VocabSize, got.NumPuzzleIdentifiers = tc.want.SeqLen, tc.want.VocabSize, tc.want.NumPuzzleIdentifiers
		if got != tc.want || len(w) != tc.warnings {
			t.Errorf("%s:\n got  %+v, %d warnings\n want %+v, %d", tc.arg, got, len(w), tc.want, tc.warnings)
		}
	}
	golden, _, err := ResolveModelConfig("../testdata/golden/mlp_t_small/config.json")
	if err != nil || !golden.MLPT {
		t.Fatalf("model config.json: %+v %v", golden, err)
	}
	dir := t.TempDir()
	tj := filepath.Join(dir, "train.json")
	if err := os.WriteFile(tj, []byte(`{"arch": {"hidden_size": 64, "num_heads": 4}, "lr": 1e-3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, _, err := ResolveModelConfig(tj); err != nil || c.HiddenSize != 64 || c.PuzzleEmbNdim != 64 {
		t.Fatalf("training JSON: %+v %v", c, err)
	}
	if c, s, _, err := ResolveModelArch(filepath.Join(refDir, "arch_hrm.yaml")); err != nil || s.Name != "hrm" || c.HLayers != 4 {
		t.Fatalf("hrm: %v %+v %+v", err, s, c)
	}
	if c, s, _, err := ResolveModelArch("hrm-sudoku"); err != nil || s.Name != "hrm" || c.SeqLen != 81 {
		t.Fatalf("hrm-sudoku: %v %+v", err, s)
	}
	if _, _, err := ResolveModelConfig("hrm-sudoku"); err == nil || !strings.Contains(err.Error(), "a hrm model") {
		t.Fatalf("the model keys alone of an hrm preset: %v", err)
	}
	if _, _, err := ResolveModelConfig("sudoku"); err == nil || !strings.Contains(err.Error(), "sudoku-mlp") || !strings.Contains(err.Error(), ".yaml") {
		t.Fatalf("unknown preset: %v", err)
	}
}

// TestSetAllGroupFirst: the architecture group applies before the other
// overrides wherever it stands, as in hydra.
func TestSetAllGroupFirst(t *testing.T) {
	c, _ := FromPreset("sudoku-mlp")
	if err := c.SetAll([]string{"arch.L_cycles=4", "arch.hidden_size=64", "+arch=trm", "lr=3e-4"}); err != nil {
		t.Fatal(err)
	}
	if c.Arch.LCycles != 4 || c.Arch.HiddenSize != 64 || c.Arch.PuzzleEmbNdim != 64 || c.Arch.MLPT || c.LR != 3e-4 {
		t.Fatalf("%+v", c)
	}
	if err := c.SetAll([]string{"lr=1", "arch.hiden_size=3"}); err == nil || !strings.Contains(err.Error(), "did you mean arch.hidden_size") {
		t.Fatalf("error %v", err)
	}
	for in, want := range map[string]string{"+checkpoint_path": "checkpoint_dir", "arch.loss.loss_type": "arch.loss_type", "++lr": "lr"} {
		if got, ok := CanonicalKey(in); !ok || got != want {
			t.Errorf("CanonicalKey(%s) = %s, %v", in, got, ok)
		}
	}
	for _, in := range []string{"arch", "evaluators", "lrr"} {
		if _, ok := CanonicalKey(in); ok {
			t.Errorf("CanonicalKey(%s) is a key", in)
		}
	}
}
