package engine

import (
	"errors"
	"fmt"
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

// architectures lists the reference's groups; the engine builds trm.
var architectures = []Architecture{
	{"trm", "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1", true},
	{"hrm", "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1", false},
	{"trm_singlez", "recursive_reasoning.trm_singlez@TinyRecursiveReasoningModel_ACTV1", false},
	{"trm_hier6", "recursive_reasoning.trm_hier6@TinyRecursiveReasoningModel_ACTV1", false},
	{"transformers_baseline", "recursive_reasoning.transformers_baseline@Model_ACTV2", false},
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
// from the dataset and not from the group. Only a supported group has
// defaults.
func (a Architecture) Defaults(data Config) (Config, error) {
	if !a.Supported {
		return Config{}, fmt.Errorf("%w: %s", ErrArchNotSupported, a.Group)
	}
	c := DefaultConfig() // the trm group
	c.BatchSize, c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = data.BatchSize, data.SeqLen, data.VocabSize, data.NumPuzzleIdentifiers
	return c, nil
}
