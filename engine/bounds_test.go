package engine

import (
	"fmt"
	"strings"
	"testing"
)

// setSize sets the config key of a Limit to v.
func setSize(c *Config, key string, v float64) bool {
	n := int(v)
	switch key {
	case "batch_size":
		c.BatchSize = n
	case "seq_len":
		c.SeqLen = n
	case "vocab_size":
		c.VocabSize = n
	case "num_puzzle_identifiers":
		c.NumPuzzleIdentifiers = n
	case "hidden_size":
		c.HiddenSize = n
	case "num_heads":
		c.NumHeads = n
	case "expansion":
		c.Expansion = v
	case "puzzle_emb_len":
		c.PuzzleEmbLen = n
	case "puzzle_emb_ndim":
		c.PuzzleEmbNdim = n
	case "H_cycles":
		c.HCycles = n
	case "L_cycles":
		c.LCycles = n
	case "L_layers":
		c.LLayers = n
	case "H_layers":
		c.HLayers = n
	case "halt_max_steps":
		c.HaltMaxSteps = n
	default:
		return false
	}
	return true
}

// TestEveryLimitRefused: one above each documented limit is refused with
// a message naming the key and the limit, and the limit itself passes the
// bound check (it may fail another rule, such as divisibility, but not
// this one).
func TestEveryLimitRefused(t *testing.T) {
	keys := 0
	for _, l := range Limits() {
		c := DefaultConfig()
		if !setSize(&c, l.Key, l.Max+1) {
			continue
		}
		keys++
		err := c.Validate()
		want := fmt.Sprintf("%s %s is above the limit %s", l.Key, num(l.Max+1), num(l.Max))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s = %g: error %v, want it to contain %q", l.Key, l.Max+1, err, want)
		}
		c = DefaultConfig()
		setSize(&c, l.Key, l.Max)
		if err := c.Validate(); err != nil && strings.Contains(err.Error(), l.Key+" "+num(l.Max)+" is above") {
			t.Errorf("%s = %g (the limit) refused: %v", l.Key, l.Max, err)
		}
	}
	if keys != len(DefaultConfig().sizeValues()) {
		t.Fatalf("%d keys with limits tested, the config has %d size keys", keys, len(DefaultConfig().sizeValues()))
	}
}

// TestHostileSizesRefusedWithoutPanic: the inputs that used to panic or
// allocate without bound are refused by Validate, before any layout.
func TestHostileSizesRefusedWithoutPanic(t *testing.T) {
	mlp, _ := LookupPreset("sudoku-mlp")
	cases := []struct {
		base Config
		edit func(*Config)
		want string
	}{
		{DefaultConfig(), func(c *Config) { c.PuzzleEmbLen = 1e9 }, "puzzle_emb_len 1000000000 is above the limit 1024"},
		{mlp.Model, func(c *Config) { c.PuzzleEmbLen = 1e9 }, "puzzle_emb_len 1000000000 is above the limit 1024"},
		{DefaultConfig(), func(c *Config) { c.Expansion = 1e6 }, "expansion 1000000 is above the limit 64"},
		{DefaultConfig(), func(c *Config) { c.HaltMaxSteps = 1e9 }, "halt_max_steps 1000000000 is above the limit 1024"},
		{DefaultConfig(), func(c *Config) {
			c.HiddenSize, c.NumHeads, c.PuzzleEmbNdim, c.Expansion, c.LLayers = 8192, 64, 8192, 64, 64
		},
			"trained parameters, above the limit 2147483648: lower hidden_size, expansion or L_layers"},
		{DefaultConfig(), func(c *Config) { c.NumPuzzleIdentifiers = 1 << 26 },
			"the puzzle table has 34359738368 elements (num_puzzle_identifiers 67108864 x puzzle_emb_ndim 512)"},
		{DefaultConfig(), func(c *Config) { c.SeqLen = 1 << 62 }, "is above the limit 16384"},
	}
	for _, tc := range cases {
		c := tc.base
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	// The paper presets are well inside every bound.
	for _, n := range PresetNames() {
		p, _ := LookupPreset(n)
		if err := p.Model.Validate(); err != nil {
			t.Errorf("preset %s: %v", n, err)
		}
	}
}

// TestParseConfigNdimFollowsHidden: a JSON model config that changes
// hidden_size moves puzzle_emb_ndim with it unless it gives
// puzzle_emb_ndim itself.
func TestParseConfigNdimFollowsHidden(t *testing.T) {
	c, err := ParseConfig([]byte(`{"hidden_size": 64, "num_heads": 4}`), "a.json")
	if err != nil || c.PuzzleEmbNdim != 64 {
		t.Fatalf("puzzle_emb_ndim %d, err %v; want 64", c.PuzzleEmbNdim, err)
	}
	c, err = ParseConfig([]byte(`{"hidden_size": 64, "num_heads": 4, "puzzle_emb_ndim": 512}`), "b.json")
	if err != nil || c.PuzzleEmbNdim != 512 {
		t.Fatalf("puzzle_emb_ndim %d, err %v; want the given 512", c.PuzzleEmbNdim, err)
	}
	base := DefaultConfig()
	base.PuzzleEmbNdim, base.PuzzleEmbLen = 0, 0
	c, err = ParseConfigOver(base, []byte(`{"hidden_size": 64, "num_heads": 4}`), "c.json")
	if err != nil || c.PuzzleEmbNdim != 0 {
		t.Fatalf("no puzzle embedding became %d, err %v", c.PuzzleEmbNdim, err)
	}
}

func TestArchitectures(t *testing.T) {
	a, err := LookupArch("recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1")
	if err != nil || a.Group != "trm" {
		t.Fatalf("%+v %v", a, err)
	}
	data := DefaultConfig()
	data.SeqLen, data.VocabSize, data.NumPuzzleIdentifiers, data.BatchSize = 16, 6, 9, 4
	d, err := a.Defaults(data)
	if err != nil || d.SeqLen != 16 || d.VocabSize != 6 || d.NumPuzzleIdentifiers != 9 || d.BatchSize != 4 || d.HCycles != 3 || d.LCycles != 6 || d.PuzzleEmbLen != 16 {
		t.Fatalf("trm defaults %+v %v", d, err)
	}
	// Every group's defaults build a model of that architecture.
	for _, n := range []string{"hrm", "trm_singlez", "trm_hier6", "transformers_baseline", "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1"} {
		if la, err := LookupArch(n); err != nil || !la.Supported || !strings.HasPrefix(n, "recursive_reasoning."+la.Group+"@") && n != la.Group {
			t.Errorf("LookupArch(%s): %+v %v (the launcher builds every architecture)", n, la, err)
		}
		a, err := FindArch(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		d, err := a.Defaults(data)
		if err != nil {
			t.Fatalf("%s defaults: %v", n, err)
		}
		if _, err := NewArchLayout(d, ArchSettings{Name: n}); err != nil {
			t.Errorf("%s defaults %+v: %v", n, d, err)
		}
	}
	if _, err := LookupArch("gpt"); err == nil || !strings.Contains(err.Error(), "hrm, transformers_baseline, trm") {
		t.Errorf("unknown architecture: %v", err)
	}
}

func TestPresetInfos(t *testing.T) {
	infos := Presets()
	if len(infos) != len(PresetNames()) {
		t.Fatalf("%d infos for %d presets", len(infos), len(PresetNames()))
	}
	for i, p := range infos {
		if p.Name != PresetNames()[i] || p.Description == "" || strings.Contains(p.Description, "\n") {
			t.Errorf("preset %d: %+v", i, p)
		}
	}
}
