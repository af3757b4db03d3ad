//go:build cudaemu

// Package emu runs the trm CUDA kernels on the CPU (kernels/emu.h) so that
// their logic is tested against the CPU backend where no GPU exists:
//
//	go test -tags cudaemu ./kernels/emu/
//
// It is a test harness, not a backend: each launch runs its blocks one
// after another with one OS thread per CUDA thread, so it is slow and
// checks indexing, masking, barriers and reductions, not performance.
//
// The src_*.h files are symbolic links to the kernel sources: emu.cc
// includes ../all.cu, which the go command's cache does not see, while it
// hashes every .h file of the package (through the links), so editing a
// kernel reruns these tests instead of reporting a stale cached pass.
package emu

/*
#cgo CXXFLAGS: -std=c++17 -O1 -pthread -Wno-unused-function
#cgo LDFLAGS: -pthread
typedef long long i64;
void emu_copy2d(int, int, int, int, int, float *, i64, const float *, i64, i64, i64);
void emu_transpose(int, int, int, int, int, float *, const float *, i64, i64);
void emu_add(int, int, int, int, int, float *, const float *, const float *, i64);
void emu_fill_f32(int, int, int, int, int, float *, double, i64);
void emu_axpby(int, int, int, int, int, float *, const float *, const float *, double, double, i64);
void emu_ema(int, int, int, int, int, float *, const float *, double, i64);
void emu_add_rmsnorm(int, int, int, int, int, float *, float *, const float *, const float *, i64, i64, double);
void emu_rmsnorm_backward(int, int, int, int, int, float *, const float *, const float *, const float *, i64, i64);
void emu_swiglu(int, int, int, int, int, float *, const float *, i64, i64);
void emu_swiglu_backward(int, int, int, int, int, float *, const float *, const float *, i64, i64);
void emu_rope(int, int, int, int, int, float *, const float *, const float *, i64, i64, i64, i64, i64);
void emu_attn_fwd(int, int, int, int, int, int, float *, float *, const float *, i64, i64, i64, i64, double);
void emu_attn_rowdot(int, int, int, int, int, float *, const float *, const float *, i64, i64, i64, i64);
void emu_attn_bwd(int, int, int, int, int, int, int, float *, const float *, const float *, const float *, const float *, i64, i64, i64, i64, double);
void emu_embed(int, int, int, int, int, float *, const float *, const float *, const float *, const int *, const int *, i64, i64, i64, i64, i64, i64, i64, double, double, int *);
void emu_embed_onehot(int, int, int, int, int, float *, const int *, i64, i64, i64, i64, i64);
void emu_embed_pos_backward(int, int, int, int, int, float *, const float *, i64, i64, double);
void emu_embed_local_backward(int, int, int, int, int, float *, const float *, i64, i64, i64, double);
void emu_act_reset(int, int, int, int, int, float *, float *, int *, const int *, int *, int *, int *, const int *, const int *, const int *, const float *, const float *, i64, i64, i64, i64);
void emu_act_halt(int, int, int, int, int, int *, int *, const float *, const int *, i64, i64, i64, i64);
void emu_loss_head(int, int, int, int, int, const float *, const int *, const float *, const float *, const int *, float *, float *, int *, double *, double *, double *, float *, int *, int *, int *, i64, i64, i64, i64, i64, double, int *);
void emu_adam(int, int, int, int, int, float *, const float *, float *, float *, const float *, i64);
void emu_signsgd(int, int, int, int, int, float *, const float *, const int *, const float *, i64, i64, i64, int *);
void emu_sumsq(int, const float *, i64, i64, double *, double *);
*/
import "C"

import "unsafe"

// Dims is a launch shape: grid x, y, z and block x, y.
type Dims struct{ GX, GY, GZ, BX, BY int }

// Grid1 is a 1-D launch of g blocks of b threads.
func Grid1(g, b int) Dims { return Dims{g, 1, 1, b, 1} }

func (d Dims) c() (C.int, C.int, C.int, C.int, C.int) {
	by := max(d.BY, 1)
	return C.int(max(d.GX, 1)), C.int(max(d.GY, 1)), C.int(max(d.GZ, 1)), C.int(d.BX), C.int(by)
}

func fp(v []float32) *C.float {
	if len(v) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&v[0]))
}

func dp(v []float64) *C.double {
	if len(v) == 0 {
		return nil
	}
	return (*C.double)(unsafe.Pointer(&v[0]))
}

func ip(v []int32) *C.int {
	if len(v) == 0 {
		return nil
	}
	return (*C.int)(unsafe.Pointer(&v[0]))
}

func i(v int) C.i64 { return C.i64(v) }

// The functions below launch the kernel of the same name (kernels/*.cu)
// with the given shape; slices stand in for device pointers (nil: null).

func Copy2D(d Dims, dst []float32, ds int, src []float32, ss, rows, cols int) {
	a, b, c, e, f := d.c()
	C.emu_copy2d(a, b, c, e, f, fp(dst), i(ds), fp(src), i(ss), i(rows), i(cols))
}

func Transpose(d Dims, dst, src []float32, rows, cols int) {
	a, b, c, e, f := d.c()
	C.emu_transpose(a, b, c, e, f, fp(dst), fp(src), i(rows), i(cols))
}

func Add(d Dims, dst, x, y []float32, n int) {
	a, b, c, e, f := d.c()
	C.emu_add(a, b, c, e, f, fp(dst), fp(x), fp(y), i(n))
}

func Axpby(d Dims, dst, x, y []float32, alpha, beta float64, n int) {
	a, b, c, e, f := d.c()
	C.emu_axpby(a, b, c, e, f, fp(dst), fp(x), fp(y), C.double(alpha), C.double(beta), i(n))
}

func EMA(d Dims, s, p []float32, rate float64, n int) {
	a, b, c, e, f := d.c()
	C.emu_ema(a, b, c, e, f, fp(s), fp(p), C.double(rate), i(n))
}

func AddRMSNorm(d Dims, y, rstd, x, r []float32, rows, cols int, eps float64) {
	a, b, c, e, f := d.c()
	C.emu_add_rmsnorm(a, b, c, e, f, fp(y), fp(rstd), fp(x), fp(r), i(rows), i(cols), C.double(eps))
}

func RMSNormBackward(d Dims, dx, dy, y, rstd []float32, rows, cols int) {
	a, b, c, e, f := d.c()
	C.emu_rmsnorm_backward(a, b, c, e, f, fp(dx), fp(dy), fp(y), fp(rstd), i(rows), i(cols))
}

func SwiGLU(d Dims, act, gu []float32, rows, inter int) {
	a, b, c, e, f := d.c()
	C.emu_swiglu(a, b, c, e, f, fp(act), fp(gu), i(rows), i(inter))
}

func SwiGLUBackward(d Dims, dgu, dact, gu []float32, rows, inter int) {
	a, b, c, e, f := d.c()
	C.emu_swiglu_backward(a, b, c, e, f, fp(dgu), fp(dact), fp(gu), i(rows), i(inter))
}

func Rope(d Dims, x, cos, sin []float32, batch, seq, heads, hd int, inverse bool) {
	a, b, c, e, f := d.c()
	inv := 0
	if inverse {
		inv = 1
	}
	C.emu_rope(a, b, c, e, f, fp(x), fp(cos), fp(sin), i(batch), i(seq), i(heads), i(hd), i(inv))
}

func AttnFwd(dmax int, d Dims, out, lse, qkv []float32, batch, seq, heads, hd int, scale float64) {
	a, b, c, e, f := d.c()
	C.emu_attn_fwd(C.int(dmax), a, b, c, e, f, fp(out), fp(lse), fp(qkv), i(batch), i(seq), i(heads), i(hd), C.double(scale))
}

func AttnRowdot(d Dims, D, dout, out []float32, batch, seq, heads, hd int) {
	a, b, c, e, f := d.c()
	C.emu_attn_rowdot(a, b, c, e, f, fp(D), fp(dout), fp(out), i(batch), i(seq), i(heads), i(hd))
}

func AttnBwd(dmax int, dq bool, d Dims, dqkv, dout, qkv, lse, D []float32, batch, seq, heads, hd int, scale float64) {
	a, b, c, e, f := d.c()
	q := 0
	if dq {
		q = 1
	}
	C.emu_attn_bwd(C.int(dmax), C.int(q), a, b, c, e, f, fp(dqkv), fp(dout), fp(qkv), fp(lse), fp(D), i(batch), i(seq), i(heads), i(hd), C.double(scale))
}

func Embed(d Dims, x, tok, pos, puzzle []float32, inputs, pids []int32, B, L, P, H, V, ndim, npz int, posScale, scale float64, errw []int32) {
	a, b, c, e, f := d.c()
	C.emu_embed(a, b, c, e, f, fp(x), fp(tok), fp(pos), fp(puzzle), ip(inputs), ip(pids), i(B), i(L), i(P), i(H), i(V), i(ndim), i(npz),
		C.double(posScale), C.double(scale), ip(errw))
}

func EmbedOneHot(d Dims, oh []float32, inputs []int32, L, P, V, r0, cnt int) {
	a, b, c, e, f := d.c()
	C.emu_embed_onehot(a, b, c, e, f, fp(oh), ip(inputs), i(L), i(P), i(V), i(r0), i(cnt))
}

func EmbedPosBackward(d Dims, dpos, dx []float32, B, SH int, scale float64) {
	a, b, c, e, f := d.c()
	C.emu_embed_pos_backward(a, b, c, e, f, fp(dpos), fp(dx), i(B), i(SH), C.double(scale))
}

func EmbedLocalBackward(d Dims, dl, dx []float32, B, SH, ndim int, scale float64) {
	a, b, c, e, f := d.c()
	C.emu_embed_local_backward(a, b, c, e, f, fp(dl), fp(dx), i(B), i(SH), i(ndim), C.double(scale))
}

func ACTReset(d Dims, zH, zL []float32, steps, halted, ci, cl, cp, bi, bl, bp []int32, hI, lI []float32, batch, S, L, H int) {
	a, b, c, e, f := d.c()
	C.emu_act_reset(a, b, c, e, f, fp(zH), fp(zL), ip(steps), ip(halted), ip(ci), ip(cl), ip(cp), ip(bi), ip(bl), ip(bp), fp(hI), fp(lI),
		i(batch), i(S), i(L), i(H))
}

func ACTHalt(d Dims, steps, halted []int32, q []float32, minSteps []int32, batch, maxSteps int, training, noCont bool) {
	a, b, c, e, f := d.c()
	C.emu_act_halt(a, b, c, e, f, ip(steps), ip(halted), fp(q), ip(minSteps), i(batch), i(maxSteps), i(b2i(training)), i(b2i(noCont)))
}

// LossOut are the loss head's outputs.
type LossOut struct {
	DLogits, DQ, QTarget []float32
	Preds, NV, NC, SC    []int32
	LM, QHalt, QCont     []float64
}

func LossHead(d Dims, logits []float32, labels []int32, q, nextQ []float32, steps []int32, o *LossOut, B, L, V int, softmax bool, haltMax int, gradScale float64, errw []int32) {
	a, b, c, e, f := d.c()
	C.emu_loss_head(a, b, c, e, f, fp(logits), ip(labels), fp(q), fp(nextQ), ip(steps), fp(o.DLogits), fp(o.DQ), ip(o.Preds), dp(o.LM), dp(o.QHalt),
		dp(o.QCont), fp(o.QTarget), ip(o.NV), ip(o.NC), ip(o.SC), i(B), i(L), i(V), i(b2i(softmax)), i(haltMax), C.double(gradScale), ip(errw))
}

func Adam(d Dims, p, g, m, v, hyper []float32, n int) {
	a, b, c, e, f := d.c()
	C.emu_adam(a, b, c, e, f, fp(p), fp(g), fp(m), fp(v), fp(hyper), i(n))
}

func SignSGD(d Dims, table, grads []float32, ids []int32, hyper []float32, n, dim, rows int, errw []int32) {
	a, b, c, e, f := d.c()
	C.emu_signsgd(a, b, c, e, f, fp(table), fp(grads), ip(ids), fp(hyper), i(n), i(dim), i(rows), ip(errw))
}

func SumSquares(x []float32, chunk int) float64 {
	nc := (len(x) + chunk - 1) / chunk
	parts := make([]float64, nc)
	dst := make([]float64, 1)
	C.emu_sumsq(C.int(nc), fp(x), i(len(x)), i(chunk), dp(parts), dp(dst))
	return dst[0]
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}
