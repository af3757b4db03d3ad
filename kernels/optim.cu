// Optimizer and reduction kernels (docs/training.md): AdamATan2 over the
// flat parameter buffer in one launch, sign-SGD on sparse embedding rows, and a
// deterministic float64 sum of squares.
//
// Step-dependent scalars (learning rate, bias corrections) are read from a
// small device array instead of kernel parameters: the backend uploads them
// through a pinned staging slot, so the launch itself is the same every step
// and a captured CUDA graph replays it with the new values.
#include "common.cuh"

// trm_adam_atan2: hyper = {decay, stepSize, bc2, 1-beta1, 1-beta2} (float32):
// m = m + (1-b1)(g - m); v = v + (1-b2)(g^2 - v);
// p = p * decay - stepSize * atan2(m, sqrt(v) / bc2).
// FLOPs ~15 per element (atan2 and sqrt in float64 counted as one each);
// bytes 28 per element (p, m, v read and written; g read).
TRM_KERNEL void trm_adam_atan2(float *__restrict__ p, const float *__restrict__ g, float *__restrict__ m,
                               float *__restrict__ v, const float *__restrict__ hyper, i64 n) {
    const float decay = hyper[0], stepSize = hyper[1], bc2 = hyper[2], w1 = hyper[3], w2 = hyper[4];
    for (i64 i = gs_start(); i < n; i += gs_step()) {
        float gi = g[i];
        float mi = m[i] + w1 * (gi - m[i]);
        float vi = v[i] + w2 * (gi * gi - v[i]);
        m[i] = mi;
        v[i] = vi;
        float denom = (float)sqrt((double)vi) / bc2;
        p[i] = p[i] * decay - stepSize * (float)atan2((double)mi, (double)denom);
    }
}

// trm_signsgd_rows: one block per gradient row r; hyper = {lr, wd}. Only
// the first row of each distinct id does the update: it sums the gradient
// rows of its id in row order (the reference's order, deterministic) and
// applies w = w (1 - lr wd) - lr sign(sum). Distinct ids own distinct
// table rows, so blocks never write the same memory.
// FLOPs ~2 per gradient element + 4 per updated element;
// bytes 4 per gradient element + 8 per updated element (+ the id scans).
TRM_KERNEL void trm_signsgd_rows(float *__restrict__ table, const float *__restrict__ grads, const int *__restrict__ ids,
                                 const float *__restrict__ hyper, i64 n, i64 dim, i64 rows, int *err) {
    const i64 r = blockIdx.x;
    if (r >= n) return;
    const int id = ids[r];
    if (id < 0 || id >= rows) {
        if (threadIdx.x == 0) report(err, TRM_ERR_SIGNSGD_ID, (int)r, 0, id, (int)rows);
        return;
    }
    for (i64 j = 0; j < r; j++)
        if (ids[j] == id) return; // an earlier row owns this id
    const float lr = hyper[0], wd = hyper[1];
    const float decay = 1.0f - lr * wd;
    for (i64 i = threadIdx.x; i < dim; i += blockDim.x) {
        float acc = 0.0f;
        for (i64 j = r; j < n; j++)
            if (ids[j] == id) acc += grads[j * dim + i];
        float s = acc > 0.0f ? 1.0f : (acc < 0.0f ? -1.0f : 0.0f);
        float *w = table + (i64)id * dim + i;
        *w = *w * decay - lr * s;
    }
}

// trm_sumsq_partial: parts[c] = sum of x^2 over chunk c (chunk elements),
// one block per chunk, accumulated in float64 through a fixed tree.
// FLOPs 2 per element; bytes 4 per element.
TRM_KERNEL void trm_sumsq_partial(double *__restrict__ parts, const float *__restrict__ x, i64 n, i64 chunk) {
    __shared__ double sh[32];
    i64 c = blockIdx.x;
    i64 lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
    double s = 0.0;
    for (i64 i = lo + threadIdx.x; i < hi; i += blockDim.x) s += (double)x[i] * (double)x[i];
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) parts[c] = s;
}

// trm_sumsq_final: dst[0] = the chunk sums added in chunk order (one
// thread: a few hundred additions). FLOPs 1 per chunk; bytes 8 per chunk.
TRM_KERNEL void trm_sumsq_final(double *__restrict__ dst, const double *__restrict__ parts, i64 nc) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double s = 0.0;
    for (i64 c = 0; c < nc; c++) s += parts[c];
    dst[0] = s;
}
