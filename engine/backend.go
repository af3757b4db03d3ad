package engine

import (
	"fmt"
)

// DType is the element type of a backend buffer.
type DType int

// Element types of backend buffers.
const (
	F32 DType = iota // float32: activations, parameters, gradients
	F64              // float64: per-example losses (stablemax runs in float64)
	I32              // int32: tokens, labels, identifiers, steps, flags
	// BF16 is bfloat16 storage, for buffers only a GEMM reads: only a
	// backend that implements BF16Storage and reports true allocates it
	// (see BF16Storage for the ops that accept it).
	BF16
)

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case F64:
		return "f64"
	case I32:
		return "i32"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// Buf is a backend-owned buffer or a view into one. The engine never
// touches its memory: it only passes buffers to backend ops, and moves data
// in and out with Upload and Download, so a GPU backend can keep every
// activation on the device and capture a whole step as one graph.
type Buf interface {
	Len() int
	DType() DType
}

// Gemm describes C = alpha * op(A) * op(B) + beta * C over Batch strided
// matrices, row-major: op(A) is M x K (A stored K x M when TransA), op(B)
// is K x N (stored N x K when TransB), C is M x N. Matrix i of A starts at
// element i*StrideA of A, likewise for B and C. Beta 0 overwrites C.
type Gemm struct {
	TransA, TransB bool
	M, N, K        int
	Alpha, Beta    float32
	A              Buf
	Lda, StrideA   int
	B              Buf
	Ldb, StrideB   int
	C              Buf
	Ldc, StrideC   int
	Batch          int // 0 means 1
}

// Extents returns how many elements of A, B and C the product reads or
// writes (the last matrix of the batch included), and false when a leading
// dimension is shorter than its operand's rows. Every backend checks its
// buffers against these, so the rule is written once.
func (g Gemm) Extents() (a, b, c int, ok bool) {
	batch := max(g.Batch, 1)
	ar, ac := g.M, g.K
	if g.TransA {
		ar, ac = g.K, g.M
	}
	br, bc := g.K, g.N
	if g.TransB {
		br, bc = g.N, g.K
	}
	if g.Lda < ac || g.Ldb < bc || g.Ldc < g.N {
		return 0, 0, 0, false
	}
	span := func(rows, cols, ld, stride int) int {
		if rows == 0 || cols == 0 {
			return 0
		}
		return (batch-1)*stride + (rows-1)*ld + cols
	}
	return span(ar, ac, g.Lda, g.StrideA), span(br, bc, g.Ldb, g.StrideB), span(g.M, g.N, g.Ldc, g.StrideC), true
}

// EmbedDims are the shapes of the input embedding.
type EmbedDims struct {
	B, L, P, H, V int
	Ndim          int     // puzzle_emb_ndim (0: no puzzle embedding)
	NumPuzzles    int     // rows of the puzzle table
	PosScale      float32 // 1/sqrt(2) with learned positions, else 1
	Scale         float32 // sqrt(H), the input-injection scale
}

// LossDims configure the loss head.
type LossDims struct {
	B, L, V      int
	Softmax      bool    // softmax instead of stablemax cross entropy
	HaltMaxSteps int     // for is_last in the continue target
	GradScale    float32 // the loss is back-propagated times this (1/global batch)
}

// LossBufs are the loss head's inputs and outputs, all per example so that
// the trainer, not the backend, forms the batch sums (docs/model.md#loss-head).
type LossBufs struct {
	Logits Buf // [B,L,V] f32 in
	Labels Buf // [B,L] i32 in, -100 = ignored
	Q      Buf // [B,2] f32 in: q_halt, q_continue
	NextQ  Buf // [B,2] f32 in or nil: q of the extra forward (no_ACT_continue false)
	Steps  Buf // [B] i32 in: steps after this step (is_last for the target)

	DLogits Buf // [B,L,V] f32 out: d(GradScale*total)/d logits, or nil
	DQ      Buf // [B,2] f32 out, or nil

	Preds      Buf // [B,L] i32 out: argmax, first maximum wins
	LMLoss     Buf // [B] f64 out: sum over positions of CE / max(n_b, 1)
	QHaltLoss  Buf // [B] f64 out: BCE(q_halt, seq_correct)
	QContLoss  Buf // [B] f64 out: BCE(q_continue, target) or 0
	QTarget    Buf // [B] f32 out: target_q_continue (0 without NextQ)
	NValid     Buf // [B] i32 out: n_b, supervised positions
	NCorrect   Buf // [B] i32 out: correct supervised positions
	SeqCorrect Buf // [B] i32 out: 1 if every supervised position is correct
}

// ACTState is the ACT carry bookkeeping (docs/model.md#the-act-step-and-the-carry),
// on the backend.
type ACTState struct {
	Steps  Buf // [B] i32
	Halted Buf // [B] i32, 0 or 1
}

// Backend is the small set of coarse, fusable ops the model is written
// against. Ops enqueue work and never fail individually: a backend records
// the first error (bad shape, device fault) and returns it from Sync, so a
// step has no host round-trip and a GPU backend can capture it as a graph.
// Every op must be deterministic: a fixed work split and reduction order.
type Backend interface {
	// Name identifies the backend in logs and benchmark tables.
	Name() string
	// Alloc returns a zeroed buffer of n elements.
	Alloc(dt DType, n int) Buf
	// Slice returns a view of n elements of b starting at off.
	Slice(b Buf, off, n int) Buf
	// Upload copies host data ([]float32, []float64 or []int32 matching
	// dst's type) into dst.
	Upload(dst Buf, src any)
	// Download copies src into host memory of the matching type.
	Download(dst any, src Buf)
	// Sync waits for queued work and returns the first error since the
	// last Sync, then clears it.
	Sync() error

	// Gemm runs a (strided batched) matrix product.
	Gemm(g Gemm)
	// Copy2D copies rows x cols elements: dst[r*dstStride+c] = src[r*srcStride+c].
	Copy2D(dst Buf, dstStride int, src Buf, srcStride int, rows, cols int)
	// Transpose writes dst[b][c][r] = src[b][r][c] for batch matrices of rows x cols.
	Transpose(dst, src Buf, batch, rows, cols int)
	// Add writes dst = a + b elementwise (dst may alias a or b).
	Add(dst, a, b Buf)
	// Axpby writes dst = alpha*a + beta*b elementwise over dst's length
	// (dst may alias a or b; b is read even when beta is 0). The general
	// linear combination of two vectors: a difference (1, -1), a scaled
	// copy (b = a), an in-place axpy (dst = b). Each product is rounded to
	// float32 before the sum, except that a GPU may fuse one product into
	// the sum; with alpha and beta in {0, +-1} or powers of two the
	// products are exact and every backend gives the same bits.
	Axpby(dst, a, b Buf, alpha, beta float32)
	// Fill sets every element of dst to v.
	Fill(dst Buf, v float32)

	// AddRMSNorm writes y = rms_norm(a + b) over rows of cols elements and
	// rstd[r] = 1/sqrt(mean((a+b)^2) + eps); b may be nil.
	AddRMSNorm(y, rstd, a, b Buf, rows, cols int, eps float32)
	// RMSNormBackward writes dx = rstd * (dy - y * mean(dy * y)) per row,
	// the gradient through y = rms_norm(x) given its output y (dx may alias dy).
	RMSNormBackward(dx, dy, y, rstd Buf, rows, cols int)
	// SwiGLU writes act[r] = silu(gu[r][:I]) * gu[r][I:] for rows x 2I input.
	SwiGLU(act, gu Buf, rows, inter int)
	// SwiGLUBackward writes dgu from dact through SwiGLU.
	SwiGLUBackward(dgu, dact, gu Buf, rows, inter int)
	// Rope rotates the q and k heads of qkv [B*S, 3*nh*hd] in place with
	// tables cos, sin [S, hd]; inverse applies the transposed rotation
	// (the backward of the forward rotation).
	Rope(qkv, cos, sin Buf, batch, seq, heads, headDim int, inverse bool)
	// Attention writes out [B*S, nh*hd] = softmax(q k^T / sqrt(hd)) v per
	// head over all positions (no mask), and the log-sum-exp of each score
	// row into lse [B, nh, S], from qkv [B*S, 3*nh*hd].
	Attention(out, lse, qkv Buf, batch, seq, heads, headDim int)
	// AttentionBackward writes dqkv [B*S, 3*nh*hd] from dout, given the
	// forward's qkv, out and lse.
	AttentionBackward(dqkv, dout, qkv, out, lse Buf, batch, seq, heads, headDim int)
	// Embed writes the input injection x [B,S,H] = Scale * PosScale *
	// (concat(puzzle rows padded to P*H, token rows) + pos); pos and puzzle
	// may be nil when unused. Out-of-range ids are an error.
	Embed(x, tok, pos, puzzle, inputs, pids Buf, d EmbedDims)
	// EmbedBackward accumulates dx into dTok (scatter-add over token ids)
	// and dPos, and writes dLocal [B, Ndim], the gradient of the gathered
	// puzzle rows. dPos and dLocal may be nil when unused.
	EmbedBackward(dTok, dPos, dLocal, dx, inputs Buf, d EmbedDims)
	// ACTReset starts a fresh example in every halted slot: z_H, z_L
	// [B,S,H] take hInit, lInit [H]; steps become 0; cur* take the batch's
	// example of that slot (cur/batch inputs and labels [B,L], pids [B]).
	ACTReset(zH, zL Buf, st ACTState, curInputs, curLabels, curPIDs, inputs, labels, pids, hInit, lInit Buf, batch, seqTotal, seqLen, hidden int)
	// ACTHalt advances steps and decides halting
	// (docs/model.md#the-act-step-and-the-carry, steps 3-5) from q
	// [B,2] and the exploration floor minSteps [B] (0 = none).
	ACTHalt(st ACTState, q, minSteps Buf, batch, maxSteps int, training, noACTContinue bool)
	// LossHead computes the per-example losses, predictions, counts and,
	// where the gradient buffers are given, the gradients
	// (docs/model.md#loss-head).
	LossHead(lb LossBufs, d LossDims)

	// AdamATan2 updates params in place from grads with moments m and v
	// (all the same length), as docs/training.md#adamatan2 describes:
	// m = lerp(m, g, 1-b1); v = lerp(v, g^2, 1-b2);
	// p = p (1 - lr wd) - lr/(1-b1^t) atan2(m, sqrt(v)/sqrt(1-b2^t)).
	AdamATan2(params, grads, m, v Buf, h AdamHyper)
	// SignSGDRows sums the gradient rows grads [n, dim] per distinct id of
	// ids [n] (in row order) and updates only those rows of table:
	// w = w (1 - lr wd) - lr sign(g).
	SignSGDRows(table, grads, ids Buf, n, dim int, lr, wd float32)
	// EMA updates shadow = (1 - rate) * params + rate * shadow.
	EMA(shadow, params Buf, rate float32)
	// SumSquares writes sum(x^2) into dst[0] (an F64 buffer), accumulated
	// in float64 in a fixed order; a non-finite element makes it non-finite.
	SumSquares(dst, x Buf)
}

// AdamHyper are AdamATan2's hyper-parameters at one step (Step counts from 1).
type AdamHyper struct {
	LR, Beta1, Beta2, WeightDecay float64
	Step                          int
}

// Fused ops. A backend keeps to the coarse ops of Backend and may, in
// addition, implement any of the optional interfaces below: each is one
// fusion of a sequence the engine would otherwise issue as several coarse
// ops. The engine asks for each fusion with Supports (a type assertion)
// and, where the backend lacks it, composes the same result from the
// coarse ops; so a fusion written for one backend (a CUDA kernel) needs no
// twin on the others. A fusion's contract states its arithmetic exactly,
// and where that is the composition's arithmetic (the same roundings in
// the same order) the fused and the composed results are bitwise equal,
// which enginetest.RunFusions checks on every backend.

// Fusion names one optional fused op.
type Fusion string

// The fusions the engine uses.
const (
	// FusionAdd3 is FusedAdd3.
	FusionAdd3 Fusion = "add3"
)

// Fusions lists every fusion the engine knows, in a fixed order.
func Fusions() []Fusion { return []Fusion{FusionAdd3} }

// FusedAdd3 fuses two Adds: the sums of three or more states that form a
// network's input (the trm_hier6 L-level input sums six latents, then the
// injection) are a chain of elementwise passes, each reading two buffers
// and writing one; fused, every pair of Adds reads three and writes one.
// docs/gpu-cost-model.md counts these passes in the share outside GEMMs
// and attention that fusion can win.
type FusedAdd3 interface {
	// Add3 writes dst = (a + b) + c elementwise, rounding the inner sum
	// to float32 before the outer one (the arithmetic of Add(dst, a, b)
	// then Add(dst, dst, c)). dst may alias a or b but not c.
	Add3(dst, a, b, c Buf)
}

// Supports reports whether be implements fusion f itself; the engine
// composes the fusions it does not from the coarse ops.
func Supports(be Backend, f Fusion) bool {
	switch f {
	case FusionAdd3:
		_, ok := be.(FusedAdd3)
		return ok
	}
	return false
}

// SupportedFusions lists the fusions be implements, for logs and
// benchmark tables.
func SupportedFusions(be Backend) []Fusion {
	var fs []Fusion
	for _, f := range Fusions() {
		if Supports(be, f) {
			fs = append(fs, f)
		}
	}
	return fs
}

// BF16Storage is implemented by a backend that can store the buffers
// whose only readers are GEMM operands in bf16 (docs/training.md#bf16-storage):
// the SwiGLU output act (read by the down projection's forward and its
// weight gradient) and SwiGLUBackward's dgu (read by the up projection's
// input and weight gradients). Stored in bf16 they take half the memory,
// and the op writing them and the GEMM packing them move half the bytes.
//
// StoresBF16 reporting true promises:
//   - Alloc(BF16, n) returns a buffer, and Slice, Len, DType, Fill, Upload
//     and Download take it (host data as []float32, rounded to nearest
//     even on Upload, widened exactly on Download);
//   - Gemm accepts BF16 A and B operands (C stays F32);
//   - SwiGLU accepts a BF16 act and SwiGLUBackward a BF16 dgu, each
//     element the float32 the op computes, rounded to nearest even;
//   - storing a GEMM operand in bf16 gives the same bits as storing it in
//     float32: the backend's GEMM rounds its operands to bf16 that same
//     way, and rounding a value twice is rounding it once.
//
// Every other op is handed float32 buffers only. A backend whose GEMM
// keeps fp32 operands reports false (bf16 storage would change its
// numerics), and so does one that does not implement the interface; the
// model then stores these buffers in float32.
//
// PacksBF16 says what a BF16 operand costs the backend's Gemm. True: it
// reads the bf16 straight into its packed panels, so bf16 storage halves
// the product's operand reads too, and the model stores every buffer
// above in bf16. False: a BF16 operand is widened to float32 in a pass of
// its own first; the model then stores in bf16 only the activations saved
// for the backward pass (act and actT of the differentiated calls), where
// the memory is, and keeps its per-call workspaces (the gradient-free
// calls' act and actT, dgu and dguT) in float32, where bf16 would save
// little memory and cost a widening per product.
type BF16Storage interface {
	StoresBF16() bool
	PacksBF16() bool
}

// StoresBF16 reports whether be implements BF16Storage and reports true:
// whether a model on it stores GEMM-only buffers in bf16.
func StoresBF16(be Backend) bool {
	s, ok := be.(BF16Storage)
	return ok && s.StoresBF16()
}

// bf16DTypes returns the element types a model on be gives its saved
// GEMM-only activations and its GEMM-only workspaces (BF16Storage).
func bf16DTypes(be Backend) (saved, work DType) {
	s, ok := be.(BF16Storage)
	switch {
	case !ok || !s.StoresBF16():
		return F32, F32
	case s.PacksBF16():
		return BF16, BF16
	}
	return BF16, F32
}

// fusedOps are a model's fused ops, resolved once from its backend: each
// runs the backend's fusion where it has one and the composition of
// coarse ops otherwise.
type fusedOps struct {
	be   Backend
	add3 FusedAdd3 // nil: composed
}

func newFusedOps(be Backend) fusedOps {
	f := fusedOps{be: be}
	f.add3, _ = be.(FusedAdd3)
	return f
}

// Add3 writes dst = (a + b) + c (FusedAdd3's contract).
func (f fusedOps) Add3(dst, a, b, c Buf) {
	if f.add3 != nil {
		f.add3.Add3(dst, a, b, c)
		return
	}
	f.be.Add(dst, a, b)
	f.be.Add(dst, dst, c)
}

// BF16Activations is implemented by a backend that can keep a model's
// activations in bf16 between ops, as the reference's bf16 training does
// (docs/training.md#bf16-activations): the attention projections and
// scores' inputs and outputs, the MLP intermediates, the normalised
// residual stream, each block's output and the activations saved for the
// backward pass. The statistics stay in float32 (the norms' rstd, the
// attention's log-sum-exp), and so do the gradients, the carry the
// trainer checkpoints, the loss head and the optimizer.
//
// StoresBF16Activations reporting true promises, on top of BF16Storage
// (which such a backend implements and reports true):
//   - Gemm: C may be BF16, the float32 result rounded to nearest even
//     (with Beta != 0 the stored C is widened first);
//   - AddRMSNorm: y, a and b may be BF16 (rstd is F32);
//   - RMSNormBackward: y may be BF16;
//   - SwiGLU and SwiGLUBackward: gu may be BF16;
//   - Rope: qkv may be BF16 (rotated in place, rounded);
//   - Attention: qkv and out may be BF16 (lse is F32);
//   - AttentionBackward: qkv and out may be BF16;
//   - Copy2D, Transpose, Add and Add3: any operand may be BF16.
//
// In each, a BF16 input is widened exactly, the op computes in float32
// as it does on float32 buffers, and a BF16 output is the float32 result
// rounded to nearest even: the op gives the bits of the same op on the
// widened inputs, rounded. Other ops, and the other operands of these,
// take float32 only.
type BF16Activations interface {
	StoresBF16Activations() bool
}

// StoresBF16Activations reports whether be implements BF16Activations
// and reports true: whether a model on it keeps its activations in bf16.
func StoresBF16Activations(be Backend) bool {
	s, ok := be.(BF16Activations)
	return ok && s.StoresBF16Activations() && StoresBF16(be)
}
