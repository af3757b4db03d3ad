package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Options configure a Model's buffers.
type Options struct {
	// Backward allocates the activations of the differentiated calls and
	// the gradient buffers. Evaluation-only models leave it false and need
	// a fraction of the memory.
	Backward bool
	// ExplorationSeed seeds the generator of the halting-exploration draws
	// (docs/architectures.md, halting) made on the host before each
	// training step.
	ExplorationSeed uint64
	// Replica and Replicas place this model's B slots in a data-parallel
	// global batch of Replicas*B: every replica draws the exploration
	// values of the whole global batch from the same stream and keeps its
	// slice, so K replicas explore exactly as one replica would.
	Replica, Replicas int
	// Arch selects the architecture (the zero value is the TRM).
	Arch ArchSettings
}

// Model is one model of one architecture on one backend, with buffers
// sized once for batch B.
type Model struct {
	Cfg    Config
	Layout *Layout
	be     Backend
	fused  fusedOps // the backend's fusions, or their compositions
	// savedDT and workDT are the element types of the buffers only GEMMs
	// read (act, actT, dgu, dguT; BF16Storage): savedDT of the
	// activations the differentiated calls save for the backward pass,
	// workDT of the per-call workspaces (the gradient-free calls' act
	// and actT, dgu, dguT). F32 unless the backend stores bf16.
	savedDT, workDT DType
	// actDT is the element type of the activations with elementwise
	// readers (BF16Activations): the net inputs, the blocks' GEMM outputs
	// (qkv, [g|u], the projections before their norm), the attention
	// output, the norms' outputs and the mlp_t transposes; F32 unless the
	// backend keeps activations in bf16, whose GEMM-only buffers are then
	// bf16 too.
	actDT DType
	opt   Options
	arch  *archDef

	B, L, P, S, H, V, NH, HD, I, It int

	params, puzzle, buffers Buf // trained [NumTrained], puzzle table, the init buffers
	grads, dLocal           Buf // [NumTrained], [B, Ndim]
	w, g                    weights
	nets                    [][]layerWeights // [network][layer], weights and gradients
	inits                   []Buf            // [state] init buffer [H]

	calls    []call // one ACT step's schedule
	gradFrom int    // first differentiated call
	producer [][]int

	cos, sin Buf // [S, hd] rope tables
	ones     Buf // [B] of 1, for the q-head bias as a K=1 product

	batchInputs, batchLabels, batchPIDs Buf
	minSteps                            Buf     // [B] i32 exploration floors
	explore                             []int32 // host floors, reused by every step
	exploreBox                          any     // explore boxed once: boxing a slice per Upload allocates
	rng                                 *rand.Rand
	pcg                                 *rand.PCG

	x, inj, sum Buf            // [B,S,H] input injection, the injection sum, the hidden sum
	injSig      []int          // what inj holds now: its terms and their versions (nil: nothing reusable)
	sigBuf      []int          // scratch for injSig
	version     []int          // per state, bumped at every write (for injKey)
	hinNG       Buf            // net input of no-grad calls
	actsNG      []*blockActs   // per layer, reused by every no-grad call
	hin         []Buf          // per differentiated call
	acts        [][]*blockActs // [call][layer] of the differentiated calls
	cur         []Buf          // per state, the buffer holding its current value
	wz          []Buf          // working carry of the extra forward
	hL          Buf            // [B*L, H] the head state's [:, P:] made contiguous
	logits, q   Buf            // [B,L,V], [B,2]
	nextQ       Buf            // [B,2] q of the extra forward
	loss        LossBufs
	scratch     Buf // [B*S*H] o W_o^T or the mlp_t output before the norm

	// backward workspace
	dZ                                []Buf  // per state, the gradient of its current value
	live                              []bool // per state, dZ holds a gradient
	recv                              []int  // states receiving a call\'s input gradient
	gx, dh, pp0, pp1, d1, dT, dT2, dO Buf
	dqkv, dgu, dact, dguT, dactT      Buf
}

// weights holds views of the parameters (or gradients) outside the networks.
type weights struct {
	tok, pos, lm, qW, qB Buf
}

// linear is one bias-free linear layer y = x W^T, W [out, in] a view of
// the flat parameter buffer and g the matching view of the gradient.
type linear struct {
	w, g    Buf
	in, out int
}

// forward writes y [rows, out] = x [rows, in] W^T.
func (l linear) forward(be Backend, y, x Buf, rows int) {
	be.Gemm(Gemm{TransB: true, M: rows, N: l.out, K: l.in, Alpha: 1, A: x, Lda: l.in, B: l.w, Ldb: l.in, C: y, Ldc: l.out})
}

// backwardInput writes dx [rows, in] = dy W, or adds it when accumulate.
func (l linear) backwardInput(be Backend, dx, dy Buf, rows int, accumulate bool) {
	var beta float32
	if accumulate {
		beta = 1
	}
	be.Gemm(Gemm{M: rows, N: l.in, K: l.out, Alpha: 1, Beta: beta, A: dy, Lda: l.out, B: l.w, Ldb: l.in, C: dx, Ldc: l.in})
}

// backwardWeight adds dy^T x [out, in] to the weight gradient.
func (l linear) backwardWeight(be Backend, dy, x Buf, rows int) {
	be.Gemm(Gemm{TransA: true, M: l.out, N: l.in, K: rows, Alpha: 1, Beta: 1, A: dy, Lda: l.out, B: x, Ldb: l.in, C: l.g, Ldc: l.in})
}

// layerWeights are one block's linear layers (attention or mlp_t, then the MLP).
type layerWeights struct {
	qkv, o, upT, downT, up, down linear
}

// blockActs are the saved activations of one call of one block.
type blockActs struct {
	in       Buf // block input [B*S,H] (not owned: the net input or the previous block's out)
	qkv, o   Buf // attention: [B*S,3H] after rope, [B*S,H]
	lse      Buf // [B,nh,S]
	inT, guT Buf // mlp_t: [B,H,S], [B*H, 2It]
	actT     Buf // [B*H, It]
	h1T, r1T Buf // [B*H, S], [B*H]
	h1, r1   Buf // [B*S,H], [B*S]
	gu, act  Buf // [B*S, 2I], [B*S, I]
	out, r2  Buf // [B*S,H], [B*S]
}

// NewModel validates cfg for the architecture of opt.Arch and allocates
// every buffer for batch size cfg.BatchSize.
func NewModel(cfg Config, be Backend, opt Options) (*Model, error) {
	layout, err := NewArchLayout(cfg, opt.Arch)
	if err != nil {
		return nil, err
	}
	d, err := opt.Arch.def()
	if err != nil {
		return nil, err
	}
	m := &Model{Cfg: cfg, Layout: layout, be: be, fused: newFusedOps(be), opt: opt, arch: d}
	st := StorageOf(be)
	m.savedDT, m.workDT, m.actDT = st.Saved, st.Work, st.Act
	m.B, m.L, m.P, m.S = cfg.BatchSize, cfg.SeqLen, cfg.PuzzleLen(), cfg.SeqTotal()
	m.H, m.V, m.NH, m.HD = cfg.HiddenSize, cfg.VocabSize, cfg.NumHeads, cfg.HeadDim()
	m.I, m.It = cfg.Inter(m.H), cfg.Inter(m.S)
	m.calls, m.gradFrom = d.schedule(cfg)
	m.producer = producers(m.calls, len(d.states))
	m.pcg = rand.NewPCG(opt.ExplorationSeed, 0x6578_706c_6f72_6521) // "explore!"
	m.rng = rand.New(m.pcg)
	m.alloc()
	if err := be.Sync(); err != nil {
		return nil, fmt.Errorf("allocating buffers for batch %d: %w", m.B, err)
	}
	return m, nil
}

// producers returns, for every call and state, the index of the call that
// wrote the value the call reads (-1: the step's starting carry).
func producers(calls []call, states int) [][]int {
	last := make([]int, states)
	for i := range last {
		last[i] = -1
	}
	out := make([][]int, len(calls))
	for k, c := range calls {
		out[k] = append([]int(nil), last...)
		last[c.dst] = k
	}
	return out
}

// Trainable is a model as a trainer and an evaluator use it: parameters
// in and out, the carry, a batch, one ACT step and its result, and the
// state a checkpoint saves. *Model implements it; a trainer written
// against it takes any model that does (a wrapper that counts or checks
// steps, a model sharded differently), so the trainer does not depend on
// how the engine executes an architecture.
type Trainable interface {
	// Arch returns the architecture group (trm, hrm, ...).
	Arch() string
	// Config returns the model config.
	Config() Config
	// ParamLayout returns the parameters' layout.
	ParamLayout() *Layout
	// Shape returns the model's batch and sequence dimensions.
	Shape() Shape
	// Backend returns the backend the model runs on.
	Backend() Backend
	// CarryFields names the carry's states, in the order of Carry.Z.
	CarryFields() []string

	// SetParams uploads a whole parameter set.
	SetParams(p *Params) error
	// Params downloads the parameters.
	Params() (*Params, error)
	// ParamBuffers returns the backend buffers of the trained parameters,
	// their gradients, the puzzle table and the gathered puzzle rows'
	// gradient, for the optimizer.
	ParamBuffers() (params, grads, puzzle, dLocal Buf)
	// Gradients downloads the last backward pass's gradients.
	Gradients() (trained, local []float32, err error)

	// NewCarry allocates a carry with every slot halted.
	NewCarry() *Carry
	// ResetCarry halts every slot of c.
	ResetCarry(c *Carry)
	// SetBatch uploads the next batch.
	SetBatch(inputs, labels, pids []int32) error
	// Step runs one ACT step on c.
	Step(c *Carry, so StepOptions) error
	// Result downloads the last step's outputs.
	Result(c *Carry, withLogits bool) (*StepResult, error)

	// SaveCarry downloads a carry for a checkpoint.
	SaveCarry(c *Carry) (*CarryHost, error)
	// LoadCarry uploads a checkpoint's carry.
	LoadCarry(c *Carry, h *CarryHost) error
	// ExplorationState returns the exploration generator's state.
	ExplorationState() ([]byte, error)
	// SetExplorationState restores the exploration generator's state.
	SetExplorationState(b []byte) error
}

var _ Trainable = (*Model)(nil)

// Shape are a model's dimensions: the batch, the sequence lengths and the
// widths that size its buffers and a checkpoint's carry tensors.
type Shape struct {
	B int // batch size (the model's slots)
	L int // tokens per example (seq_len)
	P int // puzzle-embedding positions before the tokens
	S int // positions per example, P + L
	H int // hidden size
	V int // vocabulary size
}

// Config returns the model config (Trainable's accessor for Cfg).
func (m *Model) Config() Config { return m.Cfg }

// ParamLayout returns the parameters' layout (Trainable's accessor for
// Layout).
func (m *Model) ParamLayout() *Layout { return m.Layout }

// Shape returns the model's dimensions.
func (m *Model) Shape() Shape { return Shape{B: m.B, L: m.L, P: m.P, S: m.S, H: m.H, V: m.V} }

// Arch returns the model's architecture group (trm, hrm, ...).
func (m *Model) Arch() string { return m.arch.group }

// CarryFields returns the names of the carry's states (z_H, z_L, ...), in
// the order of Carry.Z and CarryHost.Z.
func (m *Model) CarryFields() []string { return append([]string(nil), m.arch.states...) }

func (m *Model) alloc() {
	be := m.be
	B, S, H, L, V := m.B, m.S, m.H, m.L, m.V
	BSH := B * S * H
	f32 := func(n int) Buf { return be.Alloc(F32, n) }
	i32 := func(n int) Buf { return be.Alloc(I32, n) }
	f64 := func(n int) Buf { return be.Alloc(F64, n) }
	ns := len(m.arch.states)

	m.params = f32(m.Layout.NumTrained)
	if m.Layout.NumPuzzle > 0 {
		m.puzzle = f32(m.Layout.NumPuzzle)
	}
	m.buffers = f32(m.Layout.NumBuffer)
	for i := range ns {
		m.inits = append(m.inits, be.Slice(m.buffers, i*H, H))
	}
	if m.opt.Backward {
		m.grads = f32(m.Layout.NumTrained)
		if m.Cfg.PuzzleEmbNdim > 0 {
			m.dLocal = f32(B * m.Cfg.PuzzleEmbNdim)
		}
	}
	m.w, m.g = m.views(m.params), m.views(m.grads)
	m.nets = m.netViews()
	if m.Cfg.PosEncodings == PosRope {
		cos, sin := RopeTables(S, m.HD, m.Cfg.RopeTheta)
		m.cos, m.sin = f32(len(cos)), f32(len(sin))
		be.Upload(m.cos, cos)
		be.Upload(m.sin, sin)
	}
	m.ones = f32(B)
	be.Fill(m.ones, 1)
	m.batchInputs, m.batchLabels, m.batchPIDs = i32(B*L), i32(B*L), i32(B)
	m.minSteps = i32(B)
	m.explore = make([]int32, B)
	m.exploreBox = m.explore

	m.x, m.inj, m.hinNG = f32(BSH), f32(BSH), be.Alloc(m.actDT, BSH)
	for _, c := range m.calls {
		if len(c.hidden) > 1 && m.sum == nil {
			m.sum = f32(BSH) // only trm_hier6 sums several states into the residual input
		}
	}
	maxLayers := 0
	for _, n := range m.arch.netLayers(m.Cfg) {
		maxLayers = max(maxLayers, n)
	}
	m.actsNG = m.newActs(maxLayers, m.workDT)
	if m.opt.Backward {
		for k := m.gradFrom; k < len(m.calls); k++ {
			m.hin = append(m.hin, be.Alloc(m.actDT, BSH))
			m.acts = append(m.acts, m.newActs(len(m.nets[m.calls[k].net]), m.savedDT))
		}
	}
	m.version = make([]int, ns)
	m.cur = make([]Buf, ns)
	for range ns {
		m.wz = append(m.wz, f32(BSH))
	}
	m.hL = f32(B * L * H)
	m.logits, m.q, m.nextQ = f32(B*L*V), f32(2*B), f32(2*B)
	m.scratch = be.Alloc(m.actDT, BSH)
	m.loss = LossBufs{
		Logits: m.logits, Q: m.q,
		Preds: i32(B * L), LMLoss: f64(B), QHaltLoss: f64(B), QContLoss: f64(B), QTarget: f32(B),
		NValid: i32(B), NCorrect: i32(B), SeqCorrect: i32(B),
	}
	if m.opt.Backward {
		m.loss.DLogits, m.loss.DQ = f32(B*L*V), f32(2*B)
		for range ns {
			m.dZ = append(m.dZ, f32(BSH))
		}
		m.live, m.recv = make([]bool, ns), make([]int, 0, ns)
		for _, p := range []*Buf{&m.gx, &m.dh, &m.pp0, &m.pp1, &m.d1, &m.dT, &m.dT2, &m.dO} {
			*p = f32(BSH)
		}
		// dgu and dguT are read only by the up projections' GEMMs.
		if m.Cfg.MLPT {
			m.dguT, m.dactT = be.Alloc(m.workDT, B*H*2*m.It), f32(B*H*m.It)
		} else {
			m.dqkv = f32(B * S * 3 * H)
		}
		m.dgu, m.dact = be.Alloc(m.workDT, B*S*2*m.I), f32(B*S*m.I)
	}
}

// newActs allocates one call's activations for n layers, act and actT of
// type gemmDT. The no-grad calls share one such set.
func (m *Model) newActs(n int, gemmDT DType) []*blockActs {
	be := m.be
	B, S, H := m.B, m.S, m.H
	f32 := func(n int) Buf { return be.Alloc(F32, n) }
	// act and actT are read only by the down projections' GEMMs (the
	// forward and the weight gradient; SwiGLUBackward reads gu).
	gemmOnly := func(n int) Buf { return be.Alloc(gemmDT, n) }
	// The other activations have elementwise readers too; the norms'
	// statistics (r1, r1T, r2) and the attention's lse stay float32.
	act := func(n int) Buf { return be.Alloc(m.actDT, n) }
	acts := make([]*blockActs, n)
	for l := range acts {
		a := &blockActs{}
		if m.Cfg.MLPT {
			a.inT, a.guT, a.actT = act(B*H*S), act(B*H*2*m.It), gemmOnly(B*H*m.It)
			a.h1T, a.r1T = act(B*H*S), f32(B*H)
		} else {
			a.qkv, a.o, a.lse = act(B*S*3*H), act(B*S*H), f32(B*m.NH*S)
		}
		a.h1, a.r1 = act(B*S*H), f32(B*S)
		a.gu, a.act = act(B*S*2*m.I), gemmOnly(B*S*m.I)
		a.out, a.r2 = act(B*S*H), f32(B*S)
		acts[l] = a
	}
	return acts
}

// view cuts the view of key out of a flat buffer (nil when either is absent).
func (m *Model) view(flat Buf, key string) Buf {
	e, ok := m.Layout.Lookup(key)
	if !ok || flat == nil {
		return nil
	}
	return m.be.Slice(flat, e.Offset, e.Size())
}

// views cuts the parameters outside the networks out of a flat buffer.
func (m *Model) views(flat Buf) weights {
	v := func(key string) Buf { return m.view(flat, key) }
	return weights{tok: v(KeyEmbedTokens), pos: v(KeyEmbedPos), lm: v(KeyLMHead), qW: v(KeyQHeadW), qB: v(KeyQHeadB)}
}

// netViews builds every block's linear layers over the parameter and
// gradient buffers.
func (m *Model) netViews() [][]layerWeights {
	H, S, I, It := m.H, m.S, m.I, m.It
	var out [][]layerWeights
	for n, prefix := range m.arch.nets {
		var ls []layerWeights
		for i := 0; i < m.arch.netLayers(m.Cfg)[n]; i++ {
			lin := func(name string, out, in int) linear {
				k := NetLayerKey(prefix, i, name)
				return linear{w: m.view(m.params, k), g: m.view(m.grads, k), in: in, out: out}
			}
			lw := layerWeights{up: lin(keyUp, 2*I, H), down: lin(keyDown, H, I)}
			if m.Cfg.MLPT {
				lw.upT, lw.downT = lin(keyMLPTUp, 2*It, S), lin(keyMLPTDown, S, It)
			} else {
				lw.qkv, lw.o = lin(keyQKV, 3*H, H), lin(keyO, H, H)
			}
			ls = append(ls, lw)
		}
		out = append(out, ls)
	}
	return out
}

// Backend returns the model's backend.
func (m *Model) Backend() Backend { return m.be }

// SetParams uploads a host state whose layout matches the model's config.
func (m *Model) SetParams(p *Params) error {
	if len(p.Trained) != m.Layout.NumTrained || len(p.Puzzle) != m.Layout.NumPuzzle || len(p.Buffers) != m.Layout.NumBuffer {
		return fmt.Errorf("parameter sizes (%d trained, %d puzzle, %d buffer) do not match the model (%d, %d, %d)",
			len(p.Trained), len(p.Puzzle), len(p.Buffers), m.Layout.NumTrained, m.Layout.NumPuzzle, m.Layout.NumBuffer)
	}
	m.be.Upload(m.params, p.Trained)
	if m.puzzle != nil {
		m.be.Upload(m.puzzle, p.Puzzle)
	}
	m.be.Upload(m.buffers, p.Buffers)
	return m.be.Sync()
}

// Params downloads the current state.
func (m *Model) Params() (*Params, error) {
	p := NewParams(m.Layout)
	m.be.Download(p.Trained, m.params)
	if m.puzzle != nil {
		m.be.Download(p.Puzzle, m.puzzle)
	}
	m.be.Download(p.Buffers, m.buffers)
	return p, m.be.Sync()
}

// ParamBuffers exposes the device buffers the optimizers update: the flat
// trained buffer, its gradient, the puzzle table and the gradient of the
// batch's gathered puzzle rows [B, Ndim] (nil where absent).
func (m *Model) ParamBuffers() (params, grads, puzzle, dLocal Buf) {
	return m.params, m.grads, m.puzzle, m.dLocal
}

// Carry is the ACT carry (docs/architectures.md), on the backend: the
// recurrent states and the example each batch slot is working on.
type Carry struct {
	// Z holds every state [B,S,H], in the order of Model.CarryFields.
	Z []Buf
	// ZH and ZL are the states named z_H and z_L where the architecture
	// has them (nil otherwise): views of the same buffers as Z.
	ZH, ZL               Buf
	St                   ACTState
	Inputs, Labels, PIDs Buf // current_data: [B,L], [B,L], [B]
}

// NewCarry returns the initial carry: every slot halted, so the first step
// starts every slot on its batch example from the init buffers.
func (m *Model) NewCarry() *Carry {
	be := m.be
	c := &Carry{
		St:     ACTState{Steps: be.Alloc(I32, m.B), Halted: be.Alloc(I32, m.B)},
		Inputs: be.Alloc(I32, m.B*m.L), Labels: be.Alloc(I32, m.B*m.L), PIDs: be.Alloc(I32, m.B),
	}
	for i, name := range m.arch.states {
		z := be.Alloc(F32, m.B*m.S*m.H)
		c.Z = append(c.Z, z)
		switch name {
		case "z_H":
			c.ZH = z
		case "z_L":
			c.ZL = z
		}
		_ = i
	}
	m.ResetCarry(c)
	return c
}

// ResetCarry marks every slot halted, as at the start of an evaluation batch.
func (m *Model) ResetCarry(c *Carry) {
	m.be.Fill(c.St.Halted, 1)
}

// SetBatch uploads the batch offered to this step: inputs and labels
// [B*L] (labels already mapped to -100 where ignored) and puzzle
// identifiers [B]. Slots whose example has not halted ignore their row.
func (m *Model) SetBatch(inputs, labels, pids []int32) error {
	if len(inputs) != m.B*m.L || len(labels) != m.B*m.L || len(pids) != m.B {
		return fmt.Errorf("batch shapes: inputs %d, labels %d, puzzle_identifiers %d; want %d, %d, %d (B %d, L %d)",
			len(inputs), len(labels), len(pids), m.B*m.L, m.B*m.L, m.B, m.B, m.L)
	}
	for i, t := range inputs {
		if t < 0 || int(t) >= m.V {
			return fmt.Errorf("batch row %d position %d: input token %d outside vocabulary [0, %d)", i/m.L, i%m.L, t, m.V)
		}
	}
	for i, t := range labels {
		if t != IgnoreLabel && (t < 0 || int(t) >= m.V) {
			return fmt.Errorf("batch row %d position %d: label %d outside vocabulary [0, %d) and not %d", i/m.L, i%m.L, t, m.V, IgnoreLabel)
		}
	}
	for i, p := range pids {
		if p < 0 || (m.Cfg.PuzzleEmbNdim > 0 && int(p) >= m.Cfg.NumPuzzleIdentifiers) {
			return fmt.Errorf("batch row %d: puzzle identifier %d outside [0, %d)", i, p, m.Cfg.NumPuzzleIdentifiers)
		}
	}
	m.be.Upload(m.batchInputs, inputs)
	m.be.Upload(m.batchLabels, labels)
	m.be.Upload(m.batchPIDs, pids)
	return nil
}

// IgnoreLabel marks a position without supervision.
const IgnoreLabel = -100

// StepOptions select what one ACT step does.
type StepOptions struct {
	// Train applies the training halting rules (q-based halting and
	// exploration); otherwise every example runs halt_max_steps steps.
	Train bool
	// Backward computes the gradients of GradScale * total loss into the
	// gradient buffers (needs Options.Backward).
	Backward  bool
	GradScale float32
}

// Step runs one ACT supervision step on carry c and the batch last given to
// SetBatch: reset of halted slots, the recursion, the heads, halting, the
// loss head and, if asked, the backward pass. Nothing is read back to the
// host: Result downloads the per-example outputs afterwards.
func (m *Model) Step(c *Carry, so StepOptions) error {
	if so.Backward && !m.opt.Backward {
		return fmt.Errorf("Step: backward asked of a model built without Options.Backward")
	}
	cfg := m.Cfg
	be := m.be
	training := so.Train && cfg.HaltMaxSteps > 1
	// halting: whether this step halts on the Q head before halt_max_steps.
	halting := training
	switch {
	case m.arch.group != "transformers_baseline":
	case so.Train:
		halting = training && !m.opt.Arch.ACTDisabled
	default:
		// act_inference: evaluation halts on the Q head, without exploration.
		halting = m.opt.Arch.ACTInference && cfg.HaltMaxSteps > 1
	}
	if halting && so.Train && cfg.HaltExplorationProb > 0 {
		m.drawExploration()
		m.be.Upload(m.minSteps, m.exploreBox)
	} else {
		be.Fill(m.minSteps, 0)
	}
	m.reset(c)
	be.Embed(m.x, m.w.tok, m.w.pos, m.puzzle, c.Inputs, c.PIDs, m.embedDims())

	m.recurse(c.Z, so.Backward)
	head := c.Z[m.arch.head]
	m.heads(head, m.q, true)
	noContinue := cfg.NoACTContinue && m.arch.halt == haltTRM
	be.ACTHalt(c.St, m.q, m.minSteps, m.B, cfg.HaltMaxSteps, halting, noContinue)

	lb := m.loss
	lb.Labels, lb.Steps = c.Labels, c.St.Steps
	if training && m.arch.target(cfg) {
		// The target for q_continue comes from one more forward, without
		// gradient, from the new carry on the same data.
		n := m.B * m.S * m.H
		for i, z := range c.Z {
			be.Copy2D(m.wz[i], 0, z, 0, 1, n)
		}
		m.recurse(m.wz, false)
		m.heads(m.wz[m.arch.head], m.nextQ, false)
		lb.NextQ = m.nextQ
	}
	if !so.Backward {
		lb.DLogits, lb.DQ = nil, nil
	}
	be.LossHead(lb, LossDims{B: m.B, L: m.L, V: m.V, Softmax: cfg.LossType == LossSoftmax,
		HaltMaxSteps: cfg.HaltMaxSteps, GradScale: so.GradScale})
	if so.Backward {
		m.backward(c)
	}
	return be.Sync()
}

func (m *Model) embedDims() EmbedDims {
	d := EmbedDims{B: m.B, L: m.L, P: m.P, H: m.H, V: m.V, Ndim: m.Cfg.PuzzleEmbNdim,
		NumPuzzles: m.Cfg.NumPuzzleIdentifiers, PosScale: 1, Scale: float32(math.Sqrt(float64(m.H)))}
	if m.Cfg.PosEncodings == PosLearned {
		d.PosScale = 0.707106781
	}
	if d.Ndim == 0 {
		d.NumPuzzles = 0
	}
	return d
}

// drawExploration draws the per-example exploration floors: with
// probability halt_exploration_prob a minimum step count uniform in
// 2..halt_max_steps, else 0. Both draws happen for every example, as in
// the reference, so the stream does not depend on the outcomes.
func (m *Model) drawExploration() []int32 {
	out := m.explore
	clear(out)
	replicas := max(m.opt.Replicas, 1)
	for i := 0; i < replicas*m.B; i++ {
		u := m.rng.Float64()
		k := 2 + m.rng.IntN(m.Cfg.HaltMaxSteps-1)
		if j := i - m.opt.Replica*m.B; j >= 0 && j < m.B && u < m.Cfg.HaltExplorationProb {
			out[j] = int32(k)
		}
	}
	return out
}

// ExplorationState returns the exploration generator's state, for checkpoints.
func (m *Model) ExplorationState() ([]byte, error) { return m.pcg.MarshalBinary() }

// SetExplorationState restores a state from ExplorationState.
func (m *Model) SetExplorationState(b []byte) error { return m.pcg.UnmarshalBinary(b) }

// reset starts a fresh example in every halted slot: each state takes its
// init buffer. The backend's reset op handles two states at a time (and
// the slot bookkeeping, idempotent for the halted slots), so an
// architecture with more states calls it per pair and one with an odd
// count passes its last state twice.
func (m *Model) reset(c *Carry) {
	for i := 0; i < len(c.Z); i += 2 {
		j := min(i+1, len(c.Z)-1)
		m.be.ACTReset(c.Z[i], c.Z[j], c.St, c.Inputs, c.Labels, c.PIDs, m.batchInputs, m.batchLabels, m.batchPIDs,
			m.inits[i], m.inits[j], m.B, m.S, m.L, m.H)
	}
}

// recurse runs one ACT step's schedule in place on the states z. The calls
// before gradFrom are constants for the gradient; with grad the later ones
// keep their activations, and their results are copied back to z at the
// end (the saved activations keep the intermediate values).
func (m *Model) recurse(z []Buf, grad bool) {
	be := m.be
	n := m.B * m.S * m.H
	copy(m.cur, z)
	m.injSig = m.injSig[:0]
	if m.injSig == nil {
		m.injSig = make([]int, 0, 16)
	}
	for k, c := range m.calls {
		if grad && k >= m.gradFrom {
			g := k - m.gradFrom
			m.input(m.hin[g], c)
			m.net(m.nets[c.net], m.acts[g], m.hin[g])
			m.cur[c.dst] = m.acts[g][len(m.acts[g])-1].out
		} else {
			m.input(m.hinNG, c)
			m.net(m.nets[c.net], m.actsNG, m.hinNG)
			be.Copy2D(m.cur[c.dst], 0, m.actsNG[len(m.nets[c.net])-1].out, 0, 1, n)
		}
		m.version[c.dst]++
	}
	for i := range z {
		if m.cur[i] != z[i] {
			be.Copy2D(z[i], 0, m.cur[i], 0, 1, n)
		}
	}
}

// input writes a call's network input into dst: the hidden sum plus the
// injection. The injection is kept in m.inj and reused by the next call
// that injects the same values (the L calls of one cycle). With two or
// more hidden terms the last one and the injection are added in one
// fused pass: (sum + last) + inj is the same arithmetic as the sum
// followed by an Add.
func (m *Model) input(dst Buf, c call) {
	be := m.be
	if len(c.inject) == 0 && !c.x {
		hidden := m.sumInto(m.sum, c.hidden, false)
		be.Copy2D(dst, 0, hidden, 0, 1, m.B*m.S*m.H)
		return
	}
	inj := m.injection(c)
	if k := len(c.hidden); k >= 2 {
		acc := m.sumInto(m.sum, c.hidden[:k-1], false)
		m.fused.Add3(dst, acc, m.cur[c.hidden[k-1]], inj)
		return
	}
	be.Add(dst, m.sumInto(m.sum, c.hidden, false), inj)
}

// injection returns sum(inject) + x, computed once per distinct value.
func (m *Model) injection(c call) Buf {
	switch {
	case len(c.inject) == 1 && !c.x:
		return m.cur[c.inject[0]]
	case len(c.inject) == 0:
		return m.x
	}
	// The signature of the value: the call's terms and their versions.
	sig := m.sigBuf[:0]
	for _, s := range c.inject {
		sig = append(sig, s, m.version[s])
	}
	if c.x {
		sig = append(sig, -1)
	}
	m.sigBuf = sig
	if !slices.Equal(sig, m.injSig) {
		m.sumInto(m.inj, c.inject, c.x)
		m.injSig = append(m.injSig[:0], sig...)
	}
	return m.inj
}

// sumInto sums the states terms (then x, when withX) left to right into
// dst and returns it; a lone term is returned as it is. Terms are added
// two at a time with the fused Add3 ((acc + t1) + t2, the arithmetic of
// two Adds), so a backend with the fusion makes one pass per pair.
func (m *Model) sumInto(dst Buf, terms []int, withX bool) Buf {
	n := len(terms)
	if withX {
		n++
	}
	term := func(i int) Buf {
		if i < len(terms) {
			return m.cur[terms[i]]
		}
		return m.x
	}
	if n == 0 {
		return dst
	}
	acc := term(0)
	i := 1
	for ; i+1 < n; i += 2 {
		m.fused.Add3(dst, acc, term(i), term(i+1))
		acc = dst
	}
	if i < n {
		m.be.Add(dst, acc, term(i))
		acc = dst
	}
	return acc
}

// net runs the blocks of one network on in, saving activations in acts.
func (m *Model) net(layers []layerWeights, acts []*blockActs, in Buf) {
	for l, w := range layers {
		m.block(w, acts[l], in)
		in = acts[l].out
	}
}

// block runs one post-norm block, saving its activations in act.
func (m *Model) block(w layerWeights, act *blockActs, in Buf) {
	be := m.be
	B, S, H := m.B, m.S, m.H
	BS := B * S
	eps := float32(m.Cfg.RMSNormEps)
	act.in = in
	if m.Cfg.MLPT {
		// The sequence MLP works on [B, H, S]: rows are hidden channels.
		be.Transpose(act.inT, in, B, S, H)
		w.upT.forward(be, act.guT, act.inT, B*H)
		be.SwiGLU(act.actT, act.guT, B*H, m.It)
		w.downT.forward(be, m.scratch, act.actT, B*H)
		be.AddRMSNorm(act.h1T, act.r1T, act.inT, m.scratch, B*H, S, eps)
		be.Transpose(act.h1, act.h1T, B, H, S)
	} else {
		w.qkv.forward(be, act.qkv, in, BS)
		if m.Cfg.PosEncodings == PosRope {
			be.Rope(act.qkv, m.cos, m.sin, B, S, m.NH, m.HD, false)
		}
		be.Attention(act.o, act.lse, act.qkv, B, S, m.NH, m.HD)
		w.o.forward(be, m.scratch, act.o, BS)
		be.AddRMSNorm(act.h1, act.r1, in, m.scratch, BS, H, eps)
	}
	w.up.forward(be, act.gu, act.h1, BS)
	be.SwiGLU(act.act, act.gu, BS, m.I)
	w.down.forward(be, m.scratch, act.act, BS)
	be.AddRMSNorm(act.out, act.r2, act.h1, m.scratch, BS, H, eps)
}

// heads computes q [B,2] from z[:,0] and, when logits is set, the logits
// [B,L,V] from z[:,P:] (kept contiguous in hL for the backward pass).
func (m *Model) heads(z, q Buf, logits bool) {
	be := m.be
	B, S, H, L, V := m.B, m.S, m.H, m.L, m.V
	if logits {
		be.Copy2D(m.hL, L*H, be.Slice(z, m.P*H, z.Len()-m.P*H), S*H, B, L*H)
		linear{w: m.w.lm, in: H, out: V}.forward(be, m.logits, m.hL, B*L)
	}
	// q = 1 b^T + z[:,0] W_q^T: the bias as a rank-1 product keeps the
	// interface free of a bias op; z[:,0] is read with row stride S*H.
	be.Gemm(Gemm{M: B, N: 2, K: 1, Alpha: 1, A: m.ones, Lda: 1, B: m.w.qB, Ldb: 2, C: q, Ldc: 2})
	be.Gemm(Gemm{TransB: true, M: B, N: 2, K: H, Alpha: 1, Beta: 1, A: z, Lda: S * H, B: m.w.qW, Ldb: H, C: q, Ldc: 2})
}

// backward accumulates the gradients of the loss head's scaled total into
// the gradient buffers, from the new carry c: the heads, then the
// differentiated calls in reverse, each handing its input's gradient to
// the states it read (where a differentiated call wrote them) and to x.
func (m *Model) backward(c *Carry) {
	be := m.be
	B, S, H, L, V, P := m.B, m.S, m.H, m.L, m.V, m.P
	head := m.arch.head
	z := c.Z[head]
	dz := m.dZ[head]
	be.Fill(m.grads, 0)
	be.Fill(dz, 0)
	dlog, dq := m.loss.DLogits, m.loss.DQ
	// LM head: dW_lm = dlogits^T hL; dz[:, P:] = dlogits W_lm.
	be.Gemm(Gemm{TransA: true, M: V, N: H, K: B * L, Alpha: 1, A: dlog, Lda: V, B: m.hL, Ldb: H, C: m.g.lm, Ldc: H})
	be.Gemm(Gemm{M: L, N: H, K: V, Alpha: 1, A: dlog, Lda: V, StrideA: L * V, B: m.w.lm, Ldb: H,
		C: be.Slice(dz, P*H, dz.Len()-P*H), Ldc: H, StrideC: S * H, Batch: B})
	// Q head: dW_q = dq^T z[:,0]; db_q = 1^T dq; dz[:,0] += dq W_q.
	be.Gemm(Gemm{TransA: true, M: 2, N: H, K: B, Alpha: 1, A: dq, Lda: 2, B: z, Ldb: S * H, C: m.g.qW, Ldc: H})
	be.Gemm(Gemm{TransA: true, M: 1, N: 2, K: B, Alpha: 1, A: m.ones, Lda: 1, B: dq, Ldb: 2, C: m.g.qB, Ldc: 2})
	be.Gemm(Gemm{M: B, N: H, K: 2, Alpha: 1, Beta: 1, A: dq, Lda: 2, B: m.w.qW, Ldb: H, C: dz, Ldc: S * H})

	live := m.live // live[s]: dZ[s] holds a gradient
	clear(live)
	live[head] = true
	gxLive := false
	n := B * S * H
	for k := len(m.calls) - 1; k >= m.gradFrom; k-- {
		cl := m.calls[k]
		if !live[cl.dst] {
			continue // the loss does not depend on this call
		}
		live[cl.dst] = false
		// d(input) reaches every term of the sums alike. It is written
		// straight into the first receiving state without a gradient yet
		// (the call's own dst among them: its gradient was just used), and
		// copied or added to the other receivers from there.
		recv := m.recv[:0]
		for _, terms := range [][]int{cl.hidden, cl.inject} {
			for _, s := range terms {
				if m.producer[k][s] >= m.gradFrom && !slices.Contains(recv, s) {
					recv = append(recv, s)
				}
			}
		}
		m.recv = recv
		out := m.dh
		first := -1
		for _, s := range recv {
			if !live[s] {
				first, out = s, m.dZ[s]
				break
			}
		}
		m.netBackward(m.nets[cl.net], m.acts[k-m.gradFrom], m.dZ[cl.dst], out)
		for _, s := range recv {
			switch {
			case s == first:
			case live[s]:
				be.Add(m.dZ[s], m.dZ[s], out)
			default:
				be.Copy2D(m.dZ[s], 0, out, 0, 1, n)
			}
			live[s] = true
		}
		if cl.x {
			if !gxLive {
				be.Fill(m.gx, 0)
				gxLive = true
			}
			be.Add(m.gx, m.gx, out)
		}
	}
	if !gxLive {
		be.Fill(m.gx, 0)
	}
	be.EmbedBackward(m.g.tok, m.g.pos, m.dLocal, m.gx, c.Inputs, m.embedDims())
}

// netBackward propagates dout (gradient of a call's output) to dst
// (gradient of its input), accumulating weight gradients.
func (m *Model) netBackward(layers []layerWeights, acts []*blockActs, dout, dst Buf) {
	cur := dout
	for l := len(layers) - 1; l >= 0; l-- {
		out := dst
		if l > 0 {
			out = m.pp0
			if cur == m.pp0 {
				out = m.pp1
			}
		}
		m.blockBackward(layers[l], acts[l], cur, out)
		cur = out
	}
}

// blockBackward writes dx, the gradient of the block input, from dy.
func (m *Model) blockBackward(w layerWeights, act *blockActs, dy, dx Buf) {
	be := m.be
	B, S, H := m.B, m.S, m.H
	BS := B * S
	// Second half: out = rms_norm(h1 + (silu(g) u) W_down^T), [g|u] = h1 W_up^T.
	be.RMSNormBackward(m.d1, dy, act.out, act.r2, BS, H)
	w.down.backwardInput(be, m.dact, m.d1, BS, false)
	w.down.backwardWeight(be, m.d1, act.act, BS)
	be.SwiGLUBackward(m.dgu, m.dact, act.gu, BS, m.I)
	w.up.backwardInput(be, m.d1, m.dgu, BS, true)
	w.up.backwardWeight(be, m.dgu, act.h1, BS)
	// m.d1 now holds d h1.
	if m.Cfg.MLPT {
		be.Transpose(m.dT, m.d1, B, S, H)
		be.RMSNormBackward(m.dT2, m.dT, act.h1T, act.r1T, B*H, S)
		w.downT.backwardInput(be, m.dactT, m.dT2, B*H, false)
		w.downT.backwardWeight(be, m.dT2, act.actT, B*H)
		be.SwiGLUBackward(m.dguT, m.dactT, act.guT, B*H, m.It)
		w.upT.backwardInput(be, m.dT2, m.dguT, B*H, true)
		w.upT.backwardWeight(be, m.dguT, act.inT, B*H)
		be.Transpose(dx, m.dT2, B, H, S)
		return
	}
	be.RMSNormBackward(dx, m.d1, act.h1, act.r1, BS, H)
	w.o.backwardInput(be, m.dO, dx, BS, false)
	w.o.backwardWeight(be, dx, act.o, BS)
	be.AttentionBackward(m.dqkv, m.dO, act.qkv, act.o, act.lse, B, S, m.NH, m.HD)
	if m.Cfg.PosEncodings == PosRope {
		be.Rope(m.dqkv, m.cos, m.sin, B, S, m.NH, m.HD, true)
	}
	w.qkv.backwardInput(be, dx, m.dqkv, BS, true)
	w.qkv.backwardWeight(be, m.dqkv, act.in, BS)
}

// RopeTables returns cos and sin [S, hd] as the reference computes them in
// float32: inv_freq_j = theta^(-2j/hd), angle = p * inv_freq_j, the hd/2
// angles written twice.
func RopeTables(seq, hd int, theta float64) (cos, sin []float32) {
	half := hd / 2
	inv := make([]float32, half)
	for j := range inv {
		e := float32(2*j) / float32(hd)
		inv[j] = float32(1 / float64(float32(math.Pow(theta, float64(e)))))
	}
	cos, sin = make([]float32, seq*hd), make([]float32, seq*hd)
	for p := 0; p < seq; p++ {
		for j := 0; j < half; j++ {
			a := float64(float32(p) * inv[j])
			c, s := float32(math.Cos(a)), float32(math.Sin(a))
			cos[p*hd+j], cos[p*hd+half+j] = c, c
			sin[p*hd+j], sin[p*hd+half+j] = s, s
		}
	}
	return cos, sin
}

// CarryState downloads z_H and z_L [B,S,H] of a carry (nil for a state
// the architecture does not have).
func (m *Model) CarryState(c *Carry) (zH, zL []float32, err error) {
	zs, err := m.CarryStates(c)
	if err != nil {
		return nil, nil, err
	}
	for i, name := range m.arch.states {
		switch name {
		case "z_H":
			zH = zs[i]
		case "z_L":
			zL = zs[i]
		}
	}
	return zH, zL, nil
}

// CarryStates downloads every state [B,S,H] of a carry, in the order of
// CarryFields.
func (m *Model) CarryStates(c *Carry) ([][]float32, error) {
	n := m.B * m.S * m.H
	out := make([][]float32, len(c.Z))
	for i, z := range c.Z {
		out[i] = make([]float32, n)
		m.be.Download(out[i], z)
	}
	return out, m.be.Sync()
}

// InputEmbeddings downloads the last step's input injection x [B,S,H]
// (already scaled by sqrt(H)), for debugging and conformance tests.
func (m *Model) InputEmbeddings() ([]float32, error) {
	x := make([]float32, m.B*m.S*m.H)
	m.be.Download(x, m.x)
	return x, m.be.Sync()
}

// Gradients downloads the last backward pass: the flat gradient of the
// trained parameters (Layout order) and the gradient of the batch's
// gathered puzzle rows [B, puzzle_emb_ndim] (nil without a puzzle
// embedding).
func (m *Model) Gradients() (trained, local []float32, err error) {
	if !m.opt.Backward {
		return nil, nil, fmt.Errorf("Gradients: model built without Options.Backward")
	}
	trained = make([]float32, m.Layout.NumTrained)
	m.be.Download(trained, m.grads)
	if m.dLocal != nil {
		local = make([]float32, m.dLocal.Len())
		m.be.Download(local, m.dLocal)
	}
	return trained, local, m.be.Sync()
}

// CarryHost is a host copy of a whole carry: what a checkpoint stores so
// that every slot resumes exactly where it stopped.
type CarryHost struct {
	// Z holds every state [B,S,H] in the order of Model.CarryFields.
	// LoadCarry reads ZH and ZL instead when Z is nil (the TRM's and HRM's
	// two states).
	Z                    [][]float32
	ZH, ZL               []float32 // [B,S,H] the states z_H and z_L where the architecture has them
	Steps, Halted        []int32   // [B]
	Inputs, Labels, PIDs []int32   // [B,L], [B,L], [B]
}

// SaveCarry downloads a carry.
func (m *Model) SaveCarry(c *Carry) (*CarryHost, error) {
	h := &CarryHost{
		Steps: make([]int32, m.B), Halted: make([]int32, m.B),
		Inputs: make([]int32, m.B*m.L), Labels: make([]int32, m.B*m.L), PIDs: make([]int32, m.B),
	}
	be := m.be
	n := m.B * m.S * m.H
	for i, z := range c.Z {
		v := make([]float32, n)
		be.Download(v, z)
		h.Z = append(h.Z, v)
		switch m.arch.states[i] {
		case "z_H":
			h.ZH = v
		case "z_L":
			h.ZL = v
		}
	}
	be.Download(h.Steps, c.St.Steps)
	be.Download(h.Halted, c.St.Halted)
	be.Download(h.Inputs, c.Inputs)
	be.Download(h.Labels, c.Labels)
	be.Download(h.PIDs, c.PIDs)
	return h, be.Sync()
}

// LoadCarry uploads a host carry, checking its shapes against the model.
func (m *Model) LoadCarry(c *Carry, h *CarryHost) error {
	n := m.B * m.S * m.H
	zs := h.Z
	if zs == nil {
		for _, name := range m.arch.states {
			switch name {
			case "z_H":
				zs = append(zs, h.ZH)
			case "z_L":
				zs = append(zs, h.ZL)
			default:
				return fmt.Errorf("carry has no state %s (a %s carry needs %v)", name, m.arch.group, m.arch.states)
			}
		}
	}
	if len(zs) != len(c.Z) {
		return fmt.Errorf("carry has %d states, a %s carry needs %d (%v)", len(zs), m.arch.group, len(c.Z), m.arch.states)
	}
	for i, z := range zs {
		if len(z) != n {
			return fmt.Errorf("carry state %s has %d values, the model needs %d (B %d, S %d, H %d)", m.arch.states[i], len(z), n, m.B, m.S, m.H)
		}
	}
	if len(h.Steps) != m.B || len(h.Halted) != m.B ||
		len(h.Inputs) != m.B*m.L || len(h.Labels) != m.B*m.L || len(h.PIDs) != m.B {
		return fmt.Errorf("carry shapes do not match the model (B %d, S %d, H %d, L %d)", m.B, m.S, m.H, m.L)
	}
	be := m.be
	for i, z := range zs {
		be.Upload(c.Z[i], z)
	}
	be.Upload(c.St.Steps, h.Steps)
	be.Upload(c.St.Halted, h.Halted)
	be.Upload(c.Inputs, h.Inputs)
	be.Upload(c.Labels, h.Labels)
	be.Upload(c.PIDs, h.PIDs)
	return be.Sync()
}
