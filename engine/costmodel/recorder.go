package costmodel

import (
	"fmt"

	"github.com/tinyrecursive/trm/engine"
)

// Unit is the part of the GPU a launch's time is charged to.
type Unit int

// Units of work.
const (
	// TensorBF16 is a cuBLAS product on the tensor cores with bf16
	// operands and fp32 accumulation (the CUDA backend's default mode).
	TensorBF16 Unit = iota
	// CUDACoreFP32 is fp32 arithmetic on the CUDA cores: the trm kernels
	// (attention included) and the true-fp32 cuBLAS product of the
	// embedding's scatter-add.
	CUDACoreFP32
	// DeviceCopy is a device-to-device memcpy (no arithmetic).
	DeviceCopy
	// HostCopy is a copy between host and device over PCIe.
	HostCopy
)

func (u Unit) String() string {
	switch u {
	case TensorBF16:
		return "tensor bf16"
	case CUDACoreFP32:
		return "cuda fp32"
	case DeviceCopy:
		return "copy"
	case HostCopy:
		return "pcie"
	}
	return fmt.Sprintf("unit(%d)", int(u))
}

// GemmShape is one matrix product as the engine asks for it (row-major,
// kernels/README.md: GEMMs go to cuBLAS).
type GemmShape struct {
	M, N, K, Batch int
	TransA, TransB bool
	Accumulate     bool // beta != 0: C is read as well as written
}

// Launch is one kernel launch, library call or copy that the CUDA backend
// issues for an engine op, with the work it must do: FLOPs and the bytes
// it must move at the least (kernels/README.md's per-kernel formulas).
type Launch struct {
	Op     string // the engine.Backend method, e.g. "Attention"
	Kernel string // the kernel (trm_*), "cublas gemm bf16", "memcpy D2D", ...
	Unit   Unit
	FLOPs  float64 // arithmetic executed
	Bytes  float64 // device memory (or PCIe) traffic
	// ModelFLOPs is the part of FLOPs that counts for MFU: the matrix
	// products of the model (GEMMs and the attention products, without
	// the backward's recomputation). Zero for everything else.
	ModelFLOPs float64
	Gemm       *GemmShape // set for GEMMs
}

// Recorder is an engine.Backend that runs nothing: buffers carry only a
// type and a length, and every op appends the launches the CUDA backend
// (cuda/ops.go) would issue for it, with their costs. Driving a model
// through it yields the exact op sequence of a step at any batch size,
// with no memory for the activations and no arithmetic.
//
// Downloads leave the host slices as they are (zeros for fresh ones), so
// the host side of a step sees finite losses and norms and takes its
// usual path. Like the real backends it checks buffer sizes and reports
// the first problem at Sync.
type Recorder struct {
	launches   []Launch
	syncs      int
	allocBytes int64
	err        error
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{} }

var _ engine.Backend = (*Recorder)(nil)

// Launches returns the launches recorded since the last Reset.
func (r *Recorder) Launches() []Launch { return r.launches }

// Syncs returns the number of Sync calls since the last Reset: each is a
// host round trip (and, with graphs, one graph launch).
func (r *Recorder) Syncs() int { return r.syncs }

// AllocBytes is the device memory every Alloc so far would take.
func (r *Recorder) AllocBytes() int64 { return r.allocBytes }

// Reset forgets the launches and syncs recorded so far (not the
// allocations), so that a step can be recorded after its setup.
func (r *Recorder) Reset() { r.launches, r.syncs = nil, 0 }

// sbuf is a shape-only buffer.
type sbuf struct {
	dt engine.DType
	n  int
}

func (b *sbuf) Len() int            { return b.n }
func (b *sbuf) DType() engine.DType { return b.dt }

func elemSize(dt engine.DType) int {
	if dt == engine.F64 {
		return 8
	}
	return 4
}

func (r *Recorder) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("cost recorder: "+format, args...)
	}
}

// need checks that buffer x (named name for op) holds n elements.
func (r *Recorder) need(op, name string, x engine.Buf, n int) bool {
	if x == nil || x.(*sbuf) == nil {
		r.fail("%s: %s is missing", op, name)
		return false
	}
	if x.Len() < n {
		r.fail("%s: %s has %d elements, needs %d", op, name, x.Len(), n)
		return false
	}
	return true
}

func (r *Recorder) add(l Launch) {
	r.launches = append(r.launches, l)
}

// kernel records a trm kernel on the CUDA cores.
func (r *Recorder) kernel(op, name string, flops, bytes float64) {
	r.add(Launch{Op: op, Kernel: name, Unit: CUDACoreFP32, FLOPs: flops, Bytes: bytes})
}

// Name implements engine.Backend.
func (r *Recorder) Name() string { return "cost recorder" }

// Alloc implements engine.Backend: a shape, no memory.
func (r *Recorder) Alloc(dt engine.DType, n int) engine.Buf {
	if n < 0 {
		r.fail("Alloc: negative length %d", n)
		n = 0
	}
	r.allocBytes += int64(n) * int64(elemSize(dt))
	return &sbuf{dt: dt, n: n}
}

// Slice implements engine.Backend.
func (r *Recorder) Slice(b engine.Buf, off, n int) engine.Buf {
	if off < 0 || n < 0 || off+n > b.Len() {
		r.fail("Slice: [%d, %d) out of a buffer of %d", off, off+n, b.Len())
		n = 0
	}
	return &sbuf{dt: b.DType(), n: n}
}

// Upload implements engine.Backend: a host-to-device copy.
func (r *Recorder) Upload(dst engine.Buf, _ any) {
	r.add(Launch{Op: "Upload", Kernel: "memcpy H2D", Unit: HostCopy, Bytes: float64(dst.Len() * elemSize(dst.DType()))})
}

// Download implements engine.Backend: a device-to-host copy; dst is left
// as it is.
func (r *Recorder) Download(_ any, src engine.Buf) {
	r.add(Launch{Op: "Download", Kernel: "memcpy D2H", Unit: HostCopy, Bytes: float64(src.Len() * elemSize(src.DType()))})
}

// Sync implements engine.Backend.
func (r *Recorder) Sync() error {
	r.syncs++
	err := r.err
	r.err = nil
	return err
}

// Gemm implements engine.Backend: cuBLAS with bf16 operands on the tensor
// cores, fp32 in memory (A, B read, C written, and read when Beta != 0).
func (r *Recorder) Gemm(g engine.Gemm) { r.gemm("Gemm", g, TensorBF16) }

func (r *Recorder) gemm(op string, g engine.Gemm, unit Unit) {
	batch := max(g.Batch, 1)
	extA, extB, extC, ok := g.Extents()
	if !ok {
		r.fail("%s %dx%dx%d: leading dimensions lda %d ldb %d ldc %d too small", op, g.M, g.N, g.K, g.Lda, g.Ldb, g.Ldc)
		return
	}
	if !r.need(op, "A", g.A, extA) || !r.need(op, "B", g.B, extB) || !r.need(op, "C", g.C, extC) {
		return
	}
	if g.M == 0 || g.N == 0 {
		return
	}
	M, N, K, nb := float64(g.M), float64(g.N), float64(g.K), float64(batch)
	flops := 2 * M * N * K * nb
	c := M * N
	if g.Beta != 0 {
		c *= 2
	}
	bytes := 4 * nb * (M*K + K*N + c)
	l := Launch{Op: op, Kernel: "cublas gemm bf16", Unit: unit, FLOPs: flops, Bytes: bytes,
		Gemm: &GemmShape{M: g.M, N: g.N, K: g.K, Batch: batch, TransA: g.TransA, TransB: g.TransB, Accumulate: g.Beta != 0}}
	if unit == TensorBF16 {
		l.ModelFLOPs = flops
	} else {
		l.Kernel = "cublas gemm fp32"
	}
	r.add(l)
}

// Copy2D implements engine.Backend: a memcpy when the rows are dense,
// else trm_copy2d (8 bytes per element).
func (r *Recorder) Copy2D(dst engine.Buf, dstStride int, src engine.Buf, srcStride int, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	if !r.need("Copy2D", "dst", dst, (rows-1)*dstStride+cols) || !r.need("Copy2D", "src", src, (rows-1)*srcStride+cols) {
		return
	}
	n := float64(rows * cols)
	if rows == 1 || (dstStride == cols && srcStride == cols) {
		r.add(Launch{Op: "Copy2D", Kernel: "memcpy D2D", Unit: DeviceCopy, Bytes: 8 * n})
		return
	}
	r.kernel("Copy2D", "trm_copy2d", 0, 8*n)
}

// Transpose implements engine.Backend: trm_transpose, 8 bytes per element.
func (r *Recorder) Transpose(dst, src engine.Buf, batch, rows, cols int) {
	n := batch * rows * cols
	if !r.need("Transpose", "dst", dst, n) || !r.need("Transpose", "src", src, n) || n == 0 {
		return
	}
	r.kernel("Transpose", "trm_transpose", 0, 8*float64(n))
}

// Add implements engine.Backend: trm_add, 1 FLOP and 12 bytes per element.
func (r *Recorder) Add(dst, a, b engine.Buf) {
	n := dst.Len()
	if !r.need("Add", "a", a, n) || !r.need("Add", "b", b, n) || n == 0 {
		return
	}
	r.kernel("Add", "trm_add", float64(n), 12*float64(n))
}

// Axpby implements engine.Backend: trm_axpby, 3 FLOPs and 12 bytes per element.
func (r *Recorder) Axpby(dst, a, b engine.Buf, _, _ float32) {
	n := dst.Len()
	if !r.need("Axpby", "a", a, n) || !r.need("Axpby", "b", b, n) || n == 0 {
		return
	}
	r.kernel("Axpby", "trm_axpby", 3*float64(n), 12*float64(n))
}

// Fill implements engine.Backend: trm_fill_<type>, one store per element.
func (r *Recorder) Fill(dst engine.Buf, _ float32) {
	n := dst.Len()
	if n == 0 {
		return
	}
	r.kernel("Fill", "trm_fill_"+dst.DType().String(), 0, float64(n*elemSize(dst.DType())))
}

// AddRMSNorm implements engine.Backend: trm_add_rmsnorm, 4 FLOPs and 12
// bytes per element (8 without b) plus 4 bytes per row.
func (r *Recorder) AddRMSNorm(y, rstd, a, b engine.Buf, rows, cols int, _ float32) {
	n := rows * cols
	if !r.need("AddRMSNorm", "y", y, n) || !r.need("AddRMSNorm", "rstd", rstd, rows) || !r.need("AddRMSNorm", "a", a, n) || n == 0 {
		return
	}
	per := 8.0
	if b != nil {
		if !r.need("AddRMSNorm", "b", b, n) {
			return
		}
		per = 12
	}
	r.kernel("AddRMSNorm", "trm_add_rmsnorm", 4*float64(n), per*float64(n)+4*float64(rows))
}

// RMSNormBackward implements engine.Backend: trm_rmsnorm_backward, 5
// FLOPs and 12 bytes per element plus 4 bytes per row.
func (r *Recorder) RMSNormBackward(dx, dy, y, rstd engine.Buf, rows, cols int) {
	n := rows * cols
	if !r.need("RMSNormBackward", "dx", dx, n) || !r.need("RMSNormBackward", "dy", dy, n) || !r.need("RMSNormBackward", "y", y, n) ||
		!r.need("RMSNormBackward", "rstd", rstd, rows) || n == 0 {
		return
	}
	r.kernel("RMSNormBackward", "trm_rmsnorm_backward", 5*float64(n), 12*float64(n)+4*float64(rows))
}

// SwiGLU implements engine.Backend: trm_swiglu, 6 FLOPs and 12 bytes per output.
func (r *Recorder) SwiGLU(act, gu engine.Buf, rows, inter int) {
	n := rows * inter
	if !r.need("SwiGLU", "act", act, n) || !r.need("SwiGLU", "gu", gu, 2*n) || n == 0 {
		return
	}
	r.kernel("SwiGLU", "trm_swiglu", 6*float64(n), 12*float64(n))
}

// SwiGLUBackward implements engine.Backend: trm_swiglu_backward, 10 FLOPs
// and 20 bytes per output.
func (r *Recorder) SwiGLUBackward(dgu, dact, gu engine.Buf, rows, inter int) {
	n := rows * inter
	if !r.need("SwiGLUBackward", "dgu", dgu, 2*n) || !r.need("SwiGLUBackward", "dact", dact, n) || !r.need("SwiGLUBackward", "gu", gu, 2*n) || n == 0 {
		return
	}
	r.kernel("SwiGLUBackward", "trm_swiglu_backward", 10*float64(n), 20*float64(n))
}

// Rope implements engine.Backend: trm_rope, 6 FLOPs and 16 bytes per
// rotated pair (the q and k heads).
func (r *Recorder) Rope(qkv, cos, sin engine.Buf, batch, seq, heads, headDim int, _ bool) {
	H := heads * headDim
	if !r.need("Rope", "qkv", qkv, batch*seq*3*H) || !r.need("Rope", "cos", cos, seq*headDim) || !r.need("Rope", "sin", sin, seq*headDim) {
		return
	}
	pairs := float64(batch * seq * 2 * heads * (headDim / 2))
	if pairs == 0 {
		return
	}
	r.kernel("Rope", "trm_rope", 6*pairs, 16*pairs)
}

// attnDMax mirrors the attention kernels' instantiations (kernels/README.md,
// cuda/ops.go): the smallest padded head width holding hd.
func attnDMax(hd int) (int, bool) {
	for _, d := range []int{16, 32, 64, 128, 256} {
		if hd <= d {
			return d, true
		}
	}
	return 0, false
}

func (r *Recorder) attnCheck(op string, batch, seq, heads, hd int) (int, bool) {
	d, ok := attnDMax(hd)
	if !ok || hd <= 0 {
		r.fail("%s: head size %d outside the kernels' range 1..256", op, hd)
		return 0, false
	}
	return d, batch*seq*heads > 0
}

// Attention implements engine.Backend: trm_attn_fwd_d*, 4 S^2 hd FLOPs
// (the two products) plus S^2 exponentials per head, 4 (4 S hd + S)
// bytes per head.
func (r *Recorder) Attention(out, lse, qkv engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !r.need("Attention", "out", out, batch*seq*H) || !r.need("Attention", "lse", lse, batch*heads*seq) || !r.need("Attention", "qkv", qkv, batch*seq*3*H) {
		return
	}
	d, ok := r.attnCheck("Attention", batch, seq, heads, hd)
	if !ok {
		return
	}
	nh, S, D := float64(batch*heads), float64(seq), float64(hd)
	mm := 4 * S * S * D * nh
	r.add(Launch{Op: "Attention", Kernel: fmt.Sprintf("trm_attn_fwd_d%d", d), Unit: CUDACoreFP32,
		FLOPs: mm + S*S*nh, Bytes: 4 * (4*S*D + S) * nh, ModelFLOPs: mm})
}

// AttentionBackward implements engine.Backend: trm_attn_rowdot, then the
// key-side (8 S^2 hd FLOPs per head) and query-side (6 S^2 hd) kernels,
// which recompute the scores instead of accumulating with atomics. The
// model FLOPs are the backward's four products, 8 S^2 hd per head.
func (r *Recorder) AttentionBackward(dqkv, dout, qkv, out, lse engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !r.need("AttentionBackward", "dqkv", dqkv, batch*seq*3*H) || !r.need("AttentionBackward", "dout", dout, batch*seq*H) ||
		!r.need("AttentionBackward", "qkv", qkv, batch*seq*3*H) || !r.need("AttentionBackward", "out", out, batch*seq*H) ||
		!r.need("AttentionBackward", "lse", lse, batch*heads*seq) {
		return
	}
	d, ok := r.attnCheck("AttentionBackward", batch, seq, heads, hd)
	if !ok {
		return
	}
	nh, S, D := float64(batch*heads), float64(seq), float64(hd)
	r.kernel("AttentionBackward", "trm_attn_rowdot", 2*S*D*nh, (8*S*D+4*S)*nh)
	r.add(Launch{Op: "AttentionBackward", Kernel: fmt.Sprintf("trm_attn_bwd_dkv_d%d", d), Unit: CUDACoreFP32,
		FLOPs: 8 * S * S * D * nh, Bytes: 4 * (6*S*D + 2*S) * nh, ModelFLOPs: 4 * S * S * D * nh})
	r.add(Launch{Op: "AttentionBackward", Kernel: fmt.Sprintf("trm_attn_bwd_dq_d%d", d), Unit: CUDACoreFP32,
		FLOPs: 6 * S * S * D * nh, Bytes: 4 * (5*S*D + 2*S) * nh, ModelFLOPs: 4 * S * S * D * nh})
}

// Embed implements engine.Backend: trm_embed over B*S*H elements, 3 FLOPs
// and 12 bytes each with learned positions, else 1 FLOP and 8 bytes.
func (r *Recorder) Embed(x, tok, pos, puzzle, inputs, pids engine.Buf, d engine.EmbedDims) {
	S := d.P + d.L
	n := d.B * S * d.H
	if !r.need("Embed", "x", x, n) || !r.need("Embed", "tok", tok, d.V*d.H) || !r.need("Embed", "inputs", inputs, d.B*d.L) || !r.need("Embed", "pids", pids, d.B) {
		return
	}
	if d.Ndim > 0 && !r.need("Embed", "puzzle", puzzle, d.NumPuzzles*d.Ndim) {
		return
	}
	if n == 0 {
		return
	}
	flops, bytes := 1.0, 8.0
	if pos != nil {
		if !r.need("Embed", "pos", pos, S*d.H) {
			return
		}
		flops, bytes = 3, 12
	}
	r.kernel("Embed", "trm_embed", flops*float64(n), bytes*float64(n))
}

// oneHotElems is the CUDA backend's bound on the one-hot scratch of
// EmbedBackward (rows x V floats, cuda/ops.go).
const oneHotElems = 32 << 20

// EmbedBackward implements engine.Backend: per chunk of positions a
// one-hot matrix (trm_embed_onehot, 4 V bytes per row) and its true-fp32
// product with dx into dTok; then trm_embed_pos_backward (2 B FLOPs and
// 4 (B + 2) bytes per element of dPos) and trm_embed_local_backward (1
// FLOP and 8 bytes per element of dLocal).
func (r *Recorder) EmbedBackward(dTok, dPos, dLocal, dx, inputs engine.Buf, d engine.EmbedDims) {
	S := d.P + d.L
	if !r.need("EmbedBackward", "dTok", dTok, d.V*d.H) || !r.need("EmbedBackward", "dx", dx, d.B*S*d.H) || !r.need("EmbedBackward", "inputs", inputs, d.B*d.L) {
		return
	}
	rows := d.B * S
	if rows > 0 && d.V > 0 && d.H > 0 {
		chunk := max(1, min(rows, oneHotElems/d.V))
		for r0 := 0; r0 < rows; r0 += chunk {
			cnt := min(chunk, rows-r0)
			r.kernel("EmbedBackward", "trm_embed_onehot", 0, float64(4*d.V*cnt+4*cnt))
			r.gemm("EmbedBackward", engine.Gemm{TransA: true, M: d.V, N: d.H, K: cnt, Alpha: 1, Beta: 1,
				A: &sbuf{engine.F32, cnt * d.V}, Lda: d.V, B: &sbuf{engine.F32, cnt * d.H}, Ldb: d.H, C: dTok, Ldc: d.H}, CUDACoreFP32)
		}
	}
	if dPos != nil && r.need("EmbedBackward", "dPos", dPos, S*d.H) {
		n, B := float64(S*d.H), float64(d.B)
		r.kernel("EmbedBackward", "trm_embed_pos_backward", 2*B*n, 4*(B+2)*n)
	}
	if d.Ndim > 0 && dLocal != nil && r.need("EmbedBackward", "dLocal", dLocal, d.B*d.Ndim) {
		n := float64(d.B * d.Ndim)
		r.kernel("EmbedBackward", "trm_embed_local_backward", n, 8*n)
	}
}

// ACTReset implements engine.Backend: trm_act_reset, charged its bound of
// 16 S H + 16 L bytes for every slot, as if all had halted (the first
// step of a run; later steps reset only the halted ones).
func (r *Recorder) ACTReset(zH, zL engine.Buf, st engine.ACTState, curInputs, curLabels, curPIDs, inputs, labels, pids, hInit, lInit engine.Buf, batch, seqTotal, seqLen, hidden int) {
	n := batch * seqTotal * hidden
	if !r.need("ACTReset", "zH", zH, n) || !r.need("ACTReset", "zL", zL, n) || !r.need("ACTReset", "steps", st.Steps, batch) ||
		!r.need("ACTReset", "halted", st.Halted, batch) || !r.need("ACTReset", "inputs", inputs, batch*seqLen) ||
		!r.need("ACTReset", "curInputs", curInputs, batch*seqLen) || !r.need("ACTReset", "hInit", hInit, hidden) {
		return
	}
	if batch == 0 {
		return
	}
	r.kernel("ACTReset", "trm_act_reset", 0, float64(batch)*(16*float64(seqTotal*hidden)+16*float64(seqLen)))
}

// ACTHalt implements engine.Backend: trm_act_halt, 3 FLOPs and 20 bytes per slot.
func (r *Recorder) ACTHalt(st engine.ACTState, q, minSteps engine.Buf, batch, _ int, _, _ bool) {
	if !r.need("ACTHalt", "steps", st.Steps, batch) || !r.need("ACTHalt", "q", q, 2*batch) || !r.need("ACTHalt", "minSteps", minSteps, batch) || batch == 0 {
		return
	}
	r.kernel("ACTHalt", "trm_act_halt", 3*float64(batch), 20*float64(batch))
}

// LossHead implements engine.Backend: trm_loss_head, 6 V FLOPs and 8 V + 8
// bytes per position.
func (r *Recorder) LossHead(lb engine.LossBufs, d engine.LossDims) {
	if !r.need("LossHead", "logits", lb.Logits, d.B*d.L*d.V) || !r.need("LossHead", "labels", lb.Labels, d.B*d.L) || !r.need("LossHead", "q", lb.Q, 2*d.B) {
		return
	}
	if lb.DLogits != nil && !r.need("LossHead", "dlogits", lb.DLogits, d.B*d.L*d.V) {
		return
	}
	pos, V := float64(d.B*d.L), float64(d.V)
	if pos == 0 {
		return
	}
	r.kernel("LossHead", "trm_loss_head", 6*V*pos, (8*V+8)*pos)
}

// AdamATan2 implements engine.Backend: the step's scalars staged to the
// device (20 bytes), then trm_adam_atan2, 15 FLOPs and 28 bytes per element.
func (r *Recorder) AdamATan2(params, grads, m, v engine.Buf, h engine.AdamHyper) {
	n := params.Len()
	if !r.need("AdamATan2", "grads", grads, n) || !r.need("AdamATan2", "m", m, n) || !r.need("AdamATan2", "v", v, n) {
		return
	}
	if h.Step < 1 {
		r.fail("AdamATan2: step %d, steps count from 1", h.Step)
		return
	}
	r.add(Launch{Op: "AdamATan2", Kernel: "memcpy H2D", Unit: HostCopy, Bytes: 20})
	if n == 0 {
		return
	}
	r.kernel("AdamATan2", "trm_adam_atan2", 15*float64(n), 28*float64(n))
}

// SignSGDRows implements engine.Backend: the scalars staged (8 bytes),
// then trm_signsgd_rows, 2 FLOPs and 4 bytes per gradient element plus 4
// FLOPs and 8 bytes per updated element, charged as if every id were
// distinct.
func (r *Recorder) SignSGDRows(table, grads, ids engine.Buf, n, dim int, _, _ float32) {
	if !r.need("SignSGDRows", "grads", grads, n*dim) || !r.need("SignSGDRows", "ids", ids, n) || !r.need("SignSGDRows", "table", table, 0) {
		return
	}
	r.add(Launch{Op: "SignSGDRows", Kernel: "memcpy H2D", Unit: HostCopy, Bytes: 8})
	if n == 0 || dim == 0 {
		return
	}
	e := float64(n * dim)
	r.kernel("SignSGDRows", "trm_signsgd_rows", 6*e, 12*e)
}

// EMA implements engine.Backend: trm_ema, 3 FLOPs and 12 bytes per element.
func (r *Recorder) EMA(shadow, params engine.Buf, _ float32) {
	n := shadow.Len()
	if !r.need("EMA", "params", params, n) || n == 0 {
		return
	}
	r.kernel("EMA", "trm_ema", 3*float64(n), 12*float64(n))
}

// sumChunk is the CUDA backend's SumSquares chunk (cuda/ops.go).
const sumChunk = 1 << 14

// SumSquares implements engine.Backend: trm_sumsq_partial (2 FLOPs and 4
// bytes per element) and trm_sumsq_final over the chunk sums.
func (r *Recorder) SumSquares(dst, x engine.Buf) {
	if !r.need("SumSquares", "dst", dst, 1) {
		return
	}
	n := x.Len()
	if n == 0 {
		r.Fill(r.Slice(dst, 0, 1), 0)
		return
	}
	nc := float64((n + sumChunk - 1) / sumChunk)
	r.kernel("SumSquares", "trm_sumsq_partial", 2*float64(n), 4*float64(n)+8*nc)
	r.kernel("SumSquares", "trm_sumsq_final", nc, 8*nc+8)
}
