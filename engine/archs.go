package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Architecture is one of the reference's architecture groups: a file
// config/arch/NAME.yaml there, selected by `arch=NAME` on its command line,
// whose `name` key names the model class.
type Architecture struct {
	Group     string // the group's name, e.g. trm
	ClassName string // the reference's model name, e.g. recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1
	// Supported says whether this engine builds the architecture.
	Supported bool
}

// LossHeadName is the reference's name of the one loss head it has
// (arch.loss.name), the one this engine implements.
const LossHeadName = "losses@ACTLossHead"

// architectures lists the reference's groups. Model builds every one
// (docs/architectures.md, found with FindArch); Supported marks those
// LookupArch hands to the training launcher, which passes the config's
// architecture as Options.Arch to every model it builds.
var architectures = []Architecture{
	{"trm", "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1", true},
	{"hrm", "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1", true},
	{"trm_singlez", "recursive_reasoning.trm_singlez@TinyRecursiveReasoningModel_ACTV1", true},
	{"trm_hier6", "recursive_reasoning.trm_hier6@TinyRecursiveReasoningModel_ACTV1", true},
	{"transformers_baseline", "recursive_reasoning.transformers_baseline@Model_ACTV2", true},
}

// FindArch finds any of the reference's groups by its name or its model
// class name, whether or not LookupArch accepts it: every one can be
// built with Options.Arch.
func FindArch(name string) (Architecture, error) {
	name = strings.TrimSpace(name)
	for _, a := range architectures {
		if name == a.Group || name == a.ClassName {
			return a, nil
		}
	}
	var known []string
	for _, a := range Architectures() {
		known = append(known, a.Group)
	}
	return Architecture{}, fmt.Errorf("unknown architecture %q (the reference's groups: %s)", name, strings.Join(known, ", "))
}

// ErrArchNotSupported is wrapped by LookupArch's error for a group of the
// reference that this engine does not build yet.
var ErrArchNotSupported = errors.New("architecture not supported yet")

// Architectures lists the reference's groups, sorted by name.
func Architectures() []Architecture {
	out := append([]Architecture(nil), architectures...)
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// LookupArch finds a group by its name (trm) or its model class name
// (recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1). A group
// the engine does not build is an error wrapping ErrArchNotSupported; an
// unknown name is an error listing the known groups.
func LookupArch(name string) (Architecture, error) {
	name = strings.TrimSpace(name)
	for _, a := range architectures {
		if name == a.Group || name == a.ClassName {
			if !a.Supported {
				return a, fmt.Errorf("%w: %s (%s); supported: %s", ErrArchNotSupported, a.Group, a.ClassName, strings.Join(supportedGroups(), ", "))
			}
			return a, nil
		}
	}
	var known []string
	for _, a := range Architectures() {
		known = append(known, a.Group)
	}
	return Architecture{}, fmt.Errorf("unknown architecture %q (the reference's groups: %s)", name, strings.Join(known, ", "))
}

func supportedGroups() []string {
	var s []string
	for _, a := range Architectures() {
		if a.Supported {
			s = append(s, a.Group)
		}
	}
	return s
}

// Defaults returns the group's model keys as its config/arch file gives
// them, over the dataset-dependent sizes (batch_size, seq_len,
// vocab_size, num_puzzle_identifiers) of data, which the reference takes
// from the dataset and not from the group.
func (a Architecture) Defaults(data Config) (Config, error) {
	c := archBase(a.Group)
	c.BatchSize, c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = data.BatchSize, data.SeqLen, data.VocabSize, data.NumPuzzleIdentifiers
	return c, nil
}

// archBase returns a group's config/arch defaults over DefaultConfig's
// dataset sizes. Keys a group does not have take the value that means
// their absence: puzzle_emb_len 0 (ceil(puzzle_emb_ndim / hidden_size)
// positions) and no_ACT_continue false (halting on q_halt > q_continue)
// for hrm and the transformer baseline.
func archBase(group string) Config {
	c := DefaultConfig() // the trm group; trm_singlez and trm_hier6 share its file's values
	switch group {
	case "hrm":
		c.HCycles, c.LCycles, c.HLayers, c.LLayers = 2, 2, 4, 4
		c.PuzzleEmbLen, c.NoACTContinue = 0, false
	case "transformers_baseline":
		// The reference's file has num_heads 12, which does not divide
		// hidden_size 512; 8 heads of 64 are the nearest valid shape.
		c.HCycles, c.HLayers, c.NumHeads = 1, 8, 8
		c.PuzzleEmbLen, c.NoACTContinue = 0, false
	}
	return c
}

// ParseArchConfig reads a JSON model config that may carry the
// reference's architecture keys: name (the model class; absent means trm)
// and, for transformers_baseline, act_enabled and act_inference. The other
// keys are read over the architecture's defaults as ParseConfigOver does,
// and the result is checked with ValidateArch. name is used in error
// messages.
func ParseArchConfig(data []byte, name string) (Config, ArchSettings, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, ArchSettings{}, fmt.Errorf("%s: invalid JSON: %v", name, err)
	}
	var s ArchSettings
	group := "trm"
	if v, ok := raw["name"]; ok {
		if err := json.Unmarshal(v, &s.Name); err != nil {
			return Config{}, s, fmt.Errorf("%s: key \"name\": want a string: %v", name, err)
		}
		a, err := FindArch(s.Name)
		if err != nil {
			return Config{}, s, fmt.Errorf("%s: key \"name\": %w", name, err)
		}
		group = a.Group
		delete(raw, "name")
	}
	for key, dst := range map[string]*bool{"act_enabled": nil, "act_inference": &s.ACTInference} {
		v, ok := raw[key]
		if !ok {
			continue
		}
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return Config{}, s, fmt.Errorf("%s: key %q: want true or false: %v", name, key, err)
		}
		if dst == nil {
			s.ACTDisabled = !b
		} else {
			*dst = b
		}
		delete(raw, key)
	}
	rest, err := json.Marshal(raw)
	if err != nil {
		return Config{}, s, fmt.Errorf("%s: %v", name, err)
	}
	cfg, err := ParseConfigOver(archBase(group), rest, name)
	if err != nil {
		return cfg, s, err
	}
	if err := ValidateArch(cfg, s); err != nil {
		return cfg, s, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, s, nil
}

// LoadArchConfig reads a JSON model config file with ParseArchConfig.
func LoadArchConfig(path string) (Config, ArchSettings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, ArchSettings{}, err
	}
	return ParseArchConfig(data, path)
}
