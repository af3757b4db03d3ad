package engine

import (
	"fmt"
	"sort"
	"strings"
)

// Preset is a named paper configuration: the model and its training
// recipe in one entry, so one registry answers "what does --preset arc1
// mean".
type Preset struct {
	Name        string
	Description string
	Model       Config
	// Arch is the preset's architecture (the zero value is the TRM).
	Arch   ArchSettings
	Recipe Recipe
}

// Recipe is the training part of a paper configuration, as the paper's
// training commands give it; the trainer turns it into its own config.
type Recipe struct {
	GlobalBatchSize      int
	Epochs, EvalInterval int
	LR, PuzzleEmbLR      float64
	WeightDecay          float64
	PuzzleEmbWeightDecay float64
	LRWarmupSteps        int
	LRMinRatio           float64
	Beta1, Beta2         float64
	EMA                  bool
	EMARate              float64
}

// Paper recipes: global batch 768, betas 0.9/0.95, warm-up 2000,
// lr_min_ratio 1, EMA 0.999.
var (
	sudokuRecipe = Recipe{GlobalBatchSize: 768, Epochs: 50000, EvalInterval: 5000, LR: 1e-4, PuzzleEmbLR: 1e-4,
		WeightDecay: 1.0, PuzzleEmbWeightDecay: 1.0, LRWarmupSteps: 2000, LRMinRatio: 1, Beta1: 0.9, Beta2: 0.95, EMA: true, EMARate: 0.999}
	arcRecipe = Recipe{GlobalBatchSize: 768, Epochs: 100000, EvalInterval: 10000, LR: 1e-4, PuzzleEmbLR: 1e-2,
		WeightDecay: 0.1, PuzzleEmbWeightDecay: 0.1, LRWarmupSteps: 2000, LRMinRatio: 1, Beta1: 0.9, Beta2: 0.95, EMA: true, EMARate: 0.999}
)

// presets is the one registry of paper configurations. Dataset-dependent keys (seq_len, vocab_size,
// num_puzzle_identifiers) hold the values of the paper's datasets; a
// dataset's dataset.json replaces them at training time.
var presets = map[string]Preset{}

func addPreset(name, desc string, r Recipe, edit func(*Config)) {
	addArchPreset(name, desc, ArchSettings{}, r, edit)
}

// addArchPreset registers a preset of architecture s: edit starts from
// the group's config/arch values (archBase).
func addArchPreset(name, desc string, s ArchSettings, r Recipe, edit func(*Config)) {
	g, err := s.Group()
	if err != nil {
		panic("engine: preset " + name + ": " + err.Error())
	}
	c := archBase(g)
	edit(&c)
	if err := ValidateArch(c, s); err != nil {
		panic("engine: preset " + name + ": " + err.Error())
	}
	presets[name] = Preset{Name: name, Description: desc, Model: c, Arch: s, Recipe: r}
}

func init() {
	addPreset("sudoku-mlp", "Sudoku-Extreme 9x9: token-mixing MLP (mlp_t) without positions, 3x6 cycles, 50k epochs (paper: 87.4% exact)", sudokuRecipe, func(c *Config) {
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 81, 11, 1
		c.HCycles, c.LCycles = 3, 6
		c.MLPT, c.PosEncodings = true, PosNone
	})
	addPreset("sudoku-att", "Sudoku-Extreme 9x9: attention with rope, 3x6 cycles, 50k epochs (paper: 74.7% exact)", sudokuRecipe, func(c *Config) {
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 81, 11, 1
		c.HCycles, c.LCycles = 3, 6
	})
	addPreset("maze", "Maze-Hard 30x30: attention with rope, 3x4 cycles, 50k epochs (paper: 85.3% exact)", sudokuRecipe, func(c *Config) {
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 900, 6, 1
		c.HCycles, c.LCycles = 3, 4
	})
	// ARC puzzle tables have one row per augmented puzzle; the row count
	// comes from the built dataset, so the preset keeps 1 until then.
	addPreset("arc1", "ARC-AGI-1: attention with rope, 3x4 cycles, 100k epochs (paper: 44.6% pass@2)", arcRecipe, func(c *Config) {
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 900, 12, 1
		c.HCycles, c.LCycles = 3, 4
	})
	addPreset("arc2", "ARC-AGI-2: attention with rope, 3x4 cycles, 100k epochs (paper: 7.8% pass@2)", arcRecipe, func(c *Config) {
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 900, 12, 1
		c.HCycles, c.LCycles = 3, 4
	})

	// The paper's HRM baselines: the reference's config/arch/hrm.yaml
	// (H_cycles 2, L_cycles 2, H_layers 4, L_layers 4, hidden 512, 8
	// heads, rope, halt_max_steps 16) trained with the same recipes as
	// the TRM presets of the same task, as the paper compares them.
	hrm := ArchSettings{Name: "hrm"}
	addArchPreset("hrm-sudoku", "Sudoku-Extreme 9x9 with HRM (H_level and L_level of 4 layers, 2x2 cycles), 50k epochs (paper: 55.0% exact)", hrm, sudokuRecipe, func(c *Config) {
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 81, 11, 1
	})
	addArchPreset("hrm-maze", "Maze-Hard 30x30 with HRM (H_level and L_level of 4 layers, 2x2 cycles), 50k epochs (paper: 74.5% exact)", hrm, sudokuRecipe, func(c *Config) {
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 900, 6, 1
	})
	addArchPreset("hrm-arc1", "ARC-AGI-1 with HRM (H_level and L_level of 4 layers, 2x2 cycles), 100k epochs (paper: 40.3% pass@2)", hrm, arcRecipe, func(c *Config) {
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 900, 12, 1
	})
	addArchPreset("hrm-arc2", "ARC-AGI-2 with HRM (H_level and L_level of 4 layers, 2x2 cycles), 100k epochs (paper: 5.0% pass@2)", hrm, arcRecipe, func(c *Config) {
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 900, 12, 1
	})
}

// LookupPreset returns the named preset, or an error listing the known ones.
func LookupPreset(name string) (Preset, error) {
	p, ok := presets[name]
	if !ok {
		return Preset{}, fmt.Errorf("unknown preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	return p, nil
}

// PresetInfo is a preset's name and its one-line description, for
// listings.
type PresetInfo struct {
	Name        string
	Description string
}

// Presets lists every preset with its description, sorted by name.
func Presets() []PresetInfo {
	var out []PresetInfo
	for _, n := range PresetNames() {
		out = append(out, PresetInfo{Name: n, Description: presets[n].Description})
	}
	return out
}

// PresetNames lists the registry's names, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ResolveArchConfig interprets arg as a preset name or, failing that, as
// the path of a JSON model config file that may name its architecture
// (LoadArchConfig), and returns the model with its architecture.
func ResolveArchConfig(arg string) (Config, ArchSettings, error) {
	if p, ok := presets[arg]; ok {
		return p.Model, p.Arch, nil
	}
	if strings.HasSuffix(arg, ".json") || strings.ContainsRune(arg, '/') {
		return LoadArchConfig(arg)
	}
	_, err := LookupPreset(arg)
	return Config{}, ArchSettings{}, fmt.Errorf("%v, and not a .json config path", err)
}

// ResolveConfig interprets arg as a preset name or, failing that, as the
// path of a JSON model config file (the TRM's keys; ResolveArchConfig
// also reads a name). This is what every CLI command taking a model
// uses.
func ResolveConfig(arg string) (Config, error) {
	if p, ok := presets[arg]; ok {
		return p.Model, nil
	}
	if strings.HasSuffix(arg, ".json") || strings.ContainsRune(arg, '/') {
		return LoadConfig(arg)
	}
	_, err := LookupPreset(arg)
	return Config{}, fmt.Errorf("%v, and not a .json config path", err)
}
