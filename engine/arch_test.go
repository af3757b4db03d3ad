package engine

import (
	"strings"
	"testing"
)

// TestParseArchConfig: the name key selects the architecture over its
// group's defaults, and combinations that make no sense are rejected
// naming the key.
func TestParseArchConfig(t *testing.T) {
	c, s, err := ParseArchConfig([]byte(`{"name": "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1", "hidden_size": 64, "num_heads": 4}`), "h.json")
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := s.Group(); g != "hrm" || c.PuzzleEmbLen != 0 || c.NoACTContinue || c.HLayers != 4 || c.PuzzleEmbNdim != 64 {
		t.Fatalf("hrm: group %s, config %+v", g, c)
	}
	_, s, err = ParseArchConfig([]byte(`{"name": "recursive_reasoning.transformers_baseline@Model_ACTV2", "act_enabled": false, "act_inference": true}`), "b.json")
	if err != nil || !s.ACTDisabled || !s.ACTInference {
		t.Fatalf("baseline: %+v %v", s, err)
	}
	for _, tc := range []struct{ json, want string }{
		{`{"name": "hrm", "puzzle_emb_len": 4}`, "puzzle_emb_len is not a key of hrm"},
		{`{"name": "hrm", "H_layers": 0}`, "H_layers must be positive for hrm"},
		{`{"name": "hrm", "no_ACT_continue": true}`, "no_ACT_continue is not a key of hrm"},
		{`{"name": "transformers_baseline", "mlp_t": true}`, "mlp_t is not available in transformers_baseline"},
		{`{"act_enabled": false}`, "act_enabled and act_inference are keys of transformers_baseline only"},
		{`{"name": "gpt"}`, `unknown architecture "gpt"`},
		{`{"name": 3}`, `key "name": want a string`},
	} {
		_, _, err := ParseArchConfig([]byte(tc.json), "x.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "x.json: ") {
			t.Errorf("%s: %v, want %q", tc.json, err, tc.want)
		}
	}
}

// TestArchLayouts: each architecture's keys, buffers and carry fields.
func TestArchLayouts(t *testing.T) {
	c := DefaultConfig()
	c.HiddenSize, c.NumHeads, c.PuzzleEmbNdim, c.PuzzleEmbLen, c.HLayers, c.LLayers = 64, 4, 64, 0, 3, 2
	c.NoACTContinue = false
	for _, tc := range []struct {
		arch    string
		has     []string
		lacks   []string
		buffers int
		fields  string
	}{
		{"hrm", []string{"inner.H_level.layers.2.mlp.down_proj.weight", "inner.L_level.layers.1.self_attn.o_proj.weight", KeyHInit, KeyLInit}, []string{"inner.H_level.layers.3.mlp.down_proj.weight"}, 2, "z_H z_L"},
		{"trm_singlez", []string{"inner.L_level.layers.1.mlp.gate_up_proj.weight", KeyLInit}, []string{KeyHInit, "inner.H_level.layers.0.mlp.down_proj.weight"}, 1, "z_L"},
		{"trm_hier6", []string{KeyHInit, "inner.L1_init", "inner.L6_init"}, []string{KeyLInit, "inner.L7_init"}, 7, "z_H z_L1 z_L2 z_L3 z_L4 z_L5 z_L6"},
		{"transformers_baseline", []string{"inner.H_level.layers.2.self_attn.qkv_proj.weight", KeyHInit}, []string{KeyLInit, "inner.L_level.layers.0.mlp.down_proj.weight"}, 1, "z_H"},
	} {
		s := ArchSettings{Name: tc.arch}
		l, err := NewArchLayout(c, s)
		if err != nil {
			t.Fatalf("%s: %v", tc.arch, err)
		}
		for _, k := range tc.has {
			if _, ok := l.Lookup(k); !ok {
				t.Errorf("%s: no key %s", tc.arch, k)
			}
		}
		for _, k := range tc.lacks {
			if _, ok := l.Lookup(k); ok {
				t.Errorf("%s: unexpected key %s", tc.arch, k)
			}
		}
		if l.NumBuffer != tc.buffers*c.HiddenSize {
			t.Errorf("%s: %d buffer values, want %d", tc.arch, l.NumBuffer, tc.buffers*c.HiddenSize)
		}
		f, _ := CarryFields(s)
		if strings.Join(f, " ") != tc.fields {
			t.Errorf("%s: carry %v, want %s", tc.arch, f, tc.fields)
		}
	}
}
