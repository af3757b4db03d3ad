// The CUDA device language for the CPU stand-in (cuda/standin/README.md),
// pre-included (g++ -include) before kernels/all.cu so that the very
// sources nvcc compiles into kernels/trm.fatbin run on the CPU.
//
// Model: a launch's blocks are spread over a pool of OS threads; one block
// runs wholly on one OS thread, its CUDA threads as user-level fibers
// that switch only where CUDA threads must meet: __syncthreads (the whole
// block) and warp shuffles (the 32 lanes of a warp). Between those points
// a fiber runs straight through, so a kernel costs about what the same
// loop costs on the CPU, not a thread creation per CUDA thread.
//
// All state belongs to the launch or the block (emu_launch, emu_block):
// two launches may run at once (two streams, two devices). __shared__
// becomes `static thread_local`: one copy per OS thread, hence per running
// block, reused by the next block that thread runs (blocks never overlap
// on one thread).
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

struct emu_dim3 {
    unsigned x = 1, y = 1, z = 1;
};

struct emu_launch;
struct emu_block;

// emu_fiber is one CUDA thread of the running block.
struct emu_fiber {
    void *sp;         // saved stack pointer while switched out
    emu_dim3 tid;     // threadIdx
    int lin;          // linear thread index in the block
    int state;        // EMU_RUN, EMU_WAIT_BLOCK, EMU_WAIT_WARP, EMU_DONE
    unsigned parity;  // which shuffle buffer the next shuffle uses
};

enum { EMU_RUN = 0, EMU_WAIT_BLOCK = 1, EMU_WAIT_WARP = 2, EMU_DONE = 3 };

// emu_block is the block an OS thread is running.
struct emu_block {
    emu_launch *L;
    emu_dim3 bid;
    emu_fiber *f;
    int n;
    void *sched_sp;         // the scheduler's saved stack pointer
    uint64_t shfl[2][1024]; // shuffle exchange, double-buffered by parity
};

// emu_launch is one kernel launch: its shape and a type-erased body that
// calls the kernel with its arguments.
struct emu_launch {
    emu_dim3 grid, block;
    const char *name;                                    // the kernel, for fault reports
    void (*invoke)(void *kernel, const uint64_t *args); // calls kernel with the unpacked arguments
    void *kernel;
    const uint64_t *args;
};

extern thread_local emu_block *emu_cur_block;
extern thread_local emu_fiber *emu_cur_fiber;

#define threadIdx (emu_cur_fiber->tid)
#define blockIdx (emu_cur_block->bid)
#define blockDim (emu_cur_block->L->block)
#define gridDim (emu_cur_block->L->grid)

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static thread_local

// emu_yield switches from the current fiber (which has set its state) to
// the next runnable fiber of the block, or back to the block's scheduler
// when there is none after it.
extern "C" void emu_swap(void **save, void *to);
inline void emu_yield() {
    emu_block *b = emu_cur_block;
    emu_fiber *from = emu_cur_fiber;
    for (int t = from->lin + 1; t < b->n; t++) {
        emu_fiber *to = &b->f[t];
        if (to->state == EMU_RUN) {
            emu_cur_fiber = to;
            emu_swap(&from->sp, to->sp);
            return;
        }
    }
    emu_swap(&from->sp, b->sched_sp);
}

inline void __syncthreads() {
    emu_cur_fiber->state = EMU_WAIT_BLOCK;
    emu_yield();
}

inline void __syncwarp(unsigned = 0xffffffffu) {
    emu_cur_fiber->state = EMU_WAIT_WARP;
    emu_yield();
}

template <typename T> inline T __shfl_xor_sync(unsigned, T v, int lane_mask) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    emu_fiber *f = emu_cur_fiber;
    emu_block *b = emu_cur_block;
    unsigned par = f->parity;
    f->parity ^= 1;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    b->shfl[par][f->lin] = bits;
    f->state = EMU_WAIT_WARP;
    emu_yield();
    int t = f->lin;
    uint64_t o = b->shfl[par][(t & ~31) | ((t & 31) ^ lane_mask)];
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

