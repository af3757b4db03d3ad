// Package engine holds the Tiny Recursive Model itself: its configuration,
// its parameter table and initialisation, and one ACT supervision step
// (forward, loss head, backward), written once against the small Backend
// interface. The CPU backend in engine/cpu is the reference every other
// backend is checked against.
//
// Dimension names are the same everywhere: B batch, L seq_len, P
// puzzle-embedding positions, S = P + L, H hidden_size, V vocab_size, nh
// num_heads, hd = H / nh, I = inter(H), It = inter(S).
package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// Positional encodings accepted by Config.PosEncodings.
const (
	PosRope    = "rope"
	PosLearned = "learned"
	PosNone    = "none"
)

// Loss types accepted by Config.LossType.
const (
	LossStablemax = "stablemax_cross_entropy"
	LossSoftmax   = "softmax_cross_entropy"
)

// Config is the model configuration with the reference's own key names, so
// that a reference config.json loads unchanged.
type Config struct {
	BatchSize            int     `json:"batch_size"`
	SeqLen               int     `json:"seq_len"`
	PuzzleEmbNdim        int     `json:"puzzle_emb_ndim"`
	NumPuzzleIdentifiers int     `json:"num_puzzle_identifiers"`
	VocabSize            int     `json:"vocab_size"`
	HCycles              int     `json:"H_cycles"`
	LCycles              int     `json:"L_cycles"`
	HLayers              int     `json:"H_layers"` // ignored, kept for config compatibility
	LLayers              int     `json:"L_layers"`
	HiddenSize           int     `json:"hidden_size"`
	Expansion            float64 `json:"expansion"`
	NumHeads             int     `json:"num_heads"`
	PosEncodings         string  `json:"pos_encodings"`
	RMSNormEps           float64 `json:"rms_norm_eps"`
	RopeTheta            float64 `json:"rope_theta"`
	HaltMaxSteps         int     `json:"halt_max_steps"`
	HaltExplorationProb  float64 `json:"halt_exploration_prob"`
	ForwardDtype         string  `json:"forward_dtype"`
	MLPT                 bool    `json:"mlp_t"`
	PuzzleEmbLen         int     `json:"puzzle_emb_len"`
	NoACTContinue        bool    `json:"no_ACT_continue"`
	LossType             string  `json:"loss_type"`
}

// DefaultConfig returns the reference architecture defaults (its
// config/arch/trm.yaml, puzzle_emb_ndim following hidden_size as its
// ${.hidden_size} says). The dataset fields (seq_len, vocab_size, num_puzzle_identifiers) are
// those of Sudoku-Extreme; a dataset's dataset.json overrides them.
// forward_dtype is float32: the CPU computes in float32 (the reference's
// bfloat16 is a GPU setting).
func DefaultConfig() Config {
	return Config{
		BatchSize:            768,
		SeqLen:               81,
		PuzzleEmbNdim:        512,
		NumPuzzleIdentifiers: 1,
		VocabSize:            11,
		HCycles:              3,
		LCycles:              6,
		HLayers:              0,
		LLayers:              2,
		HiddenSize:           512,
		Expansion:            4,
		NumHeads:             8,
		PosEncodings:         PosRope,
		RMSNormEps:           1e-5,
		RopeTheta:            10000,
		HaltMaxSteps:         16,
		HaltExplorationProb:  0.1,
		ForwardDtype:         "float32",
		MLPT:                 false,
		PuzzleEmbLen:         16,
		NoACTContinue:        true,
		LossType:             LossStablemax,
	}
}

// ParseConfig reads a JSON config over DefaultConfig: keys absent from the
// JSON keep their defaults, except that puzzle_emb_ndim follows a new
// hidden_size when the JSON does not give it and the base had them equal
// (the reference's puzzle_emb_ndim: ${.hidden_size}). Unknown keys are an error (a typo such as
// "hidden_sise" would otherwise silently train the default), and so is any
// invalid combination (see Validate). name is used in error messages.
func ParseConfig(data []byte, name string) (Config, error) {
	return ParseConfigOver(DefaultConfig(), data, name)
}

// ParseConfigOver is ParseConfig over a given base config instead of the
// defaults (a preset, say).
func ParseConfigOver(base Config, data []byte, name string) (Config, error) {
	cfg := base
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return cfg, fmt.Errorf("%s: invalid JSON at byte %d: %v", name, se.Offset, err)
		case errors.As(err, &te):
			return cfg, fmt.Errorf("%s: key %q: expected %v, got %s", name, te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return cfg, fmt.Errorf("%s: unknown config key %s", name, strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return cfg, fmt.Errorf("%s: %v", name, err)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return cfg, fmt.Errorf("%s: trailing data after the config object", name)
	}
	var given map[string]json.RawMessage
	if err := json.Unmarshal(data, &given); err == nil {
		if _, ok := given["puzzle_emb_ndim"]; !ok {
			cfg.FollowHiddenSize(base.HiddenSize)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// LoadConfig reads and validates a JSON config file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(data, path)
}

// Validate reports every problem with the config in one error that names
// the offending keys. It rejects the combinations the reference crashes on
// or silently builds differently, and sizes above their documented limits
// (see Limits), so no later allocation can be unbounded.
func (c Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	positive := func(key string, v int) {
		if v <= 0 {
			bad("%s must be positive, got %d", key, v)
		}
	}
	positive("batch_size", c.BatchSize)
	positive("seq_len", c.SeqLen)
	positive("vocab_size", c.VocabSize)
	positive("H_cycles", c.HCycles)
	positive("L_cycles", c.LCycles)
	positive("L_layers", c.LLayers)
	positive("hidden_size", c.HiddenSize)
	positive("num_heads", c.NumHeads)
	positive("halt_max_steps", c.HaltMaxSteps)
	if c.HLayers < 0 {
		bad("H_layers must not be negative, got %d", c.HLayers)
	}
	if c.PuzzleEmbNdim < 0 {
		bad("puzzle_emb_ndim must not be negative, got %d", c.PuzzleEmbNdim)
	}
	if c.PuzzleEmbLen < 0 {
		bad("puzzle_emb_len must not be negative, got %d", c.PuzzleEmbLen)
	}
	if c.PuzzleEmbNdim == 0 && c.PuzzleEmbLen != 0 {
		bad("puzzle_emb_len is %d but puzzle_emb_ndim is 0: without a puzzle embedding the carry would be longer than the input; set puzzle_emb_len to 0", c.PuzzleEmbLen)
	}
	if c.PuzzleEmbNdim > 0 && c.HiddenSize > 0 && c.PuzzleEmbNdim > c.PuzzleLen()*c.HiddenSize {
		bad("puzzle_emb_ndim %d does not fit in puzzle_emb_len %d positions of hidden_size %d", c.PuzzleEmbNdim, c.PuzzleLen(), c.HiddenSize)
	}
	if c.PuzzleEmbNdim > 0 && c.NumPuzzleIdentifiers <= 0 {
		bad("num_puzzle_identifiers must be positive with a puzzle embedding, got %d", c.NumPuzzleIdentifiers)
	}
	if c.NumPuzzleIdentifiers < 0 {
		bad("num_puzzle_identifiers must not be negative, got %d", c.NumPuzzleIdentifiers)
	}
	if c.NumHeads > 0 && c.HiddenSize%c.NumHeads != 0 {
		bad("hidden_size %d is not divisible by num_heads %d", c.HiddenSize, c.NumHeads)
	}
	switch c.PosEncodings {
	case PosRope:
		if c.NumHeads > 0 && c.HiddenSize%c.NumHeads == 0 && (c.HiddenSize/c.NumHeads)%2 != 0 {
			bad("rope needs an even head size, got hidden_size/num_heads = %d", c.HiddenSize/c.NumHeads)
		}
		if !(c.RopeTheta > 0) {
			bad("rope_theta must be positive, got %g", c.RopeTheta)
		}
	case PosLearned, PosNone:
	default:
		bad("unknown pos_encodings %q (want rope, learned or none)", c.PosEncodings)
	}
	if !(c.Expansion > 0) || math.IsInf(c.Expansion, 0) {
		bad("expansion must be positive, got %g", c.Expansion)
	}
	if !(c.RMSNormEps > 0) {
		bad("rms_norm_eps must be positive, got %g", c.RMSNormEps)
	}
	if !(c.HaltExplorationProb >= 0 && c.HaltExplorationProb <= 1) {
		bad("halt_exploration_prob must be in [0, 1], got %g", c.HaltExplorationProb)
	}
	switch c.ForwardDtype {
	case "float32", "bfloat16":
	default:
		bad("unknown forward_dtype %q (want float32 or bfloat16)", c.ForwardDtype)
	}
	switch c.LossType {
	case LossStablemax, LossSoftmax:
	default:
		bad("unknown loss_type %q (want %s or %s)", c.LossType, LossStablemax, LossSoftmax)
	}
	c.checkBounds(bad)
	if len(errs) > 0 {
		return errors.New("invalid config: " + strings.Join(errs, "; "))
	}
	return nil
}

// FollowHiddenSize applies the reference's puzzle_emb_ndim:
// ${.hidden_size} after hidden_size changed from old: a puzzle_emb_ndim
// that equalled the old hidden_size takes the new one. One that differed
// was set on purpose (0 for no puzzle embedding, say) and is kept.
func (c *Config) FollowHiddenSize(old int) {
	if c.PuzzleEmbNdim == old && c.PuzzleEmbNdim != 0 {
		c.PuzzleEmbNdim = c.HiddenSize
	}
}

// PuzzleLen is P, the number of sequence positions the puzzle embedding
// occupies: puzzle_emb_len, or ceil(puzzle_emb_ndim / hidden_size) when that
// is 0 (0 without a puzzle embedding).
func (c Config) PuzzleLen() int {
	if c.PuzzleEmbLen != 0 {
		return c.PuzzleEmbLen
	}
	if c.HiddenSize <= 0 {
		return 0
	}
	return (c.PuzzleEmbNdim + c.HiddenSize - 1) / c.HiddenSize
}

// SeqTotal is S = P + L, the length of the carried state.
func (c Config) SeqTotal() int { return c.PuzzleLen() + c.SeqLen }

// HeadDim is hd = hidden_size / num_heads.
func (c Config) HeadDim() int { return c.HiddenSize / c.NumHeads }

// Inter is the SwiGLU intermediate width for input width h:
// round_up_to_multiple_of_256(round_half_even(expansion * h * 2 / 3)).
func (c Config) Inter(h int) int {
	v := int(math.RoundToEven(c.Expansion * float64(h) * 2 / 3))
	return (v + 255) / 256 * 256
}
