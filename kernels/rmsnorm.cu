// Residual add + RMSNorm, forward and backward, one block per row.
// The row statistics accumulate in float64 as the CPU reference does, so
// the result does not depend on the row length's rounding.
#include "common.cuh"

// trm_add_rmsnorm: v = a + b (b may be null), rstd = 1/sqrt(mean(v^2)+eps),
// y = v * rstd. y may alias a or b: each thread reads and writes only its
// own elements, and the only cross-thread data is the reduced sum.
// Block: 32..1024 threads (multiple of 32); grid: rows.
// FLOPs 4 per element (add, square, accumulate, scale);
// bytes 12 per element with b (8 without) plus 4 per row.
TRM_KERNEL void trm_add_rmsnorm(float *y, float *rstd, const float *a, const float *b, i64 rows, i64 cols, double eps) {
    __shared__ double sh[32];
    i64 r = blockIdx.x;
    if (r >= rows) return;
    const float *ar = a + r * cols;
    const float *br = b ? b + r * cols : 0;
    float *yr = y + r * cols;
    double ss = 0.0;
    for (i64 i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = br ? ar[i] + br[i] : ar[i];
        yr[i] = v;
        ss += (double)v * (double)v;
    }
    ss = block_sum_d(ss, sh);
    // Rounded as the reference: the mean to float32, plus eps in float32,
    // then the reciprocal square root in float64 rounded once.
    float ms = (float)(ss / (double)cols);
    float rs = (float)(1.0 / sqrt((double)(ms + (float)eps)));
    if (threadIdx.x == 0) rstd[r] = rs;
    for (i64 i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = yr[i] * rs;
}

// trm_rmsnorm_backward: dx = rstd * (dy - y * mean(dy * y)) per row, given
// the forward output y (dx may alias dy, per element as above).
// FLOPs 5 per element; bytes 12 per element plus 4 per row.
TRM_KERNEL void trm_rmsnorm_backward(float *dx, const float *dy, const float *y, const float *rstd, i64 rows, i64 cols) {
    __shared__ double sh[32];
    i64 r = blockIdx.x;
    if (r >= rows) return;
    const float *g = dy + r * cols;
    const float *o = y + r * cols;
    float *d = dx + r * cols;
    double dot = 0.0;
    for (i64 i = threadIdx.x; i < cols; i += blockDim.x) dot += (double)g[i] * (double)o[i];
    dot = block_sum_d(dot, sh);
    float mean = (float)(dot / (double)cols);
    float rs = rstd[r];
    for (i64 i = threadIdx.x; i < cols; i += blockDim.x) d[i] = rs * (g[i] - o[i] * mean);
}
