// SwiGLU forward and backward over rows of [gate | up] (2I wide).
// The sigmoid runs in float64 as the CPU reference's sigmoid32 does.
#include "common.cuh"

__device__ __forceinline__ float sigmoid32(float x) { return (float)(1.0 / (1.0 + exp(-(double)x))); }

// trm_swiglu: act[r][i] = silu(g) * u with g = gu[r][i], u = gu[r][I+i].
// FLOPs ~6 per output (exp counted as one); bytes 12 per output.
TRM_KERNEL void trm_swiglu(float *__restrict__ act, const float *__restrict__ gu, i64 rows, i64 inter) {
    i64 n = rows * inter;
    for (i64 e = gs_start(); e < n; e += gs_step()) {
        i64 r = e / inter, i = e - r * inter;
        float g = gu[2 * r * inter + i], u = gu[(2 * r + 1) * inter + i];
        act[e] = g * sigmoid32(g) * u;
    }
}

// trm_swiglu_backward: dg = dact * u * s * (1 + g (1 - s)), du = dact * g * s
// with s = sigmoid(g). FLOPs ~10 per output pair; bytes 20 per output
// (g, u, dact read; dg, du written).
TRM_KERNEL void trm_swiglu_backward(float *__restrict__ dgu, const float *__restrict__ dact, const float *__restrict__ gu,
                                    i64 rows, i64 inter) {
    i64 n = rows * inter;
    for (i64 e = gs_start(); e < n; e += gs_step()) {
        i64 r = e / inter, i = e - r * inter;
        float g = gu[2 * r * inter + i], u = gu[(2 * r + 1) * inter + i];
        float a = dact[e];
        float s = sigmoid32(g);
        dgu[2 * r * inter + i] = a * u * s * (1.0f + g * (1.0f - s));
        dgu[(2 * r + 1) * inter + i] = a * g * s;
    }
}
