//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/tinyrecursive/trm/engine"
	"gorgonia.org/cu"
)

// need checks that each named buffer exists, has the dtype and holds at
// least n elements; args come in (name string, buffer, n int) triples.
// The messages match the CPU backend's, so errors read the same.
func (b *Backend) need(op string, dt engine.DType, args ...any) bool {
	for i := 0; i+2 < len(args); i += 3 {
		name := args[i].(string)
		n := args[i+2].(int)
		x, _ := args[i+1].(engine.Buf)
		bx, _ := x.(*buf)
		if x == nil || bx == nil {
			b.failf(op, "%s is missing", name)
			return false
		}
		if bx.dt != dt && !(dt == anyType) {
			b.failf(op, "%s is %v, needs %v", name, bx.dt, dt)
			return false
		}
		if bx.n < n {
			b.failf(op, "%s has %d elements, needs %d", name, bx.n, n)
			return false
		}
		if n > 0 && bx.ptr == 0 {
			b.failf(op, "%s was never allocated (an earlier Alloc failed)", name)
			return false
		}
	}
	return true
}

// anyType lets need skip the dtype check.
const anyType engine.DType = -1

func ptr(x engine.Buf) uint64 {
	if x == nil {
		return 0
	}
	bx, _ := x.(*buf)
	if bx == nil {
		return 0
	}
	return uint64(bx.ptr)
}

// dims3 is a launch shape.
type dims3 [3]int

// gridFor sizes a grid-stride launch of n elements: 256 threads, at most
// 32 blocks per SM (enough to fill the GPU, few enough to amortise index
// maths).
func (b *Backend) gridFor(n int) (dims3, dims3) {
	blocks := max(1, min((n+255)/256, 32*max(b.dev.sms, 1)))
	return dims3{blocks, 1, 1}, dims3{256, 1, 1}
}

// kernelArgs is a kernel launch: its graph key (postArgs).
type kernelArgs struct {
	Name        string
	Grid, Block dims3
	Args        []uint64
}

// kernel queues a launch of the named kernel with 8-byte arguments.
func (b *Backend) kernel(desc string, name string, grid, block dims3, args ...uint64) {
	fn := b.dev.fns[name]
	postArgs(b, desc, kernelArgs{name, grid, block, args}, func(x *execCtx, a kernelArgs) error {
		params := make([]unsafe.Pointer, len(a.Args))
		for i := range a.Args {
			params[i] = unsafe.Pointer(&a.Args[i])
		}
		countLaunch(b)
		if err := fn.Launch(a.Grid[0], a.Grid[1], a.Grid[2], a.Block[0], a.Block[1], a.Block[2], 0, b.stream, params); err != nil {
			return fmt.Errorf("launching %s grid %v block %v: %w", a.Name, a.Grid, a.Block, err)
		}
		return nil
	})
}

func hashName(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// elementwise queues a grid-stride kernel over n elements.
func (b *Backend) elementwise(desc, name string, n int, args ...uint64) {
	if n <= 0 {
		return
	}
	g, t := b.gridFor(n)
	b.kernel(desc, name, g, t, args...)
}

// scratchBuf returns an internal buffer of at least n elements for one
// purpose, reallocated (from the arena) only when it must grow. Captured
// graphs keep pointing at old ones, which the arena never frees.
func (b *Backend) scratchBuf(purpose string, dt engine.DType, n int) *buf {
	if b.scratch == nil {
		b.scratch = map[string]*buf{}
	}
	if s := b.scratch[purpose]; s != nil && s.n >= n && s.dt == dt {
		return &buf{dt: dt, ptr: s.ptr, n: n}
	}
	s := b.Alloc(dt, max(n, 1)).(*buf)
	if s.ptr == 0 {
		return s
	}
	b.scratch[purpose] = s
	return &buf{dt: dt, ptr: s.ptr, n: n}
}

// uploadHyper stages step-dependent scalars into a device array the
// kernel reads, so that the launch itself is identical every step (see
// kernels/optim.cu and the package comment on graphs).
func (b *Backend) uploadHyper(purpose string, v ...float32) *buf {
	s := b.scratchBuf(purpose, engine.F32, len(v))
	if s.ptr != 0 {
		b.Upload(s, v)
	}
	return s
}

// Gemm implements engine.Backend with cuBLAS in the backend's GEMM mode.
func (b *Backend) Gemm(g engine.Gemm) { b.gemm(g, b.opt.Gemm.compute()) }

func (b *Backend) gemm(g engine.Gemm, compute int) {
	batch := max(g.Batch, 1)
	desc := fmt.Sprintf("Gemm %dx%dx%d (transA %v, transB %v, batch %d, lda %d ldb %d ldc %d)", g.M, g.N, g.K, g.TransA, g.TransB, batch, g.Lda, g.Ldb, g.Ldc)
	na, nb, nc, ok := g.Extents()
	if !ok {
		b.failf("Gemm", "%s: leading dimensions too small", desc)
		return
	}
	for _, v := range []int{g.M, g.N, g.K, g.Lda, g.Ldb, g.Ldc, batch} {
		if v < 0 || v > math.MaxInt32 {
			b.failf("Gemm", "%s: a dimension is outside cuBLAS's int32 range", desc)
			return
		}
	}
	if !b.need(desc, engine.F32, "A", g.A, na, "B", g.B, nb, "C", g.C, nc) {
		return
	}
	if g.M == 0 || g.N == 0 {
		return
	}
	// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T:
	// swap the operands and the M/N roles; the transposes carry over.
	// cuBLAS wants ld >= 1 even for empty extents.
	lda, ldb, ldc := max(g.Lda, 1), max(g.Ldb, 1), max(g.Ldc, 1)
	pa, pb, pc := ptr(g.A), ptr(g.B), ptr(g.C)
	postArgs(b, desc, gemmArgs{g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, g.Beta, uintptr(pa), lda, g.StrideA, uintptr(pb), ldb, g.StrideB,
		uintptr(pc), ldc, g.StrideC, batch, compute}, func(x *execCtx, a gemmArgs) error {
		countLaunch(b)
		return b.blas.sgemm(a.TransB, a.TransA, a.N, a.M, a.K, a.Alpha, a.B, a.Ldb, a.StrideB, a.A, a.Lda, a.StrideA,
			a.Beta, a.C, a.Ldc, a.StrideC, a.Batch, a.Compute)
	})
}

// gemmArgs is a cuBLAS GEMM as the backend calls it (row-major operands,
// before the swap): its graph key (postArgs).
type gemmArgs struct {
	TransA, TransB bool
	M, N, K        int
	Alpha, Beta    float32
	A              uintptr
	Lda, StrideA   int
	B              uintptr
	Ldb, StrideB   int
	C              uintptr
	Ldc, StrideC   int
	Batch, Compute int
}

func cbits(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// Copy2D implements engine.Backend: one contiguous copy when the rows are
// dense, else the strided kernel.
func (b *Backend) Copy2D(dst engine.Buf, dstStride int, src engine.Buf, srcStride int, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	if !b.need("Copy2D", engine.F32, "dst", dst, (rows-1)*dstStride+cols, "src", src, (rows-1)*srcStride+cols) {
		return
	}
	pd, ps := cu.DevicePtr(ptr(dst)), cu.DevicePtr(ptr(src))
	if rows == 1 || (dstStride == cols && srcStride == cols) {
		n := int64(rows) * int64(cols) * 4
		postArgs(b, fmt.Sprintf("Copy2D %dx%d", rows, cols), copyArgs{pd, ps, n}, func(x *execCtx, a copyArgs) error {
			countLaunch(b)
			return wrapCU("cuMemcpyDtoDAsync", cu.MemcpyDtoDAsync(a.Dst, a.Src, a.Bytes, b.stream))
		})
		return
	}
	b.elementwise(fmt.Sprintf("Copy2D %dx%d (strides %d, %d)", rows, cols, dstStride, srcStride), "trm_copy2d", rows*cols,
		uint64(pd), i64arg(dstStride), uint64(ps), i64arg(srcStride), i64arg(rows), i64arg(cols))
}

// copyArgs is a device-to-device copy: its graph key (postArgs).
type copyArgs struct {
	Dst, Src cu.DevicePtr
	Bytes    int64
}

// Transpose implements engine.Backend with 32x32 shared-memory tiles.
func (b *Backend) Transpose(dst, src engine.Buf, batch, rows, cols int) {
	n := batch * rows * cols
	if !b.need("Transpose", engine.F32, "dst", dst, n, "src", src, n) {
		return
	}
	if n == 0 {
		return
	}
	ty, tz := (rows+31)/32, batch
	if ty > 65535 || tz > 65535 {
		b.failf("Transpose", "batch %d x rows %d exceeds the grid's 65535 limit", batch, rows)
		return
	}
	b.kernel(fmt.Sprintf("Transpose %dx%dx%d", batch, rows, cols), "trm_transpose", dims3{(cols + 31) / 32, ty, tz}, dims3{32, 8, 1},
		ptr(dst), ptr(src), i64arg(rows), i64arg(cols))
}

// Add implements engine.Backend.
func (b *Backend) Add(dst, x, y engine.Buf) {
	n := dst.Len()
	if !b.need("Add", engine.F32, "dst", dst, n, "a", x, n, "b", y, n) {
		return
	}
	b.elementwise(fmt.Sprintf("Add %d", n), "trm_add", n, ptr(dst), ptr(x), ptr(y), i64arg(n))
}

// Fill implements engine.Backend for every dtype.
func (b *Backend) Fill(dst engine.Buf, v float32) {
	d, _ := dst.(*buf)
	if d == nil {
		b.failf("Fill", "dst is missing")
		return
	}
	if !b.need("Fill", anyType, "dst", dst, d.n) {
		return
	}
	name := map[engine.DType]string{engine.F32: "trm_fill_f32", engine.F64: "trm_fill_f64", engine.I32: "trm_fill_i32"}[d.dt]
	b.elementwise(fmt.Sprintf("Fill %v %d", d.dt, d.n), name, d.n, ptr(dst), f64arg(float64(v)), i64arg(d.n))
}

// rowThreads picks the block of a row kernel: one warp per 128 columns,
// from 1 to 8 warps.
func rowThreads(cols int) int { return 32 * max(1, min(8, (cols+127)/128)) }

// AddRMSNorm implements engine.Backend: one block per row.
func (b *Backend) AddRMSNorm(y, rstd, a, bb engine.Buf, rows, cols int, eps float32) {
	n := rows * cols
	if !b.need("AddRMSNorm", engine.F32, "y", y, n, "rstd", rstd, rows, "a", a, n) {
		return
	}
	if bb != nil && !b.need("AddRMSNorm", engine.F32, "b", bb, n) {
		return
	}
	if rows == 0 || cols == 0 {
		return
	}
	b.kernel(fmt.Sprintf("AddRMSNorm %dx%d", rows, cols), "trm_add_rmsnorm", dims3{rows, 1, 1}, dims3{rowThreads(cols), 1, 1},
		ptr(y), ptr(rstd), ptr(a), ptr(bb), i64arg(rows), i64arg(cols), f64arg(float64(eps)))
}

// RMSNormBackward implements engine.Backend.
func (b *Backend) RMSNormBackward(dx, dy, y, rstd engine.Buf, rows, cols int) {
	n := rows * cols
	if !b.need("RMSNormBackward", engine.F32, "dx", dx, n, "dy", dy, n, "y", y, n, "rstd", rstd, rows) {
		return
	}
	if rows == 0 || cols == 0 {
		return
	}
	b.kernel(fmt.Sprintf("RMSNormBackward %dx%d", rows, cols), "trm_rmsnorm_backward", dims3{rows, 1, 1}, dims3{rowThreads(cols), 1, 1},
		ptr(dx), ptr(dy), ptr(y), ptr(rstd), i64arg(rows), i64arg(cols))
}

// SwiGLU implements engine.Backend.
func (b *Backend) SwiGLU(act, gu engine.Buf, rows, inter int) {
	if !b.need("SwiGLU", engine.F32, "act", act, rows*inter, "gu", gu, rows*2*inter) {
		return
	}
	b.elementwise(fmt.Sprintf("SwiGLU %dx%d", rows, inter), "trm_swiglu", rows*inter, ptr(act), ptr(gu), i64arg(rows), i64arg(inter))
}

// SwiGLUBackward implements engine.Backend.
func (b *Backend) SwiGLUBackward(dgu, dact, gu engine.Buf, rows, inter int) {
	if !b.need("SwiGLUBackward", engine.F32, "dgu", dgu, rows*2*inter, "dact", dact, rows*inter, "gu", gu, rows*2*inter) {
		return
	}
	b.elementwise(fmt.Sprintf("SwiGLUBackward %dx%d", rows, inter), "trm_swiglu_backward", rows*inter,
		ptr(dgu), ptr(dact), ptr(gu), i64arg(rows), i64arg(inter))
}

// Rope implements engine.Backend.
func (b *Backend) Rope(qkv, cos, sin engine.Buf, batch, seq, heads, hd int, inverse bool) {
	H := heads * hd
	if !b.need("Rope", engine.F32, "qkv", qkv, batch*seq*3*H, "cos", cos, seq*hd, "sin", sin, seq*hd) {
		return
	}
	n := batch * seq * 2 * heads * (hd / 2)
	b.elementwise(fmt.Sprintf("Rope B%d S%d heads %d hd %d inverse %v", batch, seq, heads, hd, inverse), "trm_rope", n,
		ptr(qkv), ptr(cos), ptr(sin), i64arg(batch), i64arg(seq), i64arg(heads), i64arg(hd), cbits(inverse))
}

// attnShape mirrors kernels/attention.cu's instantiation table.
type attnShape struct{ dmax, tpr, rows int }

var attnShapes = []attnShape{{16, 1, 64}, {32, 1, 64}, {64, 2, 64}, {128, 4, 32}, {256, 8, 16}}

// attnShapeFor returns the smallest instantiation holding head size hd.
func attnShapeFor(hd int) (attnShape, bool) {
	for _, s := range attnShapes {
		if hd <= s.dmax {
			return s, true
		}
	}
	return attnShape{}, false
}

func (b *Backend) attnCheck(op string, batch, seq, heads, hd int) (attnShape, bool) {
	s, ok := attnShapeFor(hd)
	if !ok || hd <= 0 {
		b.failf(op, "head size %d outside the kernels' range 1..256", hd)
		return s, false
	}
	if batch*heads > 65535 {
		b.failf(op, "batch %d x heads %d exceeds the grid's 65535 limit", batch, heads)
		return s, false
	}
	return s, true
}

// Attention implements engine.Backend with the flash-style kernel.
func (b *Backend) Attention(out, lse, qkv engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !b.need("Attention", engine.F32, "out", out, batch*seq*H, "lse", lse, batch*heads*seq, "qkv", qkv, batch*seq*3*H) {
		return
	}
	s, ok := b.attnCheck("Attention", batch, seq, heads, hd)
	if !ok || batch*seq*heads == 0 {
		return
	}
	scale := float64(float32(1 / math.Sqrt(float64(hd))))
	b.kernel(fmt.Sprintf("Attention B%d S%d heads %d hd %d", batch, seq, heads, hd), fmt.Sprintf("trm_attn_fwd_d%d", s.dmax),
		dims3{(seq + s.rows - 1) / s.rows, batch * heads, 1}, dims3{s.rows * s.tpr, 1, 1},
		ptr(out), ptr(lse), ptr(qkv), i64arg(batch), i64arg(seq), i64arg(heads), i64arg(hd), f64arg(scale))
}

// AttentionBackward implements engine.Backend: the row-dot term, then the
// key-side (dK, dV) and query-side (dQ) kernels, no atomics.
func (b *Backend) AttentionBackward(dqkv, dout, qkv, out, lse engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !b.need("AttentionBackward", engine.F32, "dqkv", dqkv, batch*seq*3*H, "dout", dout, batch*seq*H, "qkv", qkv, batch*seq*3*H,
		"out", out, batch*seq*H, "lse", lse, batch*heads*seq) {
		return
	}
	s, ok := b.attnCheck("AttentionBackward", batch, seq, heads, hd)
	if !ok || batch*seq*heads == 0 {
		return
	}
	D := b.scratchBuf("attention D", engine.F32, batch*heads*seq)
	if D.ptr == 0 {
		return
	}
	desc := fmt.Sprintf("AttentionBackward B%d S%d heads %d hd %d", batch, seq, heads, hd)
	b.elementwise(desc, "trm_attn_rowdot", batch*heads*seq, uint64(D.ptr), ptr(dout), ptr(out), i64arg(batch), i64arg(seq), i64arg(heads), i64arg(hd))
	scale := float64(float32(1 / math.Sqrt(float64(hd))))
	grid, block := dims3{(seq + s.rows - 1) / s.rows, batch * heads, 1}, dims3{s.rows * s.tpr, 1, 1}
	args := []uint64{ptr(dqkv), ptr(dout), ptr(qkv), ptr(lse), uint64(D.ptr), i64arg(batch), i64arg(seq), i64arg(heads), i64arg(hd), f64arg(scale)}
	b.kernel(desc, fmt.Sprintf("trm_attn_bwd_dkv_d%d", s.dmax), grid, block, args...)
	b.kernel(desc, fmt.Sprintf("trm_attn_bwd_dq_d%d", s.dmax), grid, block, args...)
}

// Embed implements engine.Backend; bad ids come back through the device
// error word at Sync with the CPU backend's message.
func (b *Backend) Embed(x, tok, pos, puzzle, inputs, pids engine.Buf, d engine.EmbedDims) {
	S := d.P + d.L
	if !b.need("Embed", engine.F32, "x", x, d.B*S*d.H, "tok", tok, d.V*d.H) || !b.need("Embed", engine.I32, "inputs", inputs, d.B*d.L, "pids", pids, d.B) {
		return
	}
	if d.Ndim > 0 && !b.need("Embed", engine.F32, "puzzle", puzzle, d.NumPuzzles*d.Ndim) {
		return
	}
	if pos != nil && !b.need("Embed", engine.F32, "pos", pos, S*d.H) {
		return
	}
	pz := ptr(puzzle)
	if d.Ndim == 0 {
		pz = 0
	}
	b.elementwise(fmt.Sprintf("Embed B%d L%d P%d H%d V%d", d.B, d.L, d.P, d.H, d.V), "trm_embed", d.B*S*d.H,
		ptr(x), ptr(tok), ptr(pos), pz, ptr(inputs), ptr(pids), i64arg(d.B), i64arg(d.L), i64arg(d.P), i64arg(d.H), i64arg(d.V),
		i64arg(d.Ndim), i64arg(d.NumPuzzles), f64arg(float64(d.PosScale)), f64arg(float64(d.Scale)), uint64(b.errDev))
}

// oneHotRows bounds the one-hot scratch of EmbedBackward (rows x V floats).
const oneHotElems = 32 << 20

// EmbedBackward implements engine.Backend. The token scatter-add is a GEMM
// with a one-hot matrix (kernels/embed.cu), in true fp32 whatever the GEMM
// mode, chunked over positions in a fixed order: deterministic, no atomics.
func (b *Backend) EmbedBackward(dTok, dPos, dLocal, dx, inputs engine.Buf, d engine.EmbedDims) {
	S := d.P + d.L
	if !b.need("EmbedBackward", engine.F32, "dTok", dTok, d.V*d.H, "dx", dx, d.B*S*d.H) || !b.need("EmbedBackward", engine.I32, "inputs", inputs, d.B*d.L) {
		return
	}
	if dPos != nil && !b.need("EmbedBackward", engine.F32, "dPos", dPos, S*d.H) {
		return
	}
	if d.Ndim > 0 && dLocal != nil && !b.need("EmbedBackward", engine.F32, "dLocal", dLocal, d.B*d.Ndim) {
		return
	}
	scale := d.Scale * d.PosScale
	rows := d.B * S
	if rows > 0 && d.V > 0 && d.H > 0 {
		chunk := max(1, min(rows, oneHotElems/d.V))
		oh := b.scratchBuf("embed one-hot", engine.F32, chunk*d.V)
		if oh.ptr == 0 {
			return
		}
		dxb := dx.(*buf)
		for r0 := 0; r0 < rows; r0 += chunk {
			cnt := min(chunk, rows-r0)
			b.elementwise("EmbedBackward one-hot", "trm_embed_onehot", cnt*d.V, uint64(oh.ptr), ptr(inputs), i64arg(d.L), i64arg(d.P), i64arg(d.V), i64arg(r0), i64arg(cnt))
			rowsOfDx := &buf{dt: engine.F32, ptr: dxb.ptr + cu.DevicePtr(r0*d.H*4), n: cnt * d.H}
			b.gemm(engine.Gemm{TransA: true, M: d.V, N: d.H, K: cnt, Alpha: scale, Beta: 1, A: oh, Lda: d.V, B: rowsOfDx, Ldb: d.H, C: dTok, Ldc: d.H}, computeFP32)
		}
	}
	if dPos != nil {
		b.elementwise("EmbedBackward positions", "trm_embed_pos_backward", S*d.H, ptr(dPos), ptr(dx), i64arg(d.B), i64arg(S*d.H), f64arg(float64(scale)))
	}
	if d.Ndim > 0 && dLocal != nil {
		b.elementwise("EmbedBackward puzzle rows", "trm_embed_local_backward", d.B*d.Ndim, ptr(dLocal), ptr(dx), i64arg(d.B), i64arg(S*d.H), i64arg(d.Ndim), f64arg(float64(scale)))
	}
}

// ACTReset implements engine.Backend.
func (b *Backend) ACTReset(zH, zL engine.Buf, st engine.ACTState, curInputs, curLabels, curPIDs, inputs, labels, pids, hInit, lInit engine.Buf, batch, seqTotal, seqLen, hidden int) {
	n := batch * seqTotal * hidden
	if !b.need("ACTReset", engine.F32, "zH", zH, n, "zL", zL, n, "hInit", hInit, hidden, "lInit", lInit, hidden) ||
		!b.need("ACTReset", engine.I32, "steps", st.Steps, batch, "halted", st.Halted, batch,
			"curInputs", curInputs, batch*seqLen, "curLabels", curLabels, batch*seqLen, "curPIDs", curPIDs, batch,
			"inputs", inputs, batch*seqLen, "labels", labels, batch*seqLen, "pids", pids, batch) {
		return
	}
	b.elementwise(fmt.Sprintf("ACTReset B%d S%d L%d H%d", batch, seqTotal, seqLen, hidden), "trm_act_reset", max(n, batch*seqLen, batch),
		ptr(zH), ptr(zL), ptr(st.Steps), ptr(st.Halted), ptr(curInputs), ptr(curLabels), ptr(curPIDs), ptr(inputs), ptr(labels), ptr(pids),
		ptr(hInit), ptr(lInit), i64arg(batch), i64arg(seqTotal), i64arg(seqLen), i64arg(hidden))
}

// ACTHalt implements engine.Backend.
func (b *Backend) ACTHalt(st engine.ACTState, q, minSteps engine.Buf, batch, maxSteps int, training, noACTContinue bool) {
	if !b.need("ACTHalt", engine.I32, "steps", st.Steps, batch, "halted", st.Halted, batch, "minSteps", minSteps, batch) ||
		!b.need("ACTHalt", engine.F32, "q", q, 2*batch) {
		return
	}
	b.elementwise(fmt.Sprintf("ACTHalt B%d", batch), "trm_act_halt", batch, ptr(st.Steps), ptr(st.Halted), ptr(q), ptr(minSteps),
		i64arg(batch), i64arg(maxSteps), cbits(training), cbits(noACTContinue))
}

// LossHead implements engine.Backend: one block per example.
func (b *Backend) LossHead(lb engine.LossBufs, d engine.LossDims) {
	B, L, V := d.B, d.L, d.V
	if !b.need("LossHead", engine.F32, "logits", lb.Logits, B*L*V, "q", lb.Q, 2*B, "q_target", lb.QTarget, B) ||
		!b.need("LossHead", engine.I32, "labels", lb.Labels, B*L, "steps", lb.Steps, B, "preds", lb.Preds, B*L,
			"n_valid", lb.NValid, B, "n_correct", lb.NCorrect, B, "seq_correct", lb.SeqCorrect, B) ||
		!b.need("LossHead", engine.F64, "lm_loss", lb.LMLoss, B, "q_halt_loss", lb.QHaltLoss, B, "q_continue_loss", lb.QContLoss, B) {
		return
	}
	if lb.DLogits != nil && !b.need("LossHead", engine.F32, "dlogits", lb.DLogits, B*L*V, "dq", lb.DQ, 2*B) {
		return
	}
	if lb.NextQ != nil && !b.need("LossHead", engine.F32, "next_q", lb.NextQ, 2*B) {
		return
	}
	if B == 0 {
		return
	}
	dq := ptr(lb.DQ)
	if lb.DLogits == nil {
		dq = 0
	}
	b.kernel(fmt.Sprintf("LossHead B%d L%d V%d", B, L, V), "trm_loss_head", dims3{B, 1, 1}, dims3{128, 1, 1},
		ptr(lb.Logits), ptr(lb.Labels), ptr(lb.Q), ptr(lb.NextQ), ptr(lb.Steps), ptr(lb.DLogits), dq, ptr(lb.Preds),
		ptr(lb.LMLoss), ptr(lb.QHaltLoss), ptr(lb.QContLoss), ptr(lb.QTarget), ptr(lb.NValid), ptr(lb.NCorrect), ptr(lb.SeqCorrect),
		i64arg(B), i64arg(L), i64arg(V), cbits(d.Softmax), i64arg(d.HaltMaxSteps), f64arg(float64(d.GradScale)), uint64(b.errDev))
}

// AdamATan2 implements engine.Backend in one launch over the flat buffer;
// the step's scalars travel through a staged device array.
func (b *Backend) AdamATan2(params, grads, m, v engine.Buf, h engine.AdamHyper) {
	n := params.Len()
	if !b.need("AdamATan2", engine.F32, "params", params, n, "grads", grads, n, "m", m, n, "v", v, n) {
		return
	}
	if h.Step < 1 {
		b.failf("AdamATan2", "step %d, steps count from 1", h.Step)
		return
	}
	decay := float32(1 - h.LR*h.WeightDecay)
	stepSize := float32(h.LR / (1 - math.Pow(h.Beta1, float64(h.Step))))
	bc2 := float32(math.Sqrt(1 - math.Pow(h.Beta2, float64(h.Step))))
	w1, w2 := float32(1-h.Beta1), float32(1-h.Beta2)
	hy := b.uploadHyper("adam hyper", decay, stepSize, bc2, w1, w2)
	if hy.ptr == 0 || n == 0 {
		return
	}
	b.elementwise(fmt.Sprintf("AdamATan2 %d", n), "trm_adam_atan2", n, ptr(params), ptr(grads), ptr(m), ptr(v), uint64(hy.ptr), i64arg(n))
}

// SignSGDRows implements engine.Backend: one block per gradient row; the
// first row of each id owns its update.
func (b *Backend) SignSGDRows(table, grads, ids engine.Buf, n, dim int, lr, wd float32) {
	if !b.need("SignSGDRows", engine.F32, "table", table, 0, "grads", grads, n*dim) || !b.need("SignSGDRows", engine.I32, "ids", ids, n) {
		return
	}
	rows := table.Len() / max(dim, 1)
	hy := b.uploadHyper("sign-sgd hyper", lr, wd)
	if hy.ptr == 0 || n == 0 || dim == 0 {
		return
	}
	b.kernel(fmt.Sprintf("SignSGDRows n%d dim%d", n, dim), "trm_signsgd_rows", dims3{n, 1, 1}, dims3{rowThreads(dim), 1, 1},
		ptr(table), ptr(grads), ptr(ids), uint64(hy.ptr), i64arg(n), i64arg(dim), i64arg(rows), uint64(b.errDev))
}

// EMA implements engine.Backend.
func (b *Backend) EMA(shadow, params engine.Buf, rate float32) {
	n := shadow.Len()
	if !b.need("EMA", engine.F32, "shadow", shadow, n, "params", params, n) {
		return
	}
	b.elementwise(fmt.Sprintf("EMA %d", n), "trm_ema", n, ptr(shadow), ptr(params), f64arg(float64(rate)), i64arg(n))
}

// sumChunk matches the CPU backend's chunking (the sums are then close;
// each backend is deterministic on its own).
const sumChunk = 1 << 14

// SumSquares implements engine.Backend: fixed chunks reduced in float64
// by fixed trees, then the chunk sums added in order by one thread.
func (b *Backend) SumSquares(dst, x engine.Buf) {
	if !b.need("SumSquares", engine.F64, "dst", dst, 1) || !b.need("SumSquares", engine.F32, "x", x, x.Len()) {
		return
	}
	n := x.Len()
	if n == 0 {
		b.Fill(b.Slice(dst, 0, 1), 0)
		return
	}
	nc := (n + sumChunk - 1) / sumChunk
	parts := b.scratchBuf("sum of squares parts", engine.F64, nc)
	if parts.ptr == 0 {
		return
	}
	b.kernel(fmt.Sprintf("SumSquares %d", n), "trm_sumsq_partial", dims3{nc, 1, 1}, dims3{256, 1, 1}, uint64(parts.ptr), ptr(x), i64arg(n), i64arg(sumChunk))
	b.kernel(fmt.Sprintf("SumSquares %d", n), "trm_sumsq_final", dims3{1, 1, 1}, dims3{32, 1, 1}, ptr(dst), uint64(parts.ptr), i64arg(nc))
}

func countLaunch(b *Backend) { atomicAdd(&b.stats.Launches, 1) }

// Axpby implements engine.Backend. The kernel is looked up before the
// launch so that a fatbin or kernel table without trm_axpby is a clear
// error at Sync rather than a launch of an empty function handle.
func (b *Backend) Axpby(dst, x, y engine.Buf, alpha, beta float32) {
	n := dst.Len()
	if !b.need("Axpby", engine.F32, "dst", dst, n, "a", x, n, "b", y, n) {
		return
	}
	if _, ok := b.dev.fns["trm_axpby"]; !ok {
		b.failf("Axpby", "kernel trm_axpby is not loaded (kernelNames in cuda/device.go)")
		return
	}
	b.elementwise(fmt.Sprintf("Axpby %d", n), "trm_axpby", n, ptr(dst), ptr(x), ptr(y), f64arg(float64(alpha)), f64arg(float64(beta)), i64arg(n))
}
