// Flash-style attention over all positions (no mask), forward and backward.
//
// Layout: qkv [B*S, 3*nh*hd] (q heads, then k heads, then v heads per row),
// out [B*S, nh*hd], lse [B, nh, S]. No S x S matrix ever reaches global
// memory: the forward streams key/value tiles through shared memory with an
// online softmax and keeps only the log-sum-exp of each score row; the
// backward recomputes P = exp(q k^T * scale - lse) tile by tile.
//
// Any head size up to 256 runs: kernels are instantiated for a padded
// width DMAX in {16, 32, 64, 128, 256} (the smallest that holds hd), and
// padded dimensions load as zeros. TPR threads share one row, each owning
// the interleaved dimensions d = part + TPR*k (so the TPR readers of a
// shared-memory row hit consecutive banks); their partial dot products meet
// in a shuffle-xor tree, a fixed order. DT = DMAX/TPR <= 32 values of each
// per-row vector live in registers.
//
// The backward is split in two kernels so that no gradient is accumulated
// with atomics (determinism): one owns key rows (dK, dV), the other query
// rows (dQ). Each recomputes the scores, which costs 4 S^2 hd extra FLOPs
// per head against an atomic dQ, and buys bitwise-reproducible gradients.
//
// Costs per (batch, head), S positions, hd head size:
//   forward   FLOPs 4 S^2 hd (+ S^2 exponentials); bytes 4 (4 S hd + S)
//             when the K/V tiles of each query block hit in L2.
//   rowdot    FLOPs 2 S hd; bytes 8 S hd + 4 S.
//   dK/dV     FLOPs 8 S^2 hd; bytes 4 (6 S hd + 2 S) (q, dO, lse, D
//             streamed once per key block: S/ROWS passes, mostly from L2).
//   dQ        FLOPs 6 S^2 hd; bytes 4 (5 S hd + 2 S).
#include "common.cuh"

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

// row_reduce adds v over the TPR consecutive lanes that share a row.
template <int TPR> __device__ __forceinline__ float row_reduce(float v) {
#pragma unroll
    for (int o = TPR / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// attn_fwd: grid (ceil(S/ROWS), B*nh), block ROWS*TPR threads.
template <int DMAX, int TPR, int BK, int ROWS>
__device__ __forceinline__ void attn_fwd(float *__restrict__ out, float *__restrict__ lse, const float *__restrict__ qkv,
                                         i64 batch, i64 seq, i64 heads, i64 hd, float scale) {
    constexpr int DT = DMAX / TPR;
    __shared__ float Ks[BK][DMAX];
    __shared__ float Vs[BK][DMAX];
    const i64 H = heads * hd, ld = 3 * H;
    const i64 bh = blockIdx.y, b = bh / heads, h = bh - b * heads;
    const int part = threadIdx.x % TPR;
    const i64 i = (i64)blockIdx.x * ROWS + threadIdx.x / TPR;
    const float *base = qkv + b * seq * ld;

    float q[DT], o[DT];
#pragma unroll
    for (int k = 0; k < DT; k++) {
        int d = part + TPR * k;
        q[k] = (i < seq && d < hd) ? base[i * ld + h * hd + d] : 0.0f;
        o[k] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (i64 j0 = 0; j0 < seq; j0 += BK) {
        __syncthreads();
        for (int e = threadIdx.x; e < BK * DMAX; e += blockDim.x) {
            int rr = e / DMAX, d = e - rr * DMAX;
            i64 j = j0 + rr;
            bool ok = j < seq && d < hd;
            Ks[rr][d] = ok ? base[j * ld + H + h * hd + d] : 0.0f;
            Vs[rr][d] = ok ? base[j * ld + 2 * H + h * hd + d] : 0.0f;
        }
        __syncthreads();
        float s[BK];
        float mt = m;
#pragma unroll
        for (int jj = 0; jj < BK; jj++) {
            float acc = 0.0f;
#pragma unroll
            for (int k = 0; k < DT; k++) acc += q[k] * Ks[jj][part + TPR * k];
            acc = row_reduce<TPR>(acc);
            s[jj] = (j0 + jj < seq) ? acc * scale : -INFINITY;
            mt = fmaxf(mt, s[jj]);
        }
        // Every tile holds at least one valid key (j0 < seq), so mt is
        // finite and the rescale factor of the first tile is exp(-inf) = 0.
        float corr = expf(m - mt);
        l *= corr;
#pragma unroll
        for (int k = 0; k < DT; k++) o[k] *= corr;
#pragma unroll
        for (int jj = 0; jj < BK; jj++) {
            float p = expf(s[jj] - mt);
            l += p;
#pragma unroll
            for (int k = 0; k < DT; k++) o[k] += p * Vs[jj][part + TPR * k];
        }
        m = mt;
    }
    if (i < seq) {
        float inv = 1.0f / l;
        float *orow = out + (b * seq + i) * H + h * hd;
#pragma unroll
        for (int k = 0; k < DT; k++) {
            int d = part + TPR * k;
            if (d < hd) orow[d] = o[k] * inv;
        }
        if (part == 0) lse[bh * seq + i] = m + logf(l);
    }
}

// attn_rowdot: D[bh*S + i] = dot(dout_i, out_i) over one head, the
// softmax-backward correction term. One thread per (b, h, i).
TRM_KERNEL void trm_attn_rowdot(float *__restrict__ D, const float *__restrict__ dout, const float *__restrict__ out,
                                i64 batch, i64 seq, i64 heads, i64 hd) {
    i64 n = batch * heads * seq;
    i64 H = heads * hd;
    for (i64 e = gs_start(); e < n; e += gs_step()) {
        i64 bh = e / seq, i = e - bh * seq;
        i64 b = bh / heads, h = bh - b * heads;
        const float *x = dout + (b * seq + i) * H + h * hd;
        const float *y = out + (b * seq + i) * H + h * hd;
        float acc = 0.0f;
        for (i64 d = 0; d < hd; d++) acc += x[d] * y[d];
        D[e] = acc;
    }
}

// attn_bwd_dkv: each thread group owns key row j and accumulates
// dV_j = sum_i P_ij dO_i and dK_j = sum_i dS_ij q_i * scale, streaming
// query tiles (q, dO, lse, D) through shared memory.
// grid (ceil(S/ROWS), B*nh), block ROWS*TPR threads.
template <int DMAX, int TPR, int BQ, int ROWS>
__device__ __forceinline__ void attn_bwd_dkv(float *__restrict__ dqkv, const float *__restrict__ dout,
                                             const float *__restrict__ qkv, const float *__restrict__ lse,
                                             const float *__restrict__ D, i64 batch, i64 seq, i64 heads, i64 hd,
                                             float scale) {
    constexpr int DT = DMAX / TPR;
    __shared__ float Qs[BQ][DMAX];
    __shared__ float Os[BQ][DMAX];
    __shared__ float Ls[BQ];
    __shared__ float Dsh[BQ];
    const i64 H = heads * hd, ld = 3 * H;
    const i64 bh = blockIdx.y, b = bh / heads, h = bh - b * heads;
    const int part = threadIdx.x % TPR;
    const i64 j = (i64)blockIdx.x * ROWS + threadIdx.x / TPR;
    const float *base = qkv + b * seq * ld;
    const float *dob = dout + b * seq * H;

    float kr[DT], vr[DT], dk[DT], dv[DT];
#pragma unroll
    for (int k = 0; k < DT; k++) {
        int d = part + TPR * k;
        bool ok = j < seq && d < hd;
        kr[k] = ok ? base[j * ld + H + h * hd + d] : 0.0f;
        vr[k] = ok ? base[j * ld + 2 * H + h * hd + d] : 0.0f;
        dk[k] = 0.0f;
        dv[k] = 0.0f;
    }
    for (i64 i0 = 0; i0 < seq; i0 += BQ) {
        __syncthreads();
        for (int e = threadIdx.x; e < BQ * DMAX; e += blockDim.x) {
            int rr = e / DMAX, d = e - rr * DMAX;
            i64 i = i0 + rr;
            bool ok = i < seq && d < hd;
            Qs[rr][d] = ok ? base[i * ld + h * hd + d] : 0.0f;
            Os[rr][d] = ok ? dob[i * H + h * hd + d] : 0.0f;
        }
        for (int e = threadIdx.x; e < BQ; e += blockDim.x) {
            i64 i = i0 + e;
            // A padded query row gets lse = +inf, so its P is exactly 0.
            Ls[e] = i < seq ? lse[bh * seq + i] : INFINITY;
            Dsh[e] = i < seq ? D[bh * seq + i] : 0.0f;
        }
        __syncthreads();
#pragma unroll 4
        for (int ii = 0; ii < BQ; ii++) {
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int k = 0; k < DT; k++) {
                s += Qs[ii][part + TPR * k] * kr[k];
                dp += Os[ii][part + TPR * k] * vr[k];
            }
            s = row_reduce<TPR>(s);
            dp = row_reduce<TPR>(dp);
            float p = expf(s * scale - Ls[ii]);
            float ds = p * (dp - Dsh[ii]) * scale;
#pragma unroll
            for (int k = 0; k < DT; k++) {
                dv[k] += p * Os[ii][part + TPR * k];
                dk[k] += ds * Qs[ii][part + TPR * k];
            }
        }
    }
    if (j < seq) {
        float *row = dqkv + (b * seq + j) * ld + h * hd;
#pragma unroll
        for (int k = 0; k < DT; k++) {
            int d = part + TPR * k;
            if (d < hd) {
                row[H + d] = dk[k];
                row[2 * H + d] = dv[k];
            }
        }
    }
}

// attn_bwd_dq: each thread group owns query row i and accumulates
// dQ_i = sum_j dS_ij k_j * scale, streaming key/value tiles.
// grid (ceil(S/ROWS), B*nh), block ROWS*TPR threads.
template <int DMAX, int TPR, int BK, int ROWS>
__device__ __forceinline__ void attn_bwd_dq(float *__restrict__ dqkv, const float *__restrict__ dout,
                                            const float *__restrict__ qkv, const float *__restrict__ lse,
                                            const float *__restrict__ D, i64 batch, i64 seq, i64 heads, i64 hd,
                                            float scale) {
    constexpr int DT = DMAX / TPR;
    __shared__ float Ks[BK][DMAX];
    __shared__ float Vs[BK][DMAX];
    const i64 H = heads * hd, ld = 3 * H;
    const i64 bh = blockIdx.y, b = bh / heads, h = bh - b * heads;
    const int part = threadIdx.x % TPR;
    const i64 i = (i64)blockIdx.x * ROWS + threadIdx.x / TPR;
    const float *base = qkv + b * seq * ld;

    float q[DT], g[DT], dq[DT];
#pragma unroll
    for (int k = 0; k < DT; k++) {
        int d = part + TPR * k;
        bool ok = i < seq && d < hd;
        q[k] = ok ? base[i * ld + h * hd + d] : 0.0f;
        g[k] = ok ? dout[(b * seq + i) * H + h * hd + d] : 0.0f;
        dq[k] = 0.0f;
    }
    const float li = i < seq ? lse[bh * seq + i] : 0.0f;
    const float Di = i < seq ? D[bh * seq + i] : 0.0f;
    for (i64 j0 = 0; j0 < seq; j0 += BK) {
        __syncthreads();
        for (int e = threadIdx.x; e < BK * DMAX; e += blockDim.x) {
            int rr = e / DMAX, d = e - rr * DMAX;
            i64 j = j0 + rr;
            bool ok = j < seq && d < hd;
            Ks[rr][d] = ok ? base[j * ld + H + h * hd + d] : 0.0f;
            Vs[rr][d] = ok ? base[j * ld + 2 * H + h * hd + d] : 0.0f;
        }
        __syncthreads();
#pragma unroll 4
        for (int jj = 0; jj < BK; jj++) {
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int k = 0; k < DT; k++) {
                s += q[k] * Ks[jj][part + TPR * k];
                dp += g[k] * Vs[jj][part + TPR * k];
            }
            s = row_reduce<TPR>(s);
            dp = row_reduce<TPR>(dp);
            float p = (j0 + jj < seq) ? expf(s * scale - li) : 0.0f;
            float ds = p * (dp - Di) * scale;
#pragma unroll
            for (int k = 0; k < DT; k++) dq[k] += ds * Ks[jj][part + TPR * k];
        }
    }
    if (i < seq) {
        float *row = dqkv + (b * seq + i) * ld + h * hd;
#pragma unroll
        for (int k = 0; k < DT; k++) {
            int d = part + TPR * k;
            if (d < hd) row[d] = dq[k];
        }
    }
}

// Instantiations: TPR = DMAX/32 (at least 1), so DT <= 32; ROWS rows per
// block keep every block at 64 or 128 threads, so that __launch_bounds__
// lets a thread use up to 255 registers (the dK/dV kernel holds 4 DT-long
// vectors) without the block exceeding the 64K registers of an SM. Tiles
// of 32 rows (16 for DMAX 256) keep shared memory at or under 32 KB, inside
// the 48 KB a launch gets without cuFuncSetAttribute.
// The Go side mirrors this table (cuda/attention.go: attnShapes).
#define ATT_INSTANCE(DMAX, TPR, BT, ROWS)                                                                             \
    TRM_KERNEL void __launch_bounds__(ROWS * TPR)                                                                   \
        trm_attn_fwd_d##DMAX(float *out, float *lse, const float *qkv, i64 batch, i64 seq, i64 heads, i64 hd,       \
                             double scale) {                                                                        \
        attn_fwd<DMAX, TPR, BT, ROWS>(out, lse, qkv, batch, seq, heads, hd, (float)scale);                          \
    }                                                                                                               \
    TRM_KERNEL void __launch_bounds__(ROWS * TPR)                                                                   \
        trm_attn_bwd_dkv_d##DMAX(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *D, \
                                 i64 batch, i64 seq, i64 heads, i64 hd, double scale) {                             \
        attn_bwd_dkv<DMAX, TPR, BT, ROWS>(dqkv, dout, qkv, lse, D, batch, seq, heads, hd, (float)scale);            \
    }                                                                                                               \
    TRM_KERNEL void __launch_bounds__(ROWS * TPR)                                                                   \
        trm_attn_bwd_dq_d##DMAX(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *D,  \
                                i64 batch, i64 seq, i64 heads, i64 hd, double scale) {                              \
        attn_bwd_dq<DMAX, TPR, BT, ROWS>(dqkv, dout, qkv, lse, D, batch, seq, heads, hd, (float)scale);             \
    }

ATT_INSTANCE(16, 1, 32, 64)
ATT_INSTANCE(32, 1, 32, 64)
ATT_INSTANCE(64, 2, 32, 64)
ATT_INSTANCE(128, 4, 32, 32)
ATT_INSTANCE(256, 8, 16, 16)
