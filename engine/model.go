package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Options configure a Model's buffers.
type Options struct {
	// Backward allocates the activations of the differentiated outer cycle
	// and the gradient buffers. Evaluation-only models leave it false and
	// need a fraction of the memory.
	Backward bool
	// ExplorationSeed seeds the generator of the halting-exploration draws
	// (spec section 4) made on the host before each training step.
	ExplorationSeed uint64
	// Replica and Replicas place this model's B slots in a data-parallel
	// global batch of Replicas*B: every replica draws the exploration
	// values of the whole global batch from the same stream and keeps its
	// slice, so K replicas explore exactly as one replica would.
	Replica, Replicas int
}

// Model is one TRM on one backend, with buffers sized once for batch B.
type Model struct {
	Cfg    Config
	Layout *Layout
	be     Backend
	opt    Options

	B, L, P, S, H, V, NH, HD, I, It int

	params, puzzle, buffers Buf // trained [NumTrained], puzzle table, H_init|L_init
	grads, dLocal           Buf // [NumTrained], [B, Ndim]
	w, g                    weights
	hInit, lInit            Buf

	cos, sin Buf // [S, hd] rope tables
	ones     Buf // [B] of 1, for the q-head bias as a K=1 product

	batchInputs, batchLabels, batchPIDs Buf
	minSteps                            Buf     // [B] i32 exploration floors
	explore                             []int32 // host floors, reused by every step
	exploreBox                          any     // explore boxed once: boxing a slice per Upload allocates
	rng                                 *rand.Rand
	pcg                                 *rand.PCG

	x, inj    Buf            // [B,S,H] input injection, z_H + x
	hinNG     Buf            // net input of no-grad calls
	actsNG    []*blockActs   // per layer, reused by every no-grad call
	hin       []Buf          // per differentiated call
	acts      [][]*blockActs // [call][layer] of the differentiated outer cycle
	wzH, wzL  Buf            // working carry of the extra forward
	hL        Buf            // [B*L, H] z_H[:, P:] made contiguous
	logits, q Buf            // [B,L,V], [B,2]
	nextQ     Buf            // [B,2] q of the extra forward
	loss      LossBufs
	scratch   Buf // [B*S*H] o W_o^T or the mlp_t output before the norm

	// backward workspace
	dzH, gA, gB, gx, pp0, pp1, d1, dT, dT2 Buf
	dO, dqkv, dgu, dact, dguT, dactT       Buf
}

// weights holds views of every parameter (or gradient) in the flat buffer.
type weights struct {
	tok, pos, lm, qW, qB Buf
	layers               []layerWeights
}

type layerWeights struct {
	qkv, o, upT, downT, up, down Buf
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

// NewModel validates cfg and allocates every buffer for batch size cfg.BatchSize.
func NewModel(cfg Config, be Backend, opt Options) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Cfg: cfg, Layout: NewLayout(cfg), be: be, opt: opt}
	m.B, m.L, m.P, m.S = cfg.BatchSize, cfg.SeqLen, cfg.PuzzleLen(), cfg.SeqTotal()
	m.H, m.V, m.NH, m.HD = cfg.HiddenSize, cfg.VocabSize, cfg.NumHeads, cfg.HeadDim()
	m.I, m.It = cfg.Inter(m.H), cfg.Inter(m.S)
	m.pcg = rand.NewPCG(opt.ExplorationSeed, 0x6578_706c_6f72_6521) // "explore!"
	m.rng = rand.New(m.pcg)
	m.alloc()
	if err := be.Sync(); err != nil {
		return nil, fmt.Errorf("allocating buffers for batch %d: %w", m.B, err)
	}
	return m, nil
}

func (m *Model) alloc() {
	be := m.be
	B, S, H, L, V := m.B, m.S, m.H, m.L, m.V
	BSH := B * S * H
	f32 := func(n int) Buf { return be.Alloc(F32, n) }
	i32 := func(n int) Buf { return be.Alloc(I32, n) }
	f64 := func(n int) Buf { return be.Alloc(F64, n) }

	m.params = f32(m.Layout.NumTrained)
	if m.Layout.NumPuzzle > 0 {
		m.puzzle = f32(m.Layout.NumPuzzle)
	}
	m.buffers = f32(m.Layout.NumBuffer)
	m.hInit = be.Slice(m.buffers, 0, H)
	m.lInit = be.Slice(m.buffers, H, H)
	m.w = m.views(m.params)
	if m.opt.Backward {
		m.grads = f32(m.Layout.NumTrained)
		m.g = m.views(m.grads)
		if m.Cfg.PuzzleEmbNdim > 0 {
			m.dLocal = f32(B * m.Cfg.PuzzleEmbNdim)
		}
	}
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

	m.x, m.inj, m.hinNG = f32(BSH), f32(BSH), f32(BSH)
	m.actsNG = m.newActs()
	if m.opt.Backward {
		calls := m.Cfg.LCycles + 1
		m.hin = make([]Buf, calls)
		m.acts = make([][]*blockActs, calls)
		for c := range calls {
			m.hin[c] = f32(BSH)
			m.acts[c] = m.newActs()
		}
	}
	m.wzH, m.wzL = f32(BSH), f32(BSH)
	m.hL = f32(B * L * H)
	m.logits, m.q, m.nextQ = f32(B*L*V), f32(2*B), f32(2*B)
	m.scratch = f32(BSH)
	m.loss = LossBufs{
		Logits: m.logits, Q: m.q,
		Preds: i32(B * L), LMLoss: f64(B), QHaltLoss: f64(B), QContLoss: f64(B), QTarget: f32(B),
		NValid: i32(B), NCorrect: i32(B), SeqCorrect: i32(B),
	}
	if m.opt.Backward {
		m.loss.DLogits, m.loss.DQ = f32(B*L*V), f32(2*B)
		for _, p := range []*Buf{&m.dzH, &m.gA, &m.gB, &m.gx, &m.pp0, &m.pp1, &m.d1, &m.dT, &m.dT2, &m.dO} {
			*p = f32(BSH)
		}
		if m.Cfg.MLPT {
			m.dguT, m.dactT = f32(B*H*2*m.It), f32(B*H*m.It)
		} else {
			m.dqkv = f32(B * S * 3 * H)
		}
		m.dgu, m.dact = f32(B*S*2*m.I), f32(B*S*m.I)
	}
}

// newActs allocates one call's activations for every layer. The no-grad
// calls share one such set.
func (m *Model) newActs() []*blockActs {
	be := m.be
	B, S, H := m.B, m.S, m.H
	f32 := func(n int) Buf { return be.Alloc(F32, n) }
	acts := make([]*blockActs, m.Cfg.LLayers)
	for l := range acts {
		a := &blockActs{}
		if m.Cfg.MLPT {
			a.inT, a.guT, a.actT = f32(B*H*S), f32(B*H*2*m.It), f32(B*H*m.It)
			a.h1T, a.r1T = f32(B*H*S), f32(B*H)
		} else {
			a.qkv, a.o, a.lse = f32(B*S*3*H), f32(B*S*H), f32(B*m.NH*S)
		}
		a.h1, a.r1 = f32(B*S*H), f32(B*S)
		a.gu, a.act = f32(B*S*2*m.I), f32(B*S*m.I)
		a.out, a.r2 = f32(B*S*H), f32(B*S)
		acts[l] = a
	}
	return acts
}

// views cuts the named parameter views out of a flat buffer.
func (m *Model) views(flat Buf) weights {
	v := func(key string) Buf {
		e, ok := m.Layout.Lookup(key)
		if !ok {
			return nil
		}
		return m.be.Slice(flat, e.Offset, e.Size())
	}
	w := weights{tok: v(KeyEmbedTokens), pos: v(KeyEmbedPos), lm: v(KeyLMHead), qW: v(KeyQHeadW), qB: v(KeyQHeadB)}
	for i := 0; i < m.Cfg.LLayers; i++ {
		w.layers = append(w.layers, layerWeights{
			qkv: v(LayerKey(i, keyQKV)), o: v(LayerKey(i, keyO)),
			upT: v(LayerKey(i, keyMLPTUp)), downT: v(LayerKey(i, keyMLPTDown)),
			up: v(LayerKey(i, keyUp)), down: v(LayerKey(i, keyDown)),
		})
	}
	return w
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

// Carry is the ACT carry of spec section 4, on the backend: the recurrent
// state and the example each batch slot is working on.
type Carry struct {
	ZH, ZL               Buf // [B,S,H]
	St                   ACTState
	Inputs, Labels, PIDs Buf // current_data: [B,L], [B,L], [B]
}

// NewCarry returns the initial carry: every slot halted, so the first step
// starts every slot on its batch example from H_init / L_init.
func (m *Model) NewCarry() *Carry {
	be := m.be
	c := &Carry{
		ZH: be.Alloc(F32, m.B*m.S*m.H), ZL: be.Alloc(F32, m.B*m.S*m.H),
		St:     ACTState{Steps: be.Alloc(I32, m.B), Halted: be.Alloc(I32, m.B)},
		Inputs: be.Alloc(I32, m.B*m.L), Labels: be.Alloc(I32, m.B*m.L), PIDs: be.Alloc(I32, m.B),
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
	if training && cfg.HaltExplorationProb > 0 {
		m.drawExploration()
		m.be.Upload(m.minSteps, m.exploreBox)
	} else {
		be.Fill(m.minSteps, 0)
	}
	be.ACTReset(c.ZH, c.ZL, c.St, c.Inputs, c.Labels, c.PIDs, m.batchInputs, m.batchLabels, m.batchPIDs,
		m.hInit, m.lInit, m.B, m.S, m.L, m.H)
	be.Embed(m.x, m.w.tok, m.w.pos, m.puzzle, c.Inputs, c.PIDs, m.embedDims())

	m.recurse(c.ZH, c.ZL, so.Backward)
	m.heads(c.ZH, m.q, true)
	be.ACTHalt(c.St, m.q, m.minSteps, m.B, cfg.HaltMaxSteps, training, cfg.NoACTContinue)

	lb := m.loss
	lb.Labels, lb.Steps = c.Labels, c.St.Steps
	if training && !cfg.NoACTContinue {
		// The target for q_continue comes from one more forward, without
		// gradient, from the new carry on the same data (spec section 4).
		be.Copy2D(m.wzH, 0, c.ZH, 0, 1, m.B*m.S*m.H)
		be.Copy2D(m.wzL, 0, c.ZL, 0, 1, m.B*m.S*m.H)
		m.recurse(m.wzH, m.wzL, false)
		m.heads(m.wzH, m.nextQ, false)
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

// recurse runs H_cycles outer cycles in place on (zH, zL). The first
// H_cycles-1 are constants for the gradient; the last one keeps its
// activations when grad is set, and its result is copied back to zH, zL.
func (m *Model) recurse(zH, zL Buf, grad bool) {
	be := m.be
	cfg := m.Cfg
	nograd := cfg.HCycles
	if grad {
		nograd--
	}
	for range nograd {
		be.Add(m.inj, zH, m.x)
		for range cfg.LCycles {
			m.netNoGrad(zL, zL, m.inj)
		}
		m.netNoGrad(zH, zH, zL)
	}
	if !grad {
		return
	}
	be.Add(m.inj, zH, m.x)
	a := zL
	for c := range cfg.LCycles {
		m.net(c, a, m.inj)
		a = m.netOut(c)
	}
	m.net(cfg.LCycles, zH, a)
	n := m.B * m.S * m.H
	be.Copy2D(zL, 0, a, 0, 1, n)
	be.Copy2D(zH, 0, m.netOut(cfg.LCycles), 0, 1, n)
}

func (m *Model) netOut(call int) Buf { return m.acts[call][m.Cfg.LLayers-1].out }

// net runs differentiated call number `call`: h = a + inj, then the blocks.
func (m *Model) net(call int, a, inj Buf) {
	m.be.Add(m.hin[call], a, inj)
	in := m.hin[call]
	for l, act := range m.acts[call] {
		m.block(l, act, in)
		in = act.out
	}
}

// netNoGrad writes net(a, inj) into dst (which may alias a or inj).
func (m *Model) netNoGrad(dst, a, inj Buf) {
	m.be.Add(m.hinNG, a, inj)
	in := m.hinNG
	for l, act := range m.actsNG {
		m.block(l, act, in)
		in = act.out
	}
	m.be.Copy2D(dst, 0, in, 0, 1, m.B*m.S*m.H)
}

// block runs one post-norm block, saving its activations in act.
func (m *Model) block(l int, act *blockActs, in Buf) {
	be := m.be
	B, S, H := m.B, m.S, m.H
	BS := B * S
	w := m.w.layers[l]
	eps := float32(m.Cfg.RMSNormEps)
	act.in = in
	if m.Cfg.MLPT {
		// The sequence MLP works on [B, H, S]: rows are hidden channels.
		It := m.It
		be.Transpose(act.inT, in, B, S, H)
		be.Gemm(Gemm{TransB: true, M: B * H, N: 2 * It, K: S, Alpha: 1, A: act.inT, Lda: S, B: w.upT, Ldb: S, C: act.guT, Ldc: 2 * It})
		be.SwiGLU(act.actT, act.guT, B*H, It)
		be.Gemm(Gemm{TransB: true, M: B * H, N: S, K: It, Alpha: 1, A: act.actT, Lda: It, B: w.downT, Ldb: It, C: m.scratch, Ldc: S})
		be.AddRMSNorm(act.h1T, act.r1T, act.inT, m.scratch, B*H, S, eps)
		be.Transpose(act.h1, act.h1T, B, H, S)
	} else {
		be.Gemm(Gemm{TransB: true, M: BS, N: 3 * H, K: H, Alpha: 1, A: in, Lda: H, B: w.qkv, Ldb: H, C: act.qkv, Ldc: 3 * H})
		if m.Cfg.PosEncodings == PosRope {
			be.Rope(act.qkv, m.cos, m.sin, B, S, m.NH, m.HD, false)
		}
		be.Attention(act.o, act.lse, act.qkv, B, S, m.NH, m.HD)
		be.Gemm(Gemm{TransB: true, M: BS, N: H, K: H, Alpha: 1, A: act.o, Lda: H, B: w.o, Ldb: H, C: m.scratch, Ldc: H})
		be.AddRMSNorm(act.h1, act.r1, in, m.scratch, BS, H, eps)
	}
	I := m.I
	be.Gemm(Gemm{TransB: true, M: BS, N: 2 * I, K: H, Alpha: 1, A: act.h1, Lda: H, B: w.up, Ldb: H, C: act.gu, Ldc: 2 * I})
	be.SwiGLU(act.act, act.gu, BS, I)
	be.Gemm(Gemm{TransB: true, M: BS, N: H, K: I, Alpha: 1, A: act.act, Lda: I, B: w.down, Ldb: I, C: m.scratch, Ldc: H})
	be.AddRMSNorm(act.out, act.r2, act.h1, m.scratch, BS, H, eps)
}

// heads computes q [B,2] from z_H[:,0] and, when logits is set, the logits
// [B,L,V] from z_H[:,P:] (kept contiguous in hL for the backward pass).
func (m *Model) heads(zH, q Buf, logits bool) {
	be := m.be
	B, S, H, L, V := m.B, m.S, m.H, m.L, m.V
	if logits {
		be.Copy2D(m.hL, L*H, be.Slice(zH, m.P*H, zH.Len()-m.P*H), S*H, B, L*H)
		be.Gemm(Gemm{TransB: true, M: B * L, N: V, K: H, Alpha: 1, A: m.hL, Lda: H, B: m.w.lm, Ldb: H, C: m.logits, Ldc: V})
	}
	// q = 1 b^T + z_H[:,0] W_q^T: the bias as a rank-1 product keeps the
	// interface free of a bias op.
	be.Gemm(Gemm{M: B, N: 2, K: 1, Alpha: 1, A: m.ones, Lda: 1, B: m.w.qB, Ldb: 2, C: q, Ldc: 2})
	be.Gemm(Gemm{TransB: true, M: B, N: 2, K: H, Alpha: 1, Beta: 1, A: zH, Lda: S * H, B: m.w.qW, Ldb: H, C: q, Ldc: 2})
}

// backward accumulates the gradients of the loss head's scaled total into
// the gradient buffers, from the new carry c.
func (m *Model) backward(c *Carry) {
	be := m.be
	zH := c.ZH
	B, S, H, L, V, P := m.B, m.S, m.H, m.L, m.V, m.P
	be.Fill(m.grads, 0)
	be.Fill(m.dzH, 0)
	dlog, dq := m.loss.DLogits, m.loss.DQ
	// LM head: dW_lm = dlogits^T hL; dz_H[:, P:] = dlogits W_lm.
	be.Gemm(Gemm{TransA: true, M: V, N: H, K: B * L, Alpha: 1, A: dlog, Lda: V, B: m.hL, Ldb: H, C: m.g.lm, Ldc: H})
	be.Gemm(Gemm{M: L, N: H, K: V, Alpha: 1, A: dlog, Lda: V, StrideA: L * V, B: m.w.lm, Ldb: H,
		C: be.Slice(m.dzH, P*H, m.dzH.Len()-P*H), Ldc: H, StrideC: S * H, Batch: B})
	// Q head: dW_q = dq^T z_H[:,0]; db_q = 1^T dq; dz_H[:,0] += dq W_q.
	be.Gemm(Gemm{TransA: true, M: 2, N: H, K: B, Alpha: 1, A: dq, Lda: 2, B: zH, Ldb: S * H, C: m.g.qW, Ldc: H})
	be.Gemm(Gemm{TransA: true, M: 1, N: 2, K: B, Alpha: 1, A: m.ones, Lda: 1, B: dq, Ldb: 2, C: m.g.qB, Ldc: 2})
	be.Gemm(Gemm{M: B, N: H, K: 2, Alpha: 1, Beta: 1, A: dq, Lda: 2, B: m.w.qW, Ldb: H, C: m.dzH, Ldc: S * H})

	// The H call: h = z_H0 + z_L; only z_L (the last L call's output)
	// carries gradient further.
	lc := m.Cfg.LCycles
	m.netBackward(lc, m.dzH, m.gA)
	g, other := m.gA, m.gB
	be.Fill(m.gx, 0)
	for c := lc - 1; c >= 0; c-- {
		// h = z_L(c-1) + (z_H0 + x): the gradient reaches x and the
		// previous call's output alike.
		m.netBackward(c, g, other)
		be.Add(m.gx, m.gx, other)
		g, other = other, g
	}
	be.EmbedBackward(m.g.tok, m.g.pos, m.dLocal, m.gx, c.Inputs, m.embedDims())
}

// netBackward propagates dout (gradient of a call's output) to dst
// (gradient of its input h = a + inj), accumulating weight gradients.
func (m *Model) netBackward(call int, dout, dst Buf) {
	cur := dout
	for l := m.Cfg.LLayers - 1; l >= 0; l-- {
		out := dst
		if l > 0 {
			out = m.pp0
			if cur == m.pp0 {
				out = m.pp1
			}
		}
		m.blockBackward(l, m.acts[call][l], cur, out)
		cur = out
	}
}

// blockBackward writes dx, the gradient of the block input, from dy.
func (m *Model) blockBackward(l int, act *blockActs, dy, dx Buf) {
	be := m.be
	B, S, H, I := m.B, m.S, m.H, m.I
	BS := B * S
	w, g := m.w.layers[l], m.g.layers[l]
	// Second half: out = rms_norm(h1 + (silu(g) u) W_down^T), [g|u] = h1 W_up^T.
	be.RMSNormBackward(m.d1, dy, act.out, act.r2, BS, H)
	be.Gemm(Gemm{M: BS, N: I, K: H, Alpha: 1, A: m.d1, Lda: H, B: w.down, Ldb: I, C: m.dact, Ldc: I})
	be.Gemm(Gemm{TransA: true, M: H, N: I, K: BS, Alpha: 1, Beta: 1, A: m.d1, Lda: H, B: act.act, Ldb: I, C: g.down, Ldc: I})
	be.SwiGLUBackward(m.dgu, m.dact, act.gu, BS, I)
	be.Gemm(Gemm{M: BS, N: H, K: 2 * I, Alpha: 1, Beta: 1, A: m.dgu, Lda: 2 * I, B: w.up, Ldb: H, C: m.d1, Ldc: H})
	be.Gemm(Gemm{TransA: true, M: 2 * I, N: H, K: BS, Alpha: 1, Beta: 1, A: m.dgu, Lda: 2 * I, B: act.h1, Ldb: H, C: g.up, Ldc: H})
	// m.d1 now holds d h1.
	if m.Cfg.MLPT {
		It := m.It
		be.Transpose(m.dT, m.d1, B, S, H)
		be.RMSNormBackward(m.dT2, m.dT, act.h1T, act.r1T, B*H, S)
		be.Gemm(Gemm{M: B * H, N: It, K: S, Alpha: 1, A: m.dT2, Lda: S, B: w.downT, Ldb: It, C: m.dactT, Ldc: It})
		be.Gemm(Gemm{TransA: true, M: S, N: It, K: B * H, Alpha: 1, Beta: 1, A: m.dT2, Lda: S, B: act.actT, Ldb: It, C: g.downT, Ldc: It})
		be.SwiGLUBackward(m.dguT, m.dactT, act.guT, B*H, It)
		be.Gemm(Gemm{M: B * H, N: S, K: 2 * It, Alpha: 1, Beta: 1, A: m.dguT, Lda: 2 * It, B: w.upT, Ldb: S, C: m.dT2, Ldc: S})
		be.Gemm(Gemm{TransA: true, M: 2 * It, N: S, K: B * H, Alpha: 1, Beta: 1, A: m.dguT, Lda: 2 * It, B: act.inT, Ldb: S, C: g.upT, Ldc: S})
		be.Transpose(dx, m.dT2, B, H, S)
		return
	}
	be.RMSNormBackward(dx, m.d1, act.h1, act.r1, BS, H)
	be.Gemm(Gemm{M: BS, N: H, K: H, Alpha: 1, A: dx, Lda: H, B: w.o, Ldb: H, C: m.dO, Ldc: H})
	be.Gemm(Gemm{TransA: true, M: H, N: H, K: BS, Alpha: 1, Beta: 1, A: dx, Lda: H, B: act.o, Ldb: H, C: g.o, Ldc: H})
	be.AttentionBackward(m.dqkv, m.dO, act.qkv, act.o, act.lse, B, S, m.NH, m.HD)
	if m.Cfg.PosEncodings == PosRope {
		be.Rope(m.dqkv, m.cos, m.sin, B, S, m.NH, m.HD, true)
	}
	be.Gemm(Gemm{M: BS, N: H, K: 3 * H, Alpha: 1, Beta: 1, A: m.dqkv, Lda: 3 * H, B: w.qkv, Ldb: H, C: dx, Ldc: H})
	be.Gemm(Gemm{TransA: true, M: 3 * H, N: H, K: BS, Alpha: 1, Beta: 1, A: m.dqkv, Lda: 3 * H, B: act.in, Ldb: H, C: g.qkv, Ldc: H})
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

// CarryState downloads z_H and z_L [B,S,H] of a carry.
func (m *Model) CarryState(c *Carry) (zH, zL []float32, err error) {
	n := m.B * m.S * m.H
	zH, zL = make([]float32, n), make([]float32, n)
	m.be.Download(zH, c.ZH)
	m.be.Download(zL, c.ZL)
	return zH, zL, m.be.Sync()
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
	ZH, ZL               []float32 // [B,S,H]
	Steps, Halted        []int32   // [B]
	Inputs, Labels, PIDs []int32   // [B,L], [B,L], [B]
}

// SaveCarry downloads a carry.
func (m *Model) SaveCarry(c *Carry) (*CarryHost, error) {
	n := m.B * m.S * m.H
	h := &CarryHost{
		ZH: make([]float32, n), ZL: make([]float32, n),
		Steps: make([]int32, m.B), Halted: make([]int32, m.B),
		Inputs: make([]int32, m.B*m.L), Labels: make([]int32, m.B*m.L), PIDs: make([]int32, m.B),
	}
	be := m.be
	be.Download(h.ZH, c.ZH)
	be.Download(h.ZL, c.ZL)
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
	if len(h.ZH) != n || len(h.ZL) != n || len(h.Steps) != m.B || len(h.Halted) != m.B ||
		len(h.Inputs) != m.B*m.L || len(h.Labels) != m.B*m.L || len(h.PIDs) != m.B {
		return fmt.Errorf("carry shapes do not match the model (B %d, S %d, H %d, L %d)", m.B, m.S, m.H, m.L)
	}
	be := m.be
	be.Upload(c.ZH, h.ZH)
	be.Upload(c.ZL, h.ZL)
	be.Upload(c.St.Steps, h.Steps)
	be.Upload(c.St.Halted, h.Halted)
	be.Upload(c.Inputs, h.Inputs)
	be.Upload(c.Labels, h.Labels)
	be.Upload(c.PIDs, h.PIDs)
	return be.Sync()
}
