package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Kind says which store a parameter table entry lives in and what trains it.
type Kind int

const (
	// Trained entries live in the one flat buffer that AdamATan2 updates,
	// that gradients mirror and that data parallelism all-reduces.
	Trained Kind = iota
	// PuzzleEmb is the per-puzzle embedding table: trained by sign-SGD on
	// the rows a batch touches, never densely, so it is kept apart (an ARC
	// table has hundreds of thousands of rows).
	PuzzleEmb
	// Buffer entries (H_init, L_init) are state that is never trained.
	Buffer
)

// Init names an initialisation rule of the reference (truncated normals as in TruncNormal, LeCun for linear layers, zeros for the Q head weight and the puzzle table, -5 for the Q head bias).
type Init int

const (
	InitZeros     Init = iota // all zeros
	InitTruncNorm             // truncated normal with the entry's Std
	InitLeCun                 // truncated normal with std 1/sqrt(in_features)
	InitConst                 // every element equals the entry's Value
)

// Entry is one named tensor of the model state.
type Entry struct {
	Key    string // the reference's state-dict key, e.g. inner.lm_head.weight
	Shape  []int
	Kind   Kind
	Offset int // start in its store (the flat buffer for Trained entries)
	Init   Init
	Std    float64 // for InitTruncNorm
	Value  float64 // for InitConst
}

// Size is the number of elements of the entry.
func (e Entry) Size() int {
	n := 1
	for _, d := range e.Shape {
		n *= d
	}
	return n
}

// Layout is the parameter table of a config: every key of the architecture (docs/architectures.md)
// with its shape and place, in the reference's parameter order.
type Layout struct {
	Entries     []Entry
	index       map[string]int
	NumTrained  int // length of the flat trained buffer
	NumPuzzle   int // elements of the puzzle embedding table (0 if none)
	NumBuffer   int // elements of the buffers (one init per carried state: H_init then L_init for the TRM)
	puzzleEntry int // index of the puzzle entry or -1
}

// Layer keys, relative to "inner.L_level.layers.{i}.".
const (
	keyQKV      = "self_attn.qkv_proj.weight"
	keyO        = "self_attn.o_proj.weight"
	keyMLPTUp   = "mlp_t.gate_up_proj.weight"
	keyMLPTDown = "mlp_t.down_proj.weight"
	keyUp       = "mlp.gate_up_proj.weight"
	keyDown     = "mlp.down_proj.weight"
)

// Top-level keys.
const (
	KeyEmbedTokens = "inner.embed_tokens.embedding_weight"
	KeyEmbedPos    = "inner.embed_pos.embedding_weight"
	KeyPuzzleEmb   = "inner.puzzle_emb.weights"
	KeyLMHead      = "inner.lm_head.weight"
	KeyQHeadW      = "inner.q_head.weight"
	KeyQHeadB      = "inner.q_head.bias"
	KeyHInit       = "inner.H_init"
	KeyLInit       = "inner.L_init"
)

// LayerKey returns the full key of a per-layer parameter of the TRM's one
// network, inner.L_level.
func LayerKey(layer int, name string) string {
	return NetLayerKey("inner.L_level", layer, name)
}

// NetLayerKey returns the full key of a per-layer parameter of the network
// under prefix (inner.H_level or inner.L_level).
func NetLayerKey(prefix string, layer int, name string) string {
	return fmt.Sprintf("%s.layers.%d.%s", prefix, layer, name)
}

// NewLayout builds the parameter table of a validated TRM config.
func NewLayout(c Config) *Layout {
	return newLayout(archDefs["trm"], c)
}

// NewArchLayout builds the parameter table of a config for the
// architecture of s, checking the config first.
func NewArchLayout(c Config, s ArchSettings) (*Layout, error) {
	if err := ValidateArch(c, s); err != nil {
		return nil, err
	}
	d, err := s.def()
	if err != nil {
		return nil, err
	}
	return newLayout(d, c), nil
}

func newLayout(d *archDef, c Config) *Layout {
	l := &Layout{index: map[string]int{}, puzzleEntry: -1}
	H, V, S := c.HiddenSize, c.VocabSize, c.SeqTotal()
	embStd := 1 / math.Sqrt(float64(H))
	add := func(e Entry) {
		switch e.Kind {
		case Trained:
			e.Offset = l.NumTrained
			l.NumTrained += e.Size()
		case PuzzleEmb:
			l.puzzleEntry = len(l.Entries)
			l.NumPuzzle = e.Size()
		case Buffer:
			e.Offset = l.NumBuffer
			l.NumBuffer += e.Size()
		}
		l.index[e.Key] = len(l.Entries)
		l.Entries = append(l.Entries, e)
	}
	// The reference's named_parameters order: embed_tokens, lm_head,
	// q_head, (embed_pos), then the layers.
	add(Entry{Key: KeyEmbedTokens, Shape: []int{V, H}, Init: InitTruncNorm, Std: embStd})
	add(Entry{Key: KeyLMHead, Shape: []int{V, H}, Init: InitLeCun})
	add(Entry{Key: KeyQHeadW, Shape: []int{2, H}, Init: InitZeros})
	add(Entry{Key: KeyQHeadB, Shape: []int{2}, Init: InitConst, Value: -5})
	if c.PosEncodings == PosLearned {
		add(Entry{Key: KeyEmbedPos, Shape: []int{S, H}, Init: InitTruncNorm, Std: embStd})
	}
	I, It := c.Inter(H), c.Inter(S)
	for n, prefix := range d.nets {
		for i := 0; i < d.netLayers(c)[n]; i++ {
			key := func(name string) string { return NetLayerKey(prefix, i, name) }
			if c.MLPT {
				add(Entry{Key: key(keyMLPTUp), Shape: []int{2 * It, S}, Init: InitLeCun})
				add(Entry{Key: key(keyMLPTDown), Shape: []int{S, It}, Init: InitLeCun})
			} else {
				add(Entry{Key: key(keyQKV), Shape: []int{3 * H, H}, Init: InitLeCun})
				add(Entry{Key: key(keyO), Shape: []int{H, H}, Init: InitLeCun})
			}
			add(Entry{Key: key(keyUp), Shape: []int{2 * I, H}, Init: InitLeCun})
			add(Entry{Key: key(keyDown), Shape: []int{H, I}, Init: InitLeCun})
		}
	}
	if c.PuzzleEmbNdim > 0 {
		add(Entry{Key: KeyPuzzleEmb, Shape: []int{c.NumPuzzleIdentifiers, c.PuzzleEmbNdim}, Kind: PuzzleEmb, Init: InitZeros})
	}
	// One init buffer per carried state, in the carry's order.
	for _, k := range d.inits {
		add(Entry{Key: k, Shape: []int{H}, Kind: Buffer, Init: InitTruncNorm, Std: 1})
	}
	return l
}

// Lookup returns the entry of a key.
func (l *Layout) Lookup(key string) (Entry, bool) {
	i, ok := l.index[key]
	if !ok {
		return Entry{}, false
	}
	return l.Entries[i], true
}

// Params is the host copy of a model state: the flat trained buffer with
// named views, the puzzle embedding table and the buffers.
type Params struct {
	Layout  *Layout
	Trained []float32 // [NumTrained], in Layout order
	Puzzle  []float32 // [num_puzzle_identifiers * puzzle_emb_ndim], or nil
	Buffers []float32 // the init buffers, [states*H] (H_init then L_init for the TRM)
}

// NewParams allocates a zeroed state for a layout.
func NewParams(l *Layout) *Params {
	return &Params{
		Layout:  l,
		Trained: make([]float32, l.NumTrained),
		Puzzle:  make([]float32, l.NumPuzzle),
		Buffers: make([]float32, l.NumBuffer),
	}
}

// View returns the slice of the state holding key (sharing memory), or nil
// when the key is not in the layout.
func (p *Params) View(key string) []float32 {
	e, ok := p.Layout.Lookup(key)
	if !ok {
		return nil
	}
	return p.view(e)
}

func (p *Params) view(e Entry) []float32 {
	switch e.Kind {
	case Trained:
		return p.Trained[e.Offset : e.Offset+e.Size()]
	case PuzzleEmb:
		return p.Puzzle
	default:
		return p.Buffers[e.Offset : e.Offset+e.Size()]
	}
}

// Clone returns a deep copy.
func (p *Params) Clone() *Params {
	q := NewParams(p.Layout)
	copy(q.Trained, p.Trained)
	copy(q.Puzzle, p.Puzzle)
	copy(q.Buffers, p.Buffers)
	return q
}

// InitParams initialises a state as the reference does (see Init),
// drawing from a PCG generator seeded with seed, entry by entry in layout
// order.
func InitParams(l *Layout, seed uint64) *Params {
	p := NewParams(l)
	rng := rand.New(rand.NewPCG(seed, 0x7472_6d5f_696e_6974)) // "trm_init"
	for _, e := range l.Entries {
		v := p.view(e)
		switch e.Init {
		case InitZeros:
			clear(v)
		case InitConst:
			for i := range v {
				v[i] = float32(e.Value)
			}
		case InitTruncNorm:
			TruncNormal(rng, v, e.Std)
		case InitLeCun:
			TruncNormal(rng, v, 1/math.Sqrt(float64(e.Shape[len(e.Shape)-1])))
		}
	}
	return p
}

// truncBound is where the JAX-style truncated normal cuts, in units of the
// underlying normal's standard deviation.
const truncBound = 2.0

// TruncCompStd returns c, the standard deviation of the underlying normal
// whose cut at +-2c has standard deviation std (the JAX/reference rule).
func TruncCompStd(std float64) float64 {
	a, b := -truncBound, truncBound
	z := (math.Erf(b/math.Sqrt2) - math.Erf(a/math.Sqrt2)) / 2
	pdf := func(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }
	pu, pl := pdf(b), pdf(a)
	return std / math.Sqrt(1-(b*pu-a*pl)/z-((pu-pl)/z)*((pu-pl)/z))
}

// TruncNormal fills v with the reference's truncated normal of standard
// deviation std: u uniform in (erf(-2/sqrt2), erf(2/sqrt2)), then
// x = erfinv(u) * sqrt2 * c, clipped to +-2c.
func TruncNormal(rng *rand.Rand, v []float32, std float64) {
	if std == 0 {
		clear(v)
		return
	}
	c := TruncCompStd(std)
	lo, hi := math.Erf(-truncBound/math.Sqrt2), math.Erf(truncBound/math.Sqrt2)
	for i := range v {
		u := lo + (hi-lo)*rng.Float64()
		x := math.Erfinv(u) * math.Sqrt2 * c
		v[i] = float32(math.Max(-truncBound*c, math.Min(truncBound*c, x)))
	}
}
