package trm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/internal/torchpt"
	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer"
	"github.com/tinyrecursive/trm/trainer/data"
)

// LoadOptions say how Load reads what it is given.
type LoadOptions struct {
	// Config is the architecture of a bare weights file (model.safetensors
	// or a reference .pt): a preset name (trm-train keys lists them), a
	// model config JSON such as a checkpoint's arch.json, or a reference
	// YAML. A checkpoint directory carries its own and ignores it.
	Config string
	// DataDir is a dataset directory whose metadata fixes the
	// dataset-dependent sizes (seq_len, vocab_size,
	// num_puzzle_identifiers) when the config lacks them; a checkpoint
	// falls back to its own data_paths_test, then data_paths, when they
	// still exist.
	DataDir string
	// MaxBytes bounds the memory a .pt load allocates for tensor data
	// (0: the importer's default, 16 GiB). A checkpoint of S bytes of
	// weights needs at most 2*S.
	MaxBytes int64
	// AllowExpandedViews lets a .pt tensor materialise more elements than
	// its storage holds (torch.Tensor.expand's zero strides); off, such a
	// tensor is refused, since its copy can be far larger than the file.
	AllowExpandedViews bool
	// Arch, when set, is the architecture to read the weights as,
	// instead of Config or a checkpoint's own: for a caller that resolved
	// it itself, e.g. with key=value overrides as trm-train eval takes.
	// Its seq_len and vocab_size, when 0, still come from DataDir or the
	// checkpoint's dataset; the checkpoint is still verified.
	Arch *Arch
}

// Arch is a resolved architecture: the model config and its
// architecture selection (trm, hrm, ...), as a checkpoint's
// trainer.json holds them.
type Arch struct {
	// Config is the model config, with its sizes.
	Config engine.Config
	// Arch selects the architecture whose parameter table the weights
	// follow (an HRM's H_level keys, for one).
	Arch engine.ArchSettings
}

// Model is a trained model held in host memory: its architecture and its
// weights. It is immutable once loaded and safe to share; NewSolver
// builds the engine models that run it.
type Model struct {
	cfg    engine.Config
	arch   engine.ArchSettings
	params *engine.Params
	source string
}

// Load reads a model from path: a checkpoint directory written by
// trm-train (a run directory picks its best/ checkpoint, else the newest
// step_*; the checkpoint is verified against its manifest), a
// .safetensors weights file or a reference PyTorch .pt with
// opt.Config naming the architecture.
func Load(path string, opt LoadOptions) (*Model, error) {
	return LoadContext(context.Background(), path, opt)
}

// LoadContext is Load stopping when ctx ends (a large .pt takes seconds
// to read).
func LoadContext(ctx context.Context, path string, opt LoadOptions) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("trm: loading %w", err)
	}
	if st.IsDir() {
		return loadCheckpoint(path, opt)
	}
	if opt.Config == "" && opt.Arch == nil {
		return nil, fmt.Errorf("trm: %s: a weights file needs its architecture: set LoadOptions.Config to a preset, a model config JSON or a reference YAML", path)
	}
	var cfg engine.Config
	var arch engine.ArchSettings
	if opt.Arch != nil {
		cfg, arch = opt.Arch.Config, opt.Arch.Arch
	} else if cfg, arch, _, err = trainer.ResolveModelArch(opt.Config); err != nil {
		return nil, fmt.Errorf("trm: %s: %w", opt.Config, err)
	}
	var ts map[string]safetensors.Tensor
	switch {
	case strings.HasSuffix(path, ".pt") || strings.HasSuffix(path, ".pth"):
		if ts, err = importTorch(ctx, path, torchpt.Options{MaxBytes: opt.MaxBytes, AllowExpandedViews: opt.AllowExpandedViews}); err != nil {
			return nil, err
		}
	default:
		f, err := safetensors.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("trm: %w", err)
		}
		ts = f.Tensors
	}
	if opt.DataDir != "" && (opt.Arch == nil || cfg.SeqLen == 0 || cfg.VocabSize == 0) {
		if cfg, err = withData(cfg, []string{opt.DataDir}); err != nil {
			return nil, err
		}
	}
	cfg = sizesFromWeights(cfg, ts)
	return fromTensors(cfg, arch, ts, path)
}

// loadCheckpoint reads a checkpoint directory (or a run directory's best
// or newest checkpoint) after verifying its manifest.
func loadCheckpoint(path string, opt LoadOptions) (*Model, error) {
	dir, err := trainer.LatestCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("trm: %w", err)
	}
	if _, err := os.Stat(filepath.Join(path, "best", trainer.MetaFile)); err == nil && dir != path {
		dir = filepath.Join(path, "best")
	}
	if err := trainer.VerifyCheckpoint(dir); err != nil {
		return nil, fmt.Errorf("trm: %w", err)
	}
	meta, err := trainer.LoadMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("trm: %w", err)
	}
	cfg, arch := meta.Config.Arch, meta.Config.ArchSettings
	if opt.Arch != nil {
		cfg, arch = opt.Arch.Config, opt.Arch.Arch
	}
	var dirs []string
	switch {
	case opt.DataDir != "":
		dirs = []string{opt.DataDir}
	case len(meta.Config.DataPathsTest) > 0:
		dirs = meta.Config.DataPathsTest
	default:
		dirs = meta.Config.DataPaths
	}
	if cfg.SeqLen == 0 || cfg.VocabSize == 0 || (opt.DataDir != "" && opt.Arch == nil) {
		if cfg, err = withData(cfg, dirs); err != nil {
			return nil, err
		}
	}
	mf := filepath.Join(dir, trainer.ModelFile)
	f, err := safetensors.ReadFile(mf)
	if err != nil {
		return nil, fmt.Errorf("trm: %w", err)
	}
	return fromTensors(sizesFromWeights(cfg, f.Tensors), arch, f.Tensors, mf)
}

// withData fixes the dataset-dependent sizes from the first dataset
// directory's test (else train) metadata.
func withData(cfg engine.Config, dirs []string) (engine.Config, error) {
	if len(dirs) == 0 {
		return cfg, errors.New("trm: the model's config lacks seq_len and vocab_size and names no dataset: set LoadOptions.DataDir")
	}
	for _, split := range []string{"test", "train"} {
		if !data.Exists(dirs[0], split) {
			continue
		}
		ds, err := data.Open(split, dirs[0])
		if err != nil {
			return cfg, fmt.Errorf("trm: %w", err)
		}
		cfg = trainer.WithDataset(cfg, ds.Meta)
		ds.Close()
		return cfg, nil
	}
	return cfg, fmt.Errorf("trm: dataset %s: no test or train split (the model's sizes come from its metadata; set LoadOptions.DataDir)", dirs[0])
}

// sizesFromWeights takes the vocabulary and the number of puzzle
// identifiers from the weights' shapes where the config leaves them 0
// (a preset's dataset-dependent sizes).
func sizesFromWeights(cfg engine.Config, ts map[string]safetensors.Tensor) engine.Config {
	if t, ok := ts[engine.KeyEmbedTokens]; ok && len(t.Shape) == 2 && cfg.VocabSize == 0 {
		cfg.VocabSize = t.Shape[0]
	}
	if t, ok := ts[engine.KeyPuzzleEmb]; ok && len(t.Shape) == 2 && cfg.NumPuzzleIdentifiers == 0 {
		cfg.NumPuzzleIdentifiers = t.Shape[0]
	}
	return cfg
}

// fromTensors validates cfg and builds a Model from named weights.
func fromTensors(cfg engine.Config, arch engine.ArchSettings, ts map[string]safetensors.Tensor, name string) (*Model, error) {
	if cfg.SeqLen <= 0 {
		return nil, fmt.Errorf("trm: %s: the architecture's seq_len is unknown: set LoadOptions.DataDir to the model's dataset", name)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1
	}
	if err := engine.ValidateArch(cfg, arch); err != nil {
		return nil, fmt.Errorf("trm: %s: %w", name, err)
	}
	l, err := engine.NewArchLayout(cfg, arch)
	if err != nil {
		return nil, fmt.Errorf("trm: %s: %w", name, err)
	}
	p, err := engine.StateFromTensors(ts, l, name)
	if err != nil {
		return nil, fmt.Errorf("trm: %w", err)
	}
	return &Model{cfg: cfg, arch: arch, params: p, source: name}, nil
}

// importTorch reads a reference state dict as float32 tensors under the
// model's keys, as trm-train import does (cmd/trm-train/importcmd.go).
func importTorch(ctx context.Context, in string, o torchpt.Options) (map[string]safetensors.Tensor, error) {
	raw, _, err := torchpt.LoadContext(ctx, in, o)
	if err != nil {
		return nil, fmt.Errorf("trm: %w", err)
	}
	ts := map[string]safetensors.Tensor{}
	for k, t := range raw {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("trm: %s: converting to float32 interrupted: %w", in, err)
		}
		ck := torchpt.CanonicalKey(k)
		if _, dup := ts[ck]; dup {
			return nil, fmt.Errorf("trm: %s: keys %q and another both map to %q", in, k, ck)
		}
		v, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("trm: %s: key %s: %v", in, k, err)
		}
		ts[ck] = safetensors.FromFloat32(t.Shape, v)
	}
	return ts, nil
}

// Config returns the model's architecture, with the dataset-dependent
// sizes resolved; BatchSize is not meaningful (each Solver sets its own).
func (m *Model) Config() engine.Config { return m.cfg }

// Arch returns the model's architecture selection (trm, hrm, ...).
func (m *Model) Arch() engine.ArchSettings { return m.arch }

// Params returns the weights in the engine's layout, for a program that
// drives the engine itself (trm-train eval hands them to the trainer's
// evaluator). They are shared by every Solver of the model: read them,
// never change them (Clone first).
func (m *Model) Params() *engine.Params { return m.params }

// Source names the file the weights were read from.
func (m *Model) Source() string { return m.source }

// SeqLen is the number of tokens of one puzzle.
func (m *Model) SeqLen() int { return m.cfg.SeqLen }

// VocabSize is the number of token values, from 0.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// HaltMaxSteps is the most supervision steps a puzzle runs.
func (m *Model) HaltMaxSteps() int { return m.cfg.HaltMaxSteps }

// NumPuzzleIdentifiers is the number of rows of the puzzle embedding:
// a Puzzle's ID must be below it (0, the blank identifier, always is).
func (m *Model) NumPuzzleIdentifiers() int { return m.cfg.NumPuzzleIdentifiers }

// Codec returns the codec of puzzles of the model's shape: Sudoku, maze,
// ARC or raw tokens (puzzle.For).
func (m *Model) Codec() puzzle.Codec { return puzzle.For(m.cfg.SeqLen, m.cfg.VocabSize) }

// Save writes the model's weights as F32 safetensors under the
// reference's keys (a checkpoint's model.safetensors form), loadable with
// Load and the model's architecture as LoadOptions.Config.
func (m *Model) Save(path string) error {
	if err := engine.SaveState(path, m.params, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("trm: %w", err)
	}
	return nil
}
