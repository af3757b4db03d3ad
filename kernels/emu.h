// CPU emulation of the CUDA features the trm kernels use, for testing the
// kernels' logic where no GPU exists (kernels/emu, go test -tags cudaemu).
// Only compiled when TRM_EMU is defined; never part of the fatbin.
//
// Model: a launch runs its blocks one after another; each block runs as
// blockDim real threads, so __syncthreads is a barrier over them and a warp
// shuffle is an exchange through memory between barriers over the warp's
// 32 threads. __shared__ becomes `static`: one copy shared by the block's
// threads, reused by the next block (blocks never overlap). This checks
// indexing, masking, barriers and reductions, not timing or memory model
// subtleties.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <pthread.h>
#include <thread>
#include <vector>

struct emu_dim3 {
    unsigned x = 1, y = 1, z = 1;
};

extern thread_local emu_dim3 threadIdx, blockIdx;
extern emu_dim3 blockDim, gridDim;
extern pthread_barrier_t emu_block_barrier;
extern pthread_barrier_t emu_warp_barrier[32];
extern uint64_t emu_shfl[1024];

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

inline int emu_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

inline void __syncthreads() { pthread_barrier_wait(&emu_block_barrier); }

template <typename T> inline T __shfl_xor_sync(unsigned, T v, int lane_mask) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    int t = emu_tid(), w = t / 32;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    emu_shfl[t] = bits;
    pthread_barrier_wait(&emu_warp_barrier[w]);
    uint64_t o = emu_shfl[(t & ~31) | ((t & 31) ^ lane_mask)];
    pthread_barrier_wait(&emu_warp_barrier[w]);
    T r;
    std::memcpy(&r, &o, sizeof(T));
    return r;
}

inline int atomicCAS(int *p, int cmp, int val) { return __sync_val_compare_and_swap(p, cmp, val); }
inline int atomicAdd(int *p, int v) { return __sync_fetch_and_add(p, v); }
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
using std::exp;
using std::fabs;
using std::fmax;
using std::log;
using std::log1p;
using std::sqrt;

// emu_launch runs kernel k over grid x block with the given arguments.
template <typename K, typename... A> void emu_launch(emu_dim3 grid, emu_dim3 block, K k, A... args) {
    gridDim = grid;
    blockDim = block;
    int n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                pthread_barrier_init(&emu_block_barrier, 0, n);
                for (int w = 0; w < (n + 31) / 32; w++) pthread_barrier_init(&emu_warp_barrier[w], 0, 32);
                std::vector<std::thread> ts;
                ts.reserve(n);
                for (int t = 0; t < n; t++) {
                    ts.emplace_back([=] {
                        blockIdx = emu_dim3{bx, by, bz};
                        threadIdx = emu_dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        k(args...);
                    });
                }
                for (auto &th : ts) th.join();
                pthread_barrier_destroy(&emu_block_barrier);
                for (int w = 0; w < (n + 31) / 32; w++) pthread_barrier_destroy(&emu_warp_barrier[w]);
            }
}
