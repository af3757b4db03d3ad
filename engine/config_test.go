package engine

import (
	"strings"
	"testing"
)

func TestParseConfigGoldenAndDefaults(t *testing.T) {
	c, err := LoadConfig("../testdata/golden/att_rope_small/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.HiddenSize != 64 || c.NumHeads != 4 || c.PuzzleLen() != 2 || c.SeqTotal() != 18 || c.LossType != LossStablemax {
		t.Fatalf("golden config parsed as %+v", c)
	}
	// Absent keys keep the reference defaults.
	c, err = ParseConfig([]byte(`{"hidden_size": 256, "num_heads": 4}`), "x.json")
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.HCycles != d.HCycles || c.LCycles != 6 || c.HaltMaxSteps != 16 || c.HaltExplorationProb != 0.1 || c.RopeTheta != 10000 {
		t.Fatalf("defaults not kept: %+v", c)
	}
}

func TestConfigRejects(t *testing.T) {
	cases := []struct{ json, want string }{
		{`{"hidden_size": 100, "num_heads": 8}`, "not divisible by num_heads"},
		{`{"puzzle_emb_ndim": 0, "puzzle_emb_len": 4}`, "puzzle_emb_len is 4 but puzzle_emb_ndim is 0"},
		{`{"pos_encodings": "alibi"}`, `unknown pos_encodings "alibi"`},
		{`{"puzzle_emb_ndim": 2000, "puzzle_emb_len": 2}`, "does not fit"},
		{`{"loss_type": "mse"}`, `unknown loss_type "mse"`},
		{`{"forward_dtype": "float16"}`, `unknown forward_dtype`},
		{`{"hidden_size": 96, "num_heads": 32}`, "rope needs an even head size"},
		{`{"hidden_sise": 512}`, `unknown config key "hidden_sise"`},
		{`{"H_cycles": 0}`, "H_cycles must be positive"},
		{`{"halt_exploration_prob": 1.5}`, "halt_exploration_prob must be in [0, 1]"},
		{`{"hidden_size": "big"}`, `key "hidden_size"`},
		{`{"hidden_size": 512,}`, "invalid JSON"},
		{`{} {}`, "trailing data"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.json), "cfg.json")
		if err == nil {
			t.Errorf("%s: accepted", c.json)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "cfg.json: ") {
			t.Errorf("%s: error %q, want it to name the file and contain %q", c.json, err, c.want)
		}
	}
	// Odd head sizes are fine without rope.
	if _, err := ParseConfig([]byte(`{"hidden_size": 60, "num_heads": 4, "pos_encodings": "learned", "puzzle_emb_ndim": 60}`), "ok.json"); err != nil {
		t.Fatal(err)
	}
}

func TestInter(t *testing.T) {
	c := DefaultConfig()
	for _, tc := range []struct{ h, want int }{{512, 1536}, {18, 256}, {97, 512}, {64, 256}, {916, 2560}} {
		if got := c.Inter(tc.h); got != tc.want {
			t.Errorf("inter(%d) = %d, want %d", tc.h, got, tc.want)
		}
	}
}

func TestPresets(t *testing.T) {
	want := []string{"arc1", "arc2", "hrm-arc1", "hrm-arc2", "hrm-maze", "hrm-sudoku", "maze", "sudoku-att", "sudoku-mlp"}
	if got := strings.Join(PresetNames(), ","); got != strings.Join(want, ",") {
		t.Fatalf("presets %s, want %s", got, strings.Join(want, ","))
	}
	for _, n := range want {
		p, err := LookupPreset(n)
		if err != nil || ValidateArch(p.Model, p.Arch) != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	if _, err := ResolveConfig("sudoku"); err == nil || !strings.Contains(err.Error(), "sudoku-mlp") {
		t.Fatalf("unknown preset error should list the known ones: %v", err)
	}
	c, err := ResolveConfig("../testdata/golden/mlp_t_small/config.json")
	if err != nil || !c.MLPT {
		t.Fatalf("config path: %v %+v", err, c)
	}
}
