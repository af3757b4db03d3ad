//go:build cudaemu

// The trm kernels compiled for the CPU with kernels/emu.h, and one C entry
// point per kernel that launches it with the caller's grid and block.
#define TRM_EMU 1
#include "../all.cu"

thread_local emu_dim3 threadIdx, blockIdx;
emu_dim3 blockDim, gridDim;
pthread_barrier_t emu_block_barrier;
pthread_barrier_t emu_warp_barrier[32];
uint64_t emu_shfl[1024];

#define G emu_dim3{(unsigned)gx, (unsigned)gy, (unsigned)gz}
#define B emu_dim3{(unsigned)bx, (unsigned)by, 1}
#define LAUNCH_ARGS int gx, int gy, int gz, int bx, int by

extern "C" {
void emu_copy2d(LAUNCH_ARGS, float *d, i64 ds, const float *s, i64 ss, i64 r, i64 c) { emu_launch(G, B, trm_copy2d, d, ds, s, ss, r, c); }
void emu_transpose(LAUNCH_ARGS, float *d, const float *s, i64 r, i64 c) { emu_launch(G, B, trm_transpose, d, s, r, c); }
void emu_add(LAUNCH_ARGS, float *d, const float *a, const float *b, i64 n) { emu_launch(G, B, trm_add, d, a, b, n); }
void emu_fill_f32(LAUNCH_ARGS, float *d, double v, i64 n) { emu_launch(G, B, trm_fill_f32, d, v, n); }
void emu_axpby(LAUNCH_ARGS, float *d, const float *a, const float *b, double x, double y, i64 n) {
    emu_launch(G, B, trm_axpby, d, a, b, x, y, n);
}
void emu_ema(LAUNCH_ARGS, float *s, const float *p, double r, i64 n) { emu_launch(G, B, trm_ema, s, p, r, n); }
void emu_add_rmsnorm(LAUNCH_ARGS, float *y, float *rs, const float *a, const float *b, i64 r, i64 c, double eps) {
    emu_launch(G, B, trm_add_rmsnorm, y, rs, a, b, r, c, eps);
}
void emu_rmsnorm_backward(LAUNCH_ARGS, float *dx, const float *dy, const float *y, const float *rs, i64 r, i64 c) {
    emu_launch(G, B, trm_rmsnorm_backward, dx, dy, y, rs, r, c);
}
void emu_swiglu(LAUNCH_ARGS, float *a, const float *gu, i64 r, i64 i) { emu_launch(G, B, trm_swiglu, a, gu, r, i); }
void emu_swiglu_backward(LAUNCH_ARGS, float *d, const float *da, const float *gu, i64 r, i64 i) {
    emu_launch(G, B, trm_swiglu_backward, d, da, gu, r, i);
}
void emu_rope(LAUNCH_ARGS, float *x, const float *c, const float *s, i64 b, i64 sq, i64 h, i64 hd, i64 inv) {
    emu_launch(G, B, trm_rope, x, c, s, b, sq, h, hd, inv);
}
void emu_attn_fwd(int dmax, LAUNCH_ARGS, float *o, float *l, const float *x, i64 b, i64 s, i64 h, i64 hd, double sc) {
    switch (dmax) {
    case 16: emu_launch(G, B, trm_attn_fwd_d16, o, l, x, b, s, h, hd, sc); break;
    case 32: emu_launch(G, B, trm_attn_fwd_d32, o, l, x, b, s, h, hd, sc); break;
    case 64: emu_launch(G, B, trm_attn_fwd_d64, o, l, x, b, s, h, hd, sc); break;
    case 128: emu_launch(G, B, trm_attn_fwd_d128, o, l, x, b, s, h, hd, sc); break;
    case 256: emu_launch(G, B, trm_attn_fwd_d256, o, l, x, b, s, h, hd, sc); break;
    }
}
void emu_attn_rowdot(LAUNCH_ARGS, float *D, const float *dout, const float *out, i64 b, i64 s, i64 h, i64 hd) {
    emu_launch(G, B, trm_attn_rowdot, D, dout, out, b, s, h, hd);
}
void emu_attn_bwd(int dmax, int dq, LAUNCH_ARGS, float *dx, const float *dout, const float *x, const float *l, const float *D,
                  i64 b, i64 s, i64 h, i64 hd, double sc) {
#define BWD(DM)                                                                                                        \
    case DM:                                                                                                           \
        if (dq) emu_launch(G, B, trm_attn_bwd_dq_d##DM, dx, dout, x, l, D, b, s, h, hd, sc);                          \
        else emu_launch(G, B, trm_attn_bwd_dkv_d##DM, dx, dout, x, l, D, b, s, h, hd, sc);                            \
        break;
    switch (dmax) { BWD(16) BWD(32) BWD(64) BWD(128) BWD(256) }
#undef BWD
}
void emu_embed(LAUNCH_ARGS, float *x, const float *tok, const float *pos, const float *pz, const int *in, const int *pids, i64 Bn,
               i64 L, i64 P, i64 H, i64 V, i64 nd, i64 np, double ps, double sc, int *err) {
    emu_launch(G, B, trm_embed, x, tok, pos, pz, in, pids, Bn, L, P, H, V, nd, np, ps, sc, err);
}
void emu_embed_onehot(LAUNCH_ARGS, float *oh, const int *in, i64 L, i64 P, i64 V, i64 r0, i64 cnt) {
    emu_launch(G, B, trm_embed_onehot, oh, in, L, P, V, r0, cnt);
}
void emu_embed_pos_backward(LAUNCH_ARGS, float *dp, const float *dx, i64 Bn, i64 SH, double sc) {
    emu_launch(G, B, trm_embed_pos_backward, dp, dx, Bn, SH, sc);
}
void emu_embed_local_backward(LAUNCH_ARGS, float *dl, const float *dx, i64 Bn, i64 SH, i64 nd, double sc) {
    emu_launch(G, B, trm_embed_local_backward, dl, dx, Bn, SH, nd, sc);
}
void emu_act_reset(LAUNCH_ARGS, float *zH, float *zL, int *st, const int *hl, int *ci, int *cl, int *cp, const int *bi, const int *bl,
                   const int *bp, const float *hI, const float *lI, i64 b, i64 S, i64 L, i64 H) {
    emu_launch(G, B, trm_act_reset, zH, zL, st, hl, ci, cl, cp, bi, bl, bp, hI, lI, b, S, L, H);
}
void emu_act_halt(LAUNCH_ARGS, int *st, int *hl, const float *q, const int *ms, i64 b, i64 mx, i64 tr, i64 nc) {
    emu_launch(G, B, trm_act_halt, st, hl, q, ms, b, mx, tr, nc);
}
void emu_loss_head(LAUNCH_ARGS, const float *lg, const int *lab, const float *q, const float *nq, const int *st, float *dl, float *dq,
                   int *pr, double *lm, double *qh, double *qc, float *qt, int *nv, int *nc, int *sc, i64 Bn, i64 L, i64 V, i64 sm,
                   i64 hms, double gs, int *err) {
    emu_launch(G, B, trm_loss_head, lg, lab, q, nq, st, dl, dq, pr, lm, qh, qc, qt, nv, nc, sc, Bn, L, V, sm, hms, gs, err);
}
void emu_adam(LAUNCH_ARGS, float *p, const float *g, float *m, float *v, const float *hy, i64 n) {
    emu_launch(G, B, trm_adam_atan2, p, g, m, v, hy, n);
}
void emu_signsgd(LAUNCH_ARGS, float *t, const float *g, const int *ids, const float *hy, i64 n, i64 dim, i64 rows, int *err) {
    emu_launch(G, B, trm_signsgd_rows, t, g, ids, hy, n, dim, rows, err);
}
void emu_sumsq(int nc, const float *x, i64 n, i64 chunk, double *parts, double *dst) {
    emu_launch(emu_dim3{(unsigned)nc}, emu_dim3{256}, trm_sumsq_partial, parts, x, n, chunk);
    emu_launch(emu_dim3{1}, emu_dim3{32}, trm_sumsq_final, dst, (const double *)parts, (i64)nc);
}
}
