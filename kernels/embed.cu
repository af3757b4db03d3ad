// Input embedding: gather (forward) and scatter-add (backward).
#include "common.cuh"

// trm_embed: x [B,S,H] = Scale * PosScale * (row + pos) where row is the
// batch example's puzzle row flattened over [P, H] (zero past Ndim) for
// s < P and the token row for s >= P; pos and puzzle may be null.
// Out-of-range ids are reported through err and their rows written as 0.
// One thread per element of x.
// FLOPs 1-3 per element; bytes 8 per element (12 with positions).
TRM_KERNEL void trm_embed(float *__restrict__ x, const float *__restrict__ tok, const float *__restrict__ pos,
                          const float *__restrict__ puzzle, const int *__restrict__ inputs, const int *__restrict__ pids,
                          i64 B, i64 L, i64 P, i64 H, i64 V, i64 Ndim, i64 numPuzzles, double posScale, double scale,
                          int *err) {
    i64 S = P + L;
    i64 n = B * S * H;
    float ps = (float)posScale, sc = (float)scale;
    for (i64 e = gs_start(); e < n; e += gs_step()) {
        i64 r = e / H, i = e - r * H;
        i64 bi = r / S, s = r - bi * S;
        float v = 0.0f;
        if (s < P) {
            i64 f = s * H + i;
            if (Ndim > 0 && f < Ndim) {
                int id = pids[bi];
                if (id < 0 || id >= numPuzzles) report(err, TRM_ERR_EMBED_PUZZLE, (int)bi, 0, id, (int)numPuzzles);
                else v = puzzle[(i64)id * Ndim + f];
            }
        } else {
            int t = inputs[bi * L + s - P];
            if (t < 0 || t >= V) report(err, TRM_ERR_EMBED_TOKEN, (int)bi, (int)(s - P), t, (int)V);
            else v = tok[(i64)t * H + i];
        }
        if (pos) v = ps * (v + pos[s * H + i]);
        x[e] = v * sc;
    }
}

// trm_embed_onehot: oh [cnt, V] = one-hot of the token at flattened
// position r0 + k of [B, S] (all zeros for puzzle positions and for an
// out-of-range token). The token-embedding gradient is then the GEMM
// dTok += scale * oh^T dx: a scatter-add with a fixed reduction order, so
// it is deterministic without atomics, and it runs on the GEMM units.
// FLOPs 0; bytes 4 V per row written, 4 per row read.
TRM_KERNEL void trm_embed_onehot(float *__restrict__ oh, const int *__restrict__ inputs, i64 L, i64 P, i64 V, i64 r0,
                                 i64 cnt) {
    i64 S = P + L;
    i64 n = cnt * V;
    for (i64 e = gs_start(); e < n; e += gs_step()) {
        i64 k = e / V, c = e - k * V;
        i64 r = r0 + k;
        i64 bi = r / S, s = r - bi * S;
        float v = 0.0f;
        if (s >= P) v = (inputs[bi * L + s - P] == c) ? 1.0f : 0.0f;
        oh[e] = v;
    }
}

// trm_embed_pos_backward: dPos[s][i] += scale * dx[b][s][i] for b in
// order, the CPU reference's exact order of float32 additions.
// One thread per element of dPos; FLOPs 2 B per element; bytes 4 (B + 2).
TRM_KERNEL void trm_embed_pos_backward(float *__restrict__ dpos, const float *__restrict__ dx, i64 B, i64 SH,
                                       double scale) {
    float sc = (float)scale;
    for (i64 e = gs_start(); e < SH; e += gs_step()) {
        float acc = dpos[e];
        for (i64 b = 0; b < B; b++) acc += sc * dx[b * SH + e];
        dpos[e] = acc;
    }
}

// trm_embed_local_backward: dLocal [B, Ndim] = scale * the first Ndim
// elements of each example's dx (the puzzle rows, flattened over [P, H]).
// FLOPs 1 per element; bytes 8 per element.
TRM_KERNEL void trm_embed_local_backward(float *__restrict__ dlocal, const float *__restrict__ dx, i64 B, i64 SH,
                                         i64 Ndim, double scale) {
    float sc = (float)scale;
    i64 n = B * Ndim;
    for (i64 e = gs_start(); e < n; e += gs_step()) {
        i64 b = e / Ndim, f = e - b * Ndim;
        dlocal[e] = sc * dx[b * SH + f];
    }
}
