package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// An architecture is described here once, as data, and executed by the one
// forward and backward pass of model.go. What differs between the
// reference's five architectures is:
//
//   - its networks: each a stack of the same post-norm block (attention or
//     mlp_t, then a SwiGLU MLP), under a key prefix such as inner.L_level;
//   - its carry: the latent states [B,S,H] an ACT step carries over, each
//     with an init buffer that a fresh example starts from;
//   - its schedule: the sequence of network calls of one ACT step, each
//     writing one state from the sum of other states and, optionally, the
//     input embedding x; the calls from gradFrom on carry gradients, the
//     earlier ones are constants for the backward pass;
//   - its heads' state (the LM head and the Q head read one state) and its
//     halting rule and continue target.
//
// docs/architectures.md describes each architecture in these terms.

// call is one network call of a schedule:
// state[dst] = net(sum(hidden) + (sum(inject) + x)), where each sum runs
// left to right and the parenthesised injection is formed first, as the
// reference does. Without inject terms and x the network's input is the
// hidden sum alone.
type call struct {
	net    int   // index into archDef.nets
	dst    int   // state written
	hidden []int // states summed into the network's residual input
	inject []int // states summed into the injection
	x      bool  // the injection ends with the input embedding x
}

// haltRule says how a training step halts an example before halt_max_steps.
type haltRule int

const (
	haltTRM       haltRule = iota // q_halt > 0 with no_ACT_continue, else q_halt > q_continue
	haltQContinue                 // q_halt > q_continue
)

// archDef is one architecture.
type archDef struct {
	group  string
	states []string // carry field names, e.g. z_H, z_L
	inits  []string // init buffer key of each state
	nets   []string // network key prefixes, in the reference's parameter order
	head   int      // the state the LM head and the Q head read
	// schedule returns one ACT step's calls and the index of the first
	// differentiated call.
	schedule func(c Config) (calls []call, gradFrom int)
	halt     haltRule
	// target says whether a training step computes the q_continue target
	// from a second, gradient-free forward.
	target func(c Config) bool
	// check rejects the config combinations that make no sense for the
	// architecture, naming the key.
	check func(c Config, s ArchSettings, bad func(string, ...any))
	// netLayers is the number of blocks of each network.
	netLayers func(c Config) []int
	// puzzleLenKey says whether the architecture has the puzzle_emb_len key
	// (the others always use ceil(puzzle_emb_ndim / hidden_size)).
	puzzleLenKey bool
}

// ArchSettings select the architecture of a model and hold the keys that
// only one architecture has. The zero value is the TRM.
type ArchSettings struct {
	// Name is the group (trm, hrm, trm_singlez, trm_hier6,
	// transformers_baseline) or the reference's model class name; empty
	// is trm.
	Name string
	// ACTDisabled is transformers_baseline's act_enabled: false: training
	// halts only at halt_max_steps.
	ACTDisabled bool
	// ACTInference is transformers_baseline's act_inference: true:
	// evaluation halts on the Q head too (without exploration).
	ACTInference bool
}

// Group returns the architecture's group name (trm for an empty Name).
func (s ArchSettings) Group() (string, error) {
	if strings.TrimSpace(s.Name) == "" {
		return "trm", nil
	}
	a, err := FindArch(s.Name)
	if err != nil {
		return "", err
	}
	return a.Group, nil
}

func (s ArchSettings) def() (*archDef, error) {
	g, err := s.Group()
	if err != nil {
		return nil, err
	}
	d, ok := archDefs[g]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrArchNotSupported, g)
	}
	return d, nil
}

// hier6Latents is the number of low-level latents of trm_hier6.
const hier6Latents = 6

var archDefs = map[string]*archDef{
	"trm": {
		group: "trm", states: []string{"z_H", "z_L"}, inits: []string{KeyHInit, KeyLInit},
		nets: []string{"inner.L_level"}, head: 0, halt: haltTRM,
		schedule: func(c Config) ([]call, int) {
			var cs []call
			for range c.HCycles {
				for range c.LCycles {
					cs = append(cs, call{net: 0, dst: 1, hidden: []int{1}, inject: []int{0}, x: true})
				}
				cs = append(cs, call{net: 0, dst: 0, hidden: []int{0}, inject: []int{1}})
			}
			return cs, len(cs) - (c.LCycles + 1)
		},
		target:       func(c Config) bool { return !c.NoACTContinue },
		check:        func(Config, ArchSettings, func(string, ...any)) {},
		netLayers:    func(c Config) []int { return []int{c.LLayers} },
		puzzleLenKey: true,
	},
	"hrm": {
		group: "hrm", states: []string{"z_H", "z_L"}, inits: []string{KeyHInit, KeyLInit},
		nets: []string{"inner.H_level", "inner.L_level"}, head: 0, halt: haltQContinue,
		schedule: func(c Config) ([]call, int) {
			var cs []call
			for range c.HCycles {
				for range c.LCycles {
					cs = append(cs, call{net: 1, dst: 1, hidden: []int{1}, inject: []int{0}, x: true})
				}
				cs = append(cs, call{net: 0, dst: 0, hidden: []int{0}, inject: []int{1}})
			}
			// The one-step gradient: only the last L and H calls.
			return cs, len(cs) - 2
		},
		target: func(Config) bool { return true },
		check: func(c Config, _ ArchSettings, bad func(string, ...any)) {
			if c.HLayers <= 0 {
				bad("H_layers must be positive for hrm, got %d", c.HLayers)
			}
			if c.NoACTContinue {
				bad("no_ACT_continue is not a key of hrm (its halting always learns q_continue): set it false")
			}
		},
		netLayers: func(c Config) []int { return []int{c.HLayers, c.LLayers} },
	},
	"trm_singlez": {
		group: "trm_singlez", states: []string{"z_L"}, inits: []string{KeyLInit},
		nets: []string{"inner.L_level"}, head: 0, halt: haltTRM,
		schedule: func(c Config) ([]call, int) {
			var cs []call
			for range c.HCycles {
				for range c.LCycles {
					cs = append(cs, call{net: 0, dst: 0, hidden: []int{0}, x: true})
				}
				cs = append(cs, call{net: 0, dst: 0, hidden: []int{0}})
			}
			return cs, len(cs) - (c.LCycles + 1)
		},
		target:       func(c Config) bool { return !c.NoACTContinue },
		check:        func(Config, ArchSettings, func(string, ...any)) {},
		netLayers:    func(c Config) []int { return []int{c.LLayers} },
		puzzleLenKey: true,
	},
	"trm_hier6": {
		group: "trm_hier6", states: hier6States(), inits: hier6Inits(),
		nets: []string{"inner.L_level"}, head: 0, halt: haltTRM,
		schedule: func(c Config) ([]call, int) {
			lat := []int{1, 2, 3, 4, 5, 6}
			var cs []call
			for range c.HCycles {
				for l := range c.LCycles {
					// L_cycles above six cycle through the six latents again
					// (the reference indexes past its list there).
					cs = append(cs, call{net: 0, dst: 1 + l%hier6Latents, hidden: lat, inject: []int{0}, x: true})
				}
				cs = append(cs, call{net: 0, dst: 0, hidden: []int{0}, inject: lat})
			}
			return cs, len(cs) - (c.LCycles + 1)
		},
		target:       func(c Config) bool { return !c.NoACTContinue },
		check:        func(Config, ArchSettings, func(string, ...any)) {},
		netLayers:    func(c Config) []int { return []int{c.LLayers} },
		puzzleLenKey: true,
	},
	"transformers_baseline": {
		group: "transformers_baseline", states: []string{"z_H"}, inits: []string{KeyHInit},
		nets: []string{"inner.H_level"}, head: 0, halt: haltQContinue,
		schedule: func(Config) ([]call, int) {
			return []call{{net: 0, dst: 0, hidden: []int{0}, x: true}}, 0
		},
		target: func(Config) bool { return false },
		check: func(c Config, _ ArchSettings, bad func(string, ...any)) {
			if c.HLayers <= 0 {
				bad("H_layers must be positive for transformers_baseline, got %d", c.HLayers)
			}
			if c.MLPT {
				bad("mlp_t is not available in transformers_baseline (its blocks always use attention)")
			}
			if c.NoACTContinue {
				bad("no_ACT_continue is not a key of transformers_baseline (it halts on q_halt > q_continue): set it false")
			}
		},
		netLayers: func(c Config) []int { return []int{c.HLayers} },
	},
}

func hier6States() []string {
	s := []string{"z_H"}
	for i := 1; i <= hier6Latents; i++ {
		s = append(s, "z_L"+strconv.Itoa(i))
	}
	return s
}

func hier6Inits() []string {
	s := []string{KeyHInit}
	for i := 1; i <= hier6Latents; i++ {
		s = append(s, "inner.L"+strconv.Itoa(i)+"_init")
	}
	return s
}

// ValidateArch checks c for the architecture of s: Validate's checks plus
// the architecture's own (puzzle_emb_len only where the architecture has
// the key, H_layers where it has an H network, no mlp_t in the transformer
// baseline).
func ValidateArch(c Config, s ArchSettings) error {
	d, err := s.def()
	if err != nil {
		return err
	}
	var errs []string
	if err := c.Validate(); err != nil {
		errs = append(errs, strings.TrimPrefix(err.Error(), "invalid config: "))
	}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !d.puzzleLenKey && c.PuzzleEmbLen != 0 {
		bad("puzzle_emb_len is not a key of %s (it uses ceil(puzzle_emb_ndim / hidden_size) positions): set it to 0", d.group)
	}
	if d.group != "transformers_baseline" && (s.ACTDisabled || s.ACTInference) {
		bad("act_enabled and act_inference are keys of transformers_baseline only, not of %s", d.group)
	}
	d.check(c, s, bad)
	if len(errs) > 0 {
		return errors.New("invalid config: " + strings.Join(errs, "; "))
	}
	return nil
}

// CarryFields returns the names of the carry's states for the
// architecture of s, in the order the model keeps them (the reference's
// inner-carry field names).
func CarryFields(s ArchSettings) ([]string, error) {
	d, err := s.def()
	if err != nil {
		return nil, err
	}
	return append([]string(nil), d.states...), nil
}

// ArchMatmulFLOPs is MatmulFLOPs for the architecture of s: the GEMM and
// attention FLOPs of one ACT step through its own schedule, each call
// counting the blocks of its network, and with backward the two products
// per GEMM and the four attention products of the differentiated calls,
// plus the gradient-free second forward of a training step where the
// architecture computes the q_continue target from one. For the TRM with
// no_ACT_continue it equals MatmulFLOPs.
func ArchMatmulFLOPs(c Config, s ArchSettings, backward bool) (float64, error) {
	d, err := s.def()
	if err != nil {
		return 0, err
	}
	B, L, S, H, V := float64(c.BatchSize), float64(c.SeqLen), float64(c.SeqTotal()), float64(c.HiddenSize), float64(c.VocabSize)
	I := float64(c.Inter(c.HiddenSize))
	BS := B * S
	mlp := 2*BS*H*2*I + 2*BS*I*H
	var mix, attn float64
	if c.MLPT {
		It := float64(c.Inter(c.SeqTotal()))
		mix = 2*B*H*S*2*It + 2*B*H*It*S
	} else {
		mix = 2*BS*H*3*H + 2*BS*H*H
		attn = 4 * B * S * S * H
	}
	layers := d.netLayers(c)
	calls, gradFrom := d.schedule(c)
	var fwd, bwd float64
	for k, cl := range calls {
		n := float64(layers[cl.net])
		fwd += n * (mlp + mix + attn)
		if k >= gradFrom {
			bwd += n * (2*(mlp+mix) + 2*attn)
		}
	}
	heads := 2*B*L*H*V + 2*B*H*2
	total := fwd + heads
	if backward {
		total += bwd + 2*heads
		if d.target(c) {
			total += fwd + heads
		}
	}
	return total, nil
}
