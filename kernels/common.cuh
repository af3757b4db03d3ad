// Shared helpers of the trm kernels: index types, deterministic warp and
// block reductions, and the device-side error word.
//
// Conventions every kernel follows, and why:
//   - Every parameter is 8 bytes (pointers, long long, double): the Go side
//     launches through gorgonia.org/cu, whose Launch copies 8 bytes from
//     each argument pointer, so a 4-byte int or float parameter would be
//     fed garbage in its upper half. Scalars that are float32 in the engine
//     travel as double and are rounded back once, which is exact.
//   - extern "C" names, so the module's function table is looked up by the
//     plain name (trm_*) without C++ mangling.
//   - No atomics on floating point: every reduction has a fixed shape
//     (shuffle-xor trees, then a fixed combine), so results are bitwise
//     reproducible run to run, as engine.Backend requires.
#pragma once

typedef long long i64;

#define TRM_KERNEL extern "C" __global__

// Error codes written into the backend's device error word (int[6]:
// code, a, b, c, bound, spare). The Go side decodes them at Sync.
#define TRM_ERR_EMBED_TOKEN 1  // a=row, b=position, c=token, bound=V
#define TRM_ERR_EMBED_PUZZLE 2 // a=row, c=identifier, bound=NumPuzzles
#define TRM_ERR_LOSS_LABEL 3   // a=row, b=position, c=label, bound=V
#define TRM_ERR_SIGNSGD_ID 4   // a=row, c=id, bound=rows of the table

// report records the first error of a launch sequence: the compare-and-swap
// on the code makes exactly one reporter write the details.
__device__ __forceinline__ void report(int *err, int code, int a, int b, int c, int bound) {
    if (err == 0) return;
    if (atomicCAS(err, 0, code) == 0) {
        err[1] = a;
        err[2] = b;
        err[3] = c;
        err[4] = bound;
    }
}

// warp_sum_d adds v over the 32 lanes of a warp with a fixed xor tree, so
// every lane gets the same, reproducible sum.
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_sum_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// block_sum_d adds v over the whole block (blockDim.x a multiple of 32, at
// most 1024) and returns the total to every thread. sh holds 32 doubles.
// The shape is fixed (warp trees, then warp 0 over the warp sums in lane
// order), hence deterministic. It ends with a barrier so sh can be reused.
__device__ __forceinline__ double block_sum_d(double v, double *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        double w = lane < nw ? sh[lane] : 0.0;
        w = warp_sum_d(w);
        if (lane == 0) sh[0] = w;
    }
    __syncthreads();
    double total = sh[0];
    __syncthreads();
    return total;
}

// grid_stride_start / step: the canonical 1-D grid-stride loop in 64 bits.
__device__ __forceinline__ i64 gs_start() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 gs_step() { return (i64)gridDim.x * blockDim.x; }
