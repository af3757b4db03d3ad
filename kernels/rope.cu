// Rotary position embedding on the q and k heads of qkv, in place.
#include "common.cuh"

// trm_rope: for every row r = b*S + p of qkv [B*S, 3*nh*hd], every one of
// the 2*nh q/k heads and every j < hd/2, rotate the pair (v_j, v_{j+hd/2})
// by the position's angle: a' = a c - b s, b' = b c + a s; inverse applies
// the transpose (a c + b s, b c - a s), the backward of the forward.
// One thread per pair, so the in-place update has no hazards.
// FLOPs 6 per pair; bytes 16 per pair (two reads, two writes; the tables
// stay in cache).
TRM_KERNEL void trm_rope(float *qkv, const float *__restrict__ cosT, const float *__restrict__ sinT, i64 batch, i64 seq,
                         i64 heads, i64 hd, i64 inverse) {
    i64 half = hd / 2;
    i64 per_row = 2 * heads * half;
    i64 n = batch * seq * per_row;
    i64 H = heads * hd;
    for (i64 e = gs_start(); e < n; e += gs_step()) {
        i64 r = e / per_row, k = e - r * per_row;
        i64 h = k / half, j = k - h * half;
        i64 p = r % seq;
        float c = cosT[p * hd + j], s = sinT[p * hd + j];
        float *v = qkv + r * 3 * H + h * hd;
        float a = v[j], b = v[j + half];
        if (inverse) {
            v[j] = a * c + b * s;
            v[j + half] = b * c - a * s;
        } else {
            v[j] = a * c - b * s;
            v[j + half] = b * c + a * s;
        }
    }
}
