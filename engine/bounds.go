package engine

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
)

// Limit is the documented upper bound of one size key of the model
// configuration. The bounds are far above every paper configuration (the
// largest uses hidden_size 512, seq_len 900, 16 puzzle positions) and
// exist so that a typo such as puzzle_emb_len=1e9 is refused with a message
// instead of allocating without bound or overflowing a size.
type Limit struct {
	Key string  // the configuration key, as in a config file
	Max float64 // the largest accepted value
	Why string  // what the bound protects, one line
}

// Upper bounds of the model's size keys. They are checked by Validate, so
// every path that builds a model (training, evaluation, import, params)
// refuses a configuration beyond them before allocating anything.
const (
	MaxBatchSize            = 1 << 16 // batch slots of one model
	MaxSeqLen               = 1 << 14 // tokens per example (ARC grids are 900)
	MaxVocabSize            = 1 << 20
	MaxNumPuzzleIdentifiers = 1 << 26 // rows of the puzzle table (ARC with 1000 augmentations: about 1e6)
	MaxHiddenSize           = 8192
	MaxNumHeads             = 256
	MaxExpansion            = 64
	MaxPuzzleEmbLen         = 1024
	MaxPuzzleEmbNdim        = 1 << 16
	MaxCycles               = 64 // H_cycles and L_cycles
	MaxLayers               = 64 // L_layers and H_layers
	MaxHaltMaxSteps         = 1024
	// MaxTrainedParams bounds the trained parameters (the flat buffer the
	// optimizer updates): 2^31 float32 values are 8 GiB, 32 GiB with
	// their gradient and the two Adam moments.
	MaxTrainedParams = 1 << 31
	// MaxPuzzleTableElements bounds num_puzzle_identifiers x
	// puzzle_emb_ndim: 2^32 float32 values are 16 GiB.
	MaxPuzzleTableElements = 1 << 32
)

// Limits lists the upper bound of every size key of the model, in the
// order Validate checks them, and the two products bounded on top of them.
func Limits() []Limit {
	return []Limit{
		{"batch_size", MaxBatchSize, "batch slots of one model (global_batch_size / replicas)"},
		{"seq_len", MaxSeqLen, "tokens per example; activations grow with it"},
		{"vocab_size", MaxVocabSize, "rows of the token embedding and the output head"},
		{"num_puzzle_identifiers", MaxNumPuzzleIdentifiers, "rows of the puzzle-embedding table"},
		{"hidden_size", MaxHiddenSize, "width of every activation and weight"},
		{"num_heads", MaxNumHeads, "attention heads"},
		{"expansion", MaxExpansion, "SwiGLU width as a multiple of the input width"},
		{"puzzle_emb_len", MaxPuzzleEmbLen, "sequence positions of the puzzle embedding"},
		{"puzzle_emb_ndim", MaxPuzzleEmbNdim, "width of a puzzle-embedding row"},
		{"H_cycles", MaxCycles, "outer recursion cycles per supervision step"},
		{"L_cycles", MaxCycles, "inner recursion cycles; one set of saved activations each"},
		{"L_layers", MaxLayers, "blocks of the network"},
		{"H_layers", MaxLayers, "kept for config compatibility (not used)"},
		{"halt_max_steps", MaxHaltMaxSteps, "supervision steps per example; evaluation runs this many per batch"},
		{"trained parameters", MaxTrainedParams, "product of the sizes above (lower hidden_size, expansion or L_layers)"},
		{"puzzle table elements", MaxPuzzleTableElements, "num_puzzle_identifiers x puzzle_emb_ndim"},
	}
}

// sizeValues returns the value of every key of Limits that is a key of
// the config, for the bound checks of Validate.
func (c Config) sizeValues() map[string]float64 {
	return map[string]float64{
		"batch_size": float64(c.BatchSize), "seq_len": float64(c.SeqLen), "vocab_size": float64(c.VocabSize),
		"num_puzzle_identifiers": float64(c.NumPuzzleIdentifiers), "hidden_size": float64(c.HiddenSize),
		"num_heads": float64(c.NumHeads), "expansion": c.Expansion, "puzzle_emb_len": float64(c.PuzzleEmbLen),
		"puzzle_emb_ndim": float64(c.PuzzleEmbNdim), "H_cycles": float64(c.HCycles), "L_cycles": float64(c.LCycles),
		"L_layers": float64(c.LLayers), "H_layers": float64(c.HLayers), "halt_max_steps": float64(c.HaltMaxSteps),
	}
}

// checkBounds reports every size key above its limit, then, when all are
// within them (so that no product can overflow), the trained-parameter
// count and the puzzle table against theirs.
func (c Config) checkBounds(bad func(string, ...any)) {
	vals := c.sizeValues()
	over := false
	for _, l := range Limits() {
		v, ok := vals[l.Key]
		if ok && v > l.Max {
			bad("%s %s is above the limit %s (%s)", l.Key, num(v), num(l.Max), l.Why)
			over = true
		}
	}
	if over || c.HiddenSize <= 0 || c.SeqLen < 0 || c.VocabSize < 0 || c.LLayers < 0 || c.PuzzleEmbLen < 0 ||
		c.PuzzleEmbNdim < 0 || c.NumPuzzleIdentifiers < 0 || !(c.Expansion > 0) {
		return
	}
	l := NewLayout(c)
	if l.NumTrained > MaxTrainedParams {
		bad("the model has %d trained parameters, above the limit %d: lower hidden_size, expansion or L_layers", l.NumTrained, int64(MaxTrainedParams))
	}
	if l.NumPuzzle > MaxPuzzleTableElements {
		bad("the puzzle table has %d elements (num_puzzle_identifiers %d x puzzle_emb_ndim %d), above the limit %d", l.NumPuzzle, c.NumPuzzleIdentifiers, c.PuzzleEmbNdim, int64(MaxPuzzleTableElements))
	}
}

// num formats a size without an exponent.
func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Memory is what one Model of a config allocates on its backend, in bytes,
// by part. EstimateMemory computes it from the config alone, so a caller
// can compare it with the memory available before allocating anything.
type Memory struct {
	// Weights: the trained parameters, the puzzle table, H_init and
	// L_init, and the rope tables.
	Weights int64
	// Gradients: the trained-parameter gradient and the puzzle-embedding
	// gradient rows of a batch (backward only).
	Gradients int64
	// Activations: every buffer sized by the batch (inputs, the input
	// injection, the saved activations of the differentiated calls, the
	// heads and loss, and the backward workspace).
	Activations int64
	// Carry: one recurrent carry (z_H, z_L, the ACT state and the current
	// batch), as Model.NewCarry allocates it.
	Carry int64
}

// Total is the sum of the parts.
func (m Memory) Total() int64 { return m.Weights + m.Gradients + m.Activations + m.Carry }

// EstimateMemory returns the bytes NewModel(c, be, Options{Backward:
// backward}) and one NewCarry allocate through Backend.Alloc; a backend's
// own workspace (GEMM packing, library handles) is not included. The
// formula, with B batch_size, L seq_len, P puzzle positions, S = P + L,
// H hidden_size, V vocab_size, nh num_heads, I = inter(H), It = inter(S),
// N = L_layers and C = L_cycles + 1 differentiated network calls, every
// buffer float32 (4 bytes) except three float64 loss sums per example:
//
//	weights     4 (trained + puzzle table + 2H) + 8 S (H/nh) with rope
//	gradients   4 trained + 4 B puzzle_emb_ndim
//	activations 4 (6 BSH + BLH + BLV + 3 BL + 11 B + N act) + 24 B
//	            with backward + 4 (C (BSH + N act) + BLV + 2 B + 10 BSH + 3 BSI + mix)
//	act         one call of one block: 2 BSH + 2 BS + 3 BSI + mix, plus
//	            BSH + B nh S for attention or 2 BHS + BH for mlp_t
//	mix         3 BSH for attention, 3 B H It for mlp_t
//	carry       4 (2 BSH + 2 BL + 3 B)
//
// The activations dominate: they grow with B, S, H, L_layers and
// L_cycles. An error reports an invalid config (see Validate) or sizes
// that overflow 64-bit arithmetic.
//
// This is the float32 figure; on a backend that stores some activations
// in bf16 (StorageOf) EstimateStorageMemory gives the exact one, which
// this bounds from above.
func EstimateMemory(c Config, backward bool) (Memory, error) {
	return EstimateArchMemory(c, ArchSettings{}, backward)
}

// Storage is the element types a model gives its activation buffers on a
// backend (BF16Storage, BF16Activations): Saved, the activations only
// GEMMs read that the differentiated calls keep for the backward pass
// (act, actT); Work, the per-call workspaces only GEMMs read (the
// gradient-free calls' act and actT, dgu, dguT); Act, the activations
// with elementwise readers (BF16Activations lists them). All F32, or BF16.
type Storage struct {
	Saved, Work, Act DType
}

// StorageOf returns the element types a model on be gives its buffers.
func StorageOf(be Backend) Storage {
	if StoresBF16Activations(be) {
		return Storage{Saved: BF16, Work: BF16, Act: BF16}
	}
	saved, work := bf16DTypes(be)
	return Storage{Saved: saved, Work: work, Act: F32}
}

// size is the bytes of one element of dt.
func (dt DType) size() int64 {
	switch dt {
	case F64:
		return 8
	case BF16:
		return 2
	}
	return 4
}

// EstimateArchMemory is EstimateMemory for the architecture of s: the
// bytes NewModel(c, be, Options{Backward: backward, Arch: s}) and one
// NewCarry allocate. What the TRM's formula (EstimateMemory) counts per
// state and per call follows the architecture: with ns carried states,
// 2 BSH (working carry, carry) and, with backward, one BSH gradient per
// state instead of two; one activation set of the deepest network for the
// gradient-free calls, and per differentiated call its network's layers;
// one more BSH where a call sums several states (trm_hier6).
func EstimateArchMemory(c Config, s ArchSettings, backward bool) (Memory, error) {
	return EstimateStorageMemory(c, s, backward, Storage{})
}

// EstimateStorageMemory is EstimateArchMemory for a model whose buffers
// have the element types st (StorageOf its backend): the bytes it
// allocates, exactly.
func EstimateStorageMemory(c Config, s ArchSettings, backward bool, st Storage) (Memory, error) {
	if err := ValidateArch(c, s); err != nil {
		return Memory{}, err
	}
	d, err := s.def()
	if err != nil {
		return Memory{}, err
	}
	var ov bool
	mul := func(xs ...int64) int64 {
		r := int64(1)
		for _, x := range xs {
			hi, lo := bits.Mul64(uint64(r), uint64(x))
			if hi != 0 || lo > math.MaxInt64 {
				ov = true
				return 0
			}
			r = int64(lo)
		}
		return r
	}
	add := func(xs ...int64) int64 {
		var r int64
		for _, x := range xs {
			if r > math.MaxInt64-x {
				ov = true
				return 0
			}
			r += x
		}
		return r
	}
	l := newLayout(d, c)
	B, L, S, H, V := int64(c.BatchSize), int64(c.SeqLen), int64(c.SeqTotal()), int64(c.HiddenSize), int64(c.VocabSize)
	I, It, NH := int64(c.Inter(c.HiddenSize)), int64(c.Inter(c.SeqTotal())), int64(c.NumHeads)
	NS := int64(len(d.states))
	BSH := mul(B, S, H)
	calls, gradFrom := d.schedule(c)
	layers := d.netLayers(c)
	var maxLayers int64
	for _, n := range layers {
		maxLayers = max(maxLayers, int64(n))
	}

	var m Memory
	weights := add(int64(l.NumTrained), int64(l.NumPuzzle), int64(l.NumBuffer))
	if c.PosEncodings == PosRope {
		weights = add(weights, mul(2, S, int64(c.HeadDim())))
	}
	m.Weights = mul(4, weights)

	// One layer's activations of one call (newActs), in bytes, its
	// GEMM-only buffers (act, actT) of type gemm.
	ab, f4 := st.Act.size(), int64(4)
	act := func(gemm DType) int64 {
		gb := gemm.size()
		var a int64
		if c.MLPT {
			a = add(mul(ab, 2, B, H, S), mul(ab, 2, B, H, It), mul(gb, B, H, It), mul(f4, B, H))
		} else {
			a = add(mul(ab, 4, BSH), mul(f4, B, NH, S))
		}
		return add(a, mul(ab, 2, BSH), mul(f4, 2, B, S), mul(ab, 2, B, S, I), mul(gb, B, S, I))
	}

	var sum int64
	for _, cl := range calls {
		if len(cl.hidden) > 1 {
			sum = BSH
			break
		}
	}
	f32 := add(B, mul(2, B, L), mul(2, B), // ones, batch inputs and labels, pids, min steps
		mul(2, BSH), sum, // x, inj, hidden sum
		mul(NS, BSH), mul(B, L, H), mul(B, L, V), mul(4, B), // working carry, hL, logits, q and next q
		mul(B, L), mul(4, B)) // loss: preds, q target, n valid, n correct, seq correct
	f64 := mul(3, B)                                            // loss sums
	bytes := add(mul(ab, 2, BSH), mul(maxLayers, act(st.Work))) // no-grad net input, scratch; no-grad activations
	if backward {
		m.Gradients = mul(4, add(int64(l.NumTrained), mul(B, int64(c.PuzzleEmbNdim))))
		for _, cl := range calls[gradFrom:] {
			bytes = add(bytes, mul(ab, BSH), mul(int64(layers[cl.net]), act(st.Saved))) // differentiated call: net input and activations
		}
		// logits' and q's gradients, dZ, the eight BSH workspaces, dact;
		// dgu (and dguT for mlp_t) are workspaces only GEMMs read.
		f32 = add(f32, mul(B, L, V), mul(2, B), mul(NS, BSH), mul(8, BSH), mul(B, S, I))
		bytes = add(bytes, mul(st.Work.size(), 2, B, S, I))
		if c.MLPT {
			f32 = add(f32, mul(B, H, It))
			bytes = add(bytes, mul(st.Work.size(), 2, B, H, It))
		} else {
			f32 = add(f32, mul(3, BSH))
		}
	}
	m.Activations = add(mul(4, f32), mul(8, f64), bytes)
	m.Carry = mul(4, add(mul(NS, BSH), mul(2, B, L), mul(3, B)))
	if ov {
		return Memory{}, fmt.Errorf("the memory of batch %d, seq %d, hidden %d overflows 64-bit arithmetic", c.BatchSize, c.SeqTotal(), c.HiddenSize)
	}
	return m, nil
}
