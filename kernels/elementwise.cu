// Data movement and elementwise ops: Copy2D, Transpose, Add, Axpby, Fill, EMA.
// All are memory-bound; the numbers below are the floor each one moves.
#include "common.cuh"

// trm_copy2d: dst[r*dstStride+c] = src[r*srcStride+c], rows x cols.
// FLOPs 0; bytes 8 per element (one read, one write).
TRM_KERNEL void trm_copy2d(float *__restrict__ dst, i64 dstStride, const float *__restrict__ src, i64 srcStride,
                           i64 rows, i64 cols) {
    i64 n = rows * cols;
    for (i64 e = gs_start(); e < n; e += gs_step()) {
        i64 r = e / cols, c = e - r * cols;
        dst[r * dstStride + c] = src[r * srcStride + c];
    }
}

// trm_transpose: dst[b][c][r] = src[b][r][c] for batch matrices rows x cols.
// 32x32 tiles staged in shared memory (padded by one column so the column
// reads hit 32 distinct banks) make both the global read and the global
// write coalesced. Block (32, 8); grid (tiles of cols, tiles of rows, batch).
// FLOPs 0; bytes 8 per element.
TRM_KERNEL void trm_transpose(float *__restrict__ dst, const float *__restrict__ src, i64 rows, i64 cols) {
    __shared__ float tile[32][33];
    i64 b = blockIdx.z;
    const float *s = src + b * rows * cols;
    float *d = dst + b * rows * cols;
    i64 c0 = (i64)blockIdx.x * 32, r0 = (i64)blockIdx.y * 32;
    for (int k = threadIdx.y; k < 32; k += 8) {
        i64 r = r0 + k, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[k][threadIdx.x] = s[r * cols + c];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < 32; k += 8) {
        i64 c = c0 + k, r = r0 + threadIdx.x;
        if (r < rows && c < cols) d[c * rows + r] = tile[threadIdx.x][k];
    }
}

// trm_add: dst = a + b (dst may alias a or b: each element is read and
// written by the same thread). FLOPs 1 per element; bytes 12 per element.
TRM_KERNEL void trm_add(float *dst, const float *a, const float *b, i64 n) {
    for (i64 i = gs_start(); i < n; i += gs_step()) dst[i] = a[i] + b[i];
}

// trm_axpby: dst = alpha * a + beta * b (dst may alias a or b: each element
// is read and written by the same thread). The scalars travel as double and
// are rounded to float once, exactly. nvcc may fuse one product into the
// sum (engine.Backend's Axpby allows it); with alpha, beta in {0, +-1} the
// result is the same bits as the CPU backend's.
// FLOPs 3 per element; bytes 12 per element.
TRM_KERNEL void trm_axpby(float *dst, const float *a, const float *b, double alpha, double beta, i64 n) {
    float x = (float)alpha, y = (float)beta;
    for (i64 i = gs_start(); i < n; i += gs_step()) dst[i] = x * a[i] + y * b[i];
}

// trm_fill_f32/f64/i32: every element = v (the i32 fill truncates toward
// zero, as Go's int32(float32) does). FLOPs 0; bytes 4 or 8 per element.
TRM_KERNEL void trm_fill_f32(float *dst, double v, i64 n) {
    float x = (float)v;
    for (i64 i = gs_start(); i < n; i += gs_step()) dst[i] = x;
}

TRM_KERNEL void trm_fill_f64(double *dst, double v, i64 n) {
    for (i64 i = gs_start(); i < n; i += gs_step()) dst[i] = v;
}

TRM_KERNEL void trm_fill_i32(int *dst, double v, i64 n) {
    int x = (int)(float)v;
    for (i64 i = gs_start(); i < n; i += gs_step()) dst[i] = x;
}

// trm_ema: shadow = (1 - rate) * params + rate * shadow.
// FLOPs 3 per element; bytes 12 per element.
TRM_KERNEL void trm_ema(float *shadow, const float *params, double rate, i64 n) {
    float r = (float)rate, w = 1.0f - r;
    for (i64 i = gs_start(); i < n; i += gs_step()) shadow[i] = w * params[i] + r * shadow[i];
}
