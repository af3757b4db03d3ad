package trainer

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/internal/safetensors"
)

// withArch turns a TRM config into the same-sized model of another
// architecture: the keys only that architecture has take the demo's
// values (H_layers as L_layers), the keys it does not have their
// absence (puzzle_emb_len 0; no_ACT_continue false where halting always
// learns q_continue); transformers_baseline, which has no mlp_t, attends
// with rope.
func withArch(c Config, group string) Config {
	c.ArchSettings = engine.ArchSettings{Name: group}
	if group == "trm" {
		c.ArchSettings.Name = ""
	}
	switch group {
	case "hrm", "transformers_baseline":
		c.Arch.HLayers, c.Arch.PuzzleEmbLen, c.Arch.NoACTContinue = c.Arch.LLayers, 0, false
	}
	if group == "transformers_baseline" && c.Arch.MLPT {
		// Its blocks always attend: attention with rope (its
		// config/arch file's positions) in place of the token MLP.
		c.Arch.MLPT, c.Arch.PosEncodings = false, engine.PosRope
	}
	return c
}

// TestArchConfig: arch=NAME selects the architecture and its keys, the
// architecture is stored in the JSON under arch.name and read back, Diff
// names it, and resuming under another architecture is refused.
func TestArchConfig(t *testing.T) {
	c := DefaultConfig()
	if err := c.SetAll([]string{"arch.H_layers=2", "arch=hrm"}); err != nil {
		t.Fatal(err)
	}
	if c.Group() != "hrm" || c.Arch.HLayers != 2 || c.Arch.LLayers != 4 || c.Arch.NoACTContinue {
		t.Fatalf("arch=hrm: group %s, %+v", c.Group(), c.Arch)
	}
	b := c.MarshalIndent()
	var raw struct {
		Arch map[string]any `json:"arch"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || raw.Arch["name"] != "hrm" || raw.Arch["H_layers"] != 2.0 {
		t.Fatalf("stored arch %v (%v)", raw.Arch, err)
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || len(c.Diff(back)) != 0 || back.Group() != "hrm" {
		t.Fatalf("round trip: %v, diff %v", err, c.Diff(back))
	}
	if d := DefaultConfig().Diff(c); !slices.Contains(d, "arch.name: trm -> hrm") {
		t.Fatalf("diff %v", d)
	}
	// A config of the time before arch.name is the TRM.
	var old Config
	if err := json.Unmarshal([]byte(`{"arch": {"hidden_size": 64}}`), &old); err != nil || old.Group() != "trm" {
		t.Fatalf("old config: %v %s", err, old.Group())
	}
	if err := json.Unmarshal([]byte(`{"arch": {"name": "gpt"}}`), &old); err == nil || !strings.Contains(err.Error(), "unknown architecture") {
		t.Fatalf("unknown name: %v", err)
	}
	// The baseline's own keys; the others refuse them.
	tb := DefaultConfig()
	if err := tb.SetAll([]string{"arch=transformers_baseline", "arch.act_enabled=false", "arch.act_inference=true"}); err != nil {
		t.Fatal(err)
	}
	if !tb.ArchSettings.ACTDisabled || !tb.ArchSettings.ACTInference || tb.Validate() != nil {
		t.Fatalf("baseline: %+v %v", tb.ArchSettings, tb.Validate())
	}
	if err := json.Unmarshal(tb.MarshalIndent(), &back); err != nil || back.ArchSettings != tb.ArchSettings {
		t.Fatalf("baseline round trip: %+v %v", back.ArchSettings, err)
	}
	tr := DefaultConfig()
	if err := tr.Set("arch.act_enabled=false"); err != nil || tr.Validate() == nil || !strings.Contains(tr.Validate().Error(), "transformers_baseline only") {
		t.Fatalf("act_enabled on trm: %v", tr.Validate())
	}
	if _, _, err := ResumeConfig(c, []string{"arch=trm"}, ""); err == nil || !strings.Contains(err.Error(), "arch cannot change on resume") || !strings.Contains(err.Error(), "arch=hrm") {
		t.Fatalf("resume under another architecture: %v", err)
	}
	if _, _, err := ResumeConfig(c, []string{"arch.name=hrm"}, ""); err != nil {
		t.Fatalf("repeating the stored architecture: %v", err)
	}
}

// TestArchResumeBitExact: for hrm (two networks, the continue target from
// a second forward) and trm_hier6 (seven carried states), a checkpoint
// stores the architecture and every carried state under its field name,
// and a run interrupted mid-pass and resumed gives the same losses, bit
// for bit, and the same final weights as an uninterrupted one.
func TestArchResumeBitExact(t *testing.T) {
	base := smallRunConfig(t)
	base.TotalStepsLimit = 8
	base.Epochs, base.EvalInterval = 2, 2
	for _, group := range []string{"hrm", "trm_hier6"} {
		t.Run(group, func(t *testing.T) {
			cfg := withArch(base, group)
			cfg.CheckpointDir = filepath.Join(t.TempDir(), "full")
			full := &recorder{}
			sum, err := Run(context.Background(), cfg, RunOptions{Backend: cpu.New(0), Hooks: []Hook{full}})
			if err != nil {
				t.Fatal(err)
			}
			meta, err := LoadMeta(sum.Checkpoint)
			if err != nil {
				t.Fatal(err)
			}
			if meta.Config.Group() != group {
				t.Fatalf("stored architecture %q", meta.Config.Group())
			}
			st, err := safetensors.ReadFile(filepath.Join(sum.Checkpoint, StateFile))
			if err != nil {
				t.Fatal(err)
			}
			fields, _ := engine.CarryFields(cfg.ArchSettings)
			var carried []string
			for k := range st.Tensors {
				if strings.HasPrefix(k, "carry.z_") {
					carried = append(carried, strings.TrimPrefix(k, "carry."))
				}
			}
			slices.Sort(carried)
			want := slices.Clone(fields)
			slices.Sort(want)
			if !slices.Equal(carried, want) {
				t.Fatalf("carried states %v, want %v", carried, want)
			}
			mc, ms, err := engine.LoadArchConfig(filepath.Join(sum.Checkpoint, "arch.json"))
			if g, _ := ms.Group(); err != nil || g != group || mc.HLayers != cfg.Arch.HLayers {
				t.Fatalf("arch.json: %v, %+v", err, ms)
			}
			layout, err := engine.NewArchLayout(meta.Config.Arch, meta.Config.ArchSettings)
			if err != nil {
				t.Fatal(err)
			}
			wantP, err := engine.LoadState(filepath.Join(sum.Checkpoint, ModelFile), layout)
			if err != nil {
				t.Fatal(err)
			}

			cfg.CheckpointDir = filepath.Join(t.TempDir(), "cut")
			ctx, cancel := context.WithCancel(context.Background())
			first := &recorder{cancelAt: 3, cancel: cancel}
			if _, err := Run(ctx, cfg, RunOptions{Backend: cpu.New(0), Hooks: []Hook{first}}); err != nil {
				t.Fatal(err)
			}
			second := &recorder{}
			sum2, err := Run(context.Background(), Config{}, RunOptions{Backend: cpu.New(0), Hooks: []Hook{second}, Resume: cfg.CheckpointDir})
			if err != nil {
				t.Fatal(err)
			}
			got := append(slices.Clone(first.losses), second.losses...)
			if !slices.Equal(got, full.losses) || len(got) != 8 {
				t.Fatalf("losses after resume differ:\n got  %v\n want %v", got, full.losses)
			}
			gotP, err := engine.LoadState(filepath.Join(sum2.Checkpoint, ModelFile), layout)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(gotP.Trained, wantP.Trained) || !slices.Equal(gotP.Puzzle, wantP.Puzzle) {
				t.Fatal("final weights differ after resume")
			}
			// The weights are the architecture's: a TRM layout refuses them.
			if _, err := engine.LoadState(filepath.Join(sum2.Checkpoint, ModelFile), engine.NewLayout(meta.Config.Arch)); err == nil {
				t.Fatal("a TRM layout loaded the weights of " + group)
			}
		})
	}
}

// TestLearnsSudokuArchs is the learning test of the other architectures:
// the demo's configuration (DemoConfig: the same sizes, data and budget as
// TestLearnsSudoku) built as hrm must reach 90% held-out exact accuracy.
// TRM_LEARN_ARCHS=hrm,trm_singlez,... runs the listed architectures
// instead, each held to the floor below (what it reaches on this data and
// budget, less a margin).
func TestLearnsSudokuArchs(t *testing.T) {
	if testing.Short() {
		t.Skip("the learning test trains for about 30 s per architecture")
	}
	// Measured on this data and budget: trm 1.000, hrm 0.990,
	// trm_singlez 0.990, trm_hier6 0.900. transformers_baseline has no
	// floor: it attends (no mlp_t), and with attention neither it nor the
	// TRM solved a puzzle on the demo's earlier, shorter budget (0.000 at
	// 248 steps, token accuracy 0.587 and 0.571): the budget is sized for
	// the token MLP.
	floors := map[string]float64{"trm": 0.95, "hrm": 0.90, "trm_singlez": 0.95, "trm_hier6": 0.80}
	groups := []string{"hrm"}
	if s := os.Getenv("TRM_LEARN_ARCHS"); s != "" {
		groups = strings.Split(s, ",")
	}
	dir := t.TempDir()
	if err := BuildDemoSudoku(dir, 800, 200, 8, 3, 1, nil); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		floor, ok := floors[g]
		if !ok {
			t.Fatalf("no learning floor for architecture %q (have %v)", g, floors)
		}
		cfg := withArch(DefaultDemo(dir), g)
		sum, err := Run(context.Background(), cfg, RunOptions{Backend: cpu.New(0)})
		if err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		acc, n := sum.LastEval.Flat["all/exact_accuracy"], sum.LastEval.Flat["all/count"]
		t.Logf("%s: %d steps in %s: held-out exact accuracy %.3f on %v examples", g, sum.Steps, sum.Wall, acc, n)
		if acc < floor || n != 200 {
			t.Errorf("%s: held-out exact accuracy %.3f on %v examples, want >= %.2f on 200", g, acc, n, floor)
		}
	}
}
