// The stand-in's execution engine: a pool of OS threads that run a
// launch's blocks, each block's CUDA threads as fibers with a hand-rolled
// context switch (x86-64; ucontext elsewhere), and the fault handler that
// turns an out-of-bounds access by a kernel into a launch error naming
// the buffer.
#include "fiber.h"
#include "standin.h"

#include <atomic>
#include <condition_variable>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <sys/mman.h>
#include <thread>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

thread_local emu_block *emu_cur_block;
thread_local emu_fiber *emu_cur_fiber;

#if defined(__x86_64__)
// emu_swap(save, to): saves the callee-saved registers on the current
// stack, stores the stack pointer in *save, switches to the stack `to` and
// restores the same from there. The SSE and x87 control words are not
// switched: kernels never change rounding modes.
asm(R"(
.text
.globl emu_swap
.type emu_swap,@function
emu_swap:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size emu_swap,.-emu_swap
)");
#else
#error "the stand-in's fiber switch is written for x86-64"
#endif

namespace standin {

void log(const char *fmt, ...) {
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "trm stand-in (emulated CUDA): %s\n", line);
}

thread_local std::string last_refusal;

void refuse(const char *fmt, ...) {
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    last_refusal = line;
    log("%s", line);
}

namespace {

constexpr size_t kStack = 64 << 10; // per fiber
constexpr int kMaxThreads = 1024;
constexpr size_t kAltStack = 64 << 10;

// Per OS thread: fiber stacks (allocated once, a guard page under each),
// the fault recovery point, and the fault seen.
struct thread_state {
    char *stacks = nullptr;
    std::vector<emu_fiber> fibers;
    sigjmp_buf jmp;
    volatile sig_atomic_t armed = 0;
    uintptr_t fault_addr = 0;
    bool fault_write = false;
    int fault_sig = 0;
    void *altstack = nullptr;
    ~thread_state() {
        // Stream workers come and go with their streams: give back what
        // they mapped.
        if (stacks) munmap(stacks, kStack * kMaxThreads);
        if (altstack) {
            stack_t ss{};
            ss.ss_flags = SS_DISABLE;
            sigaltstack(&ss, nullptr);
            munmap(altstack, kAltStack);
        }
    }
};
thread_local thread_state ts;

void ensure_altstack() {
    if (ts.altstack) return;
    size_t n = kAltStack;
    ts.altstack = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    stack_t ss{};
    ss.ss_sp = ts.altstack;
    ss.ss_size = n;
    sigaltstack(&ss, nullptr);
}

char *stacks() {
    if (!ts.stacks) {
        size_t n = kStack * kMaxThreads;
        void *p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            log("cannot reserve fiber stacks");
            abort();
        }
        // One guard page under the lowest stack only: a guard under every
        // stack would cost a memory mapping each (the kernel limits them).
        ts.stacks = (char *)p;
        mprotect(ts.stacks, sysconf(_SC_PAGESIZE), PROT_NONE);
        ts.fibers.resize(kMaxThreads);
    }
    return ts.stacks;
}

void fiber_main() {
    emu_block *b = emu_cur_block;
    b->L->invoke(b->L->kernel, b->L->args);
    emu_cur_fiber->state = EMU_DONE;
    emu_yield();
    abort(); // a finished fiber is never resumed
}

// prepare lays out a fresh stack so that switching to it enters fiber_main.
void *prepare(char *top) {
    uint64_t *sp = (uint64_t *)top;
    *--sp = 0;                          // fiber_main's (never used) return address
    *--sp = (uint64_t)(void *)&fiber_main; // emu_swap's ret target
    for (int i = 0; i < 6; i++) *--sp = 0; // rbp rbx r12 r13 r14 r15
    return sp;
}

// run_block runs one block to completion on the calling thread; false
// when the block deadlocked (threads waiting at barriers that can never
// all be reached), with *why set.
bool run_block(emu_launch *L, emu_dim3 bid, std::string *why) {
    static thread_local emu_block blk;
    char *st = stacks();
    int n = L->block.x * L->block.y * L->block.z;
    blk.L = L;
    blk.bid = bid;
    blk.n = n;
    blk.f = ts.fibers.data();
    for (int t = 0; t < n; t++) {
        emu_fiber &f = blk.f[t];
        f.tid = emu_dim3{t % L->block.x, (t / L->block.x) % L->block.y, t / (L->block.x * L->block.y)};
        f.lin = t;
        f.state = EMU_RUN;
        f.parity = 0;
        f.sp = prepare(st + (size_t)(t + 1) * kStack);
    }
    emu_cur_block = &blk;
    int done = 0;
    for (;;) {
        // A pass: the first runnable fiber runs, and each fiber that
        // blocks hands over to the next runnable one (emu_yield), the
        // last back here.
        int first = -1;
        for (int t = 0; t < n; t++)
            if (blk.f[t].state == EMU_RUN) {
                first = t;
                break;
            }
        if (first >= 0) {
            emu_cur_fiber = &blk.f[first];
            emu_swap(&blk.sched_sp, blk.f[first].sp);
            continue;
        }
        done = 0;
        for (int t = 0; t < n; t++) done += blk.f[t].state == EMU_DONE;
        if (done == n) break;
        bool released = false;
        // A warp meets at a shuffle when every lane still running waits there.
        for (int w = 0; w < (n + 31) / 32; w++) {
            int lo = w * 32, hi = std::min(n, lo + 32), waiting = 0, live = 0;
            for (int t = lo; t < hi; t++) {
                if (blk.f[t].state == EMU_DONE) continue;
                live++;
                if (blk.f[t].state == EMU_WAIT_WARP) waiting++;
            }
            if (live > 0 && waiting == live) {
                for (int t = lo; t < hi; t++)
                    if (blk.f[t].state == EMU_WAIT_WARP) blk.f[t].state = EMU_RUN;
                released = true;
            }
        }
        if (!released) {
            // The block meets at __syncthreads when every thread still
            // running waits there (finished threads count as arrived).
            int waiting = 0;
            for (int t = 0; t < n; t++)
                if (blk.f[t].state == EMU_WAIT_BLOCK) waiting++;
            if (waiting == n - done) {
                for (int t = 0; t < n; t++)
                    if (blk.f[t].state == EMU_WAIT_BLOCK) blk.f[t].state = EMU_RUN;
                released = true;
            }
        }
        if (!released) {
            int wb = 0, ww = 0;
            for (int t = 0; t < n; t++) {
                wb += blk.f[t].state == EMU_WAIT_BLOCK;
                ww += blk.f[t].state == EMU_WAIT_WARP;
            }
            char m[256];
            snprintf(m, sizeof m, "deadlock in block (%u,%u,%u): %d threads at __syncthreads, %d at a warp shuffle, %d finished",
                     bid.x, bid.y, bid.z, wb, ww, done);
            *why = m;
            emu_cur_block = nullptr;
            return false;
        }
    }
    emu_cur_block = nullptr;
    emu_cur_fiber = nullptr;
    return true;
}

// ---- the pool ----

struct job {
    long n;
    const std::function<void(long)> *fn;
    std::atomic<long> next{0}, done{0};
    int active = 0; // workers inside (guarded by the pool mutex)
};

struct pool {
    std::mutex mu;
    std::condition_variable work, idle;
    std::deque<job *> jobs;
    int size = 0;

    void start() {
        int n = (int)std::thread::hardware_concurrency();
        if (const char *e = getenv("TRM_STANDIN_THREADS")) n = atoi(e);
        if (n < 1) n = 1;
        size = n;
        // The caller of parallel_for works too: n-1 helpers keep n cores busy.
        for (int i = 0; i + 1 < n; i++) std::thread([this] { loop(); }).detach();
    }

    void loop() {
        ensure_altstack();
        std::unique_lock<std::mutex> lk(mu);
        for (;;) {
            while (jobs.empty()) work.wait(lk);
            job *j = jobs.front();
            if (j->next.load() >= j->n) {
                jobs.pop_front();
                continue;
            }
            j->active++;
            lk.unlock();
            drain(j);
            lk.lock();
            j->active--;
            idle.notify_all();
        }
    }

    static void drain(job *j) {
        long i;
        while ((i = j->next.fetch_add(1)) < j->n) {
            (*j->fn)(i);
            j->done.fetch_add(1);
        }
    }

    void run(long n, const std::function<void(long)> &fn) {
        ensure_altstack();
        job j;
        j.n = n;
        j.fn = &fn;
        if (n > 1 && size > 1) {
            std::lock_guard<std::mutex> lk(mu);
            jobs.push_back(&j);
            work.notify_all();
        }
        drain(&j);
        std::unique_lock<std::mutex> lk(mu);
        while (j.done.load() < n || j.active > 0) idle.wait(lk);
        for (auto it = jobs.begin(); it != jobs.end(); ++it)
            if (*it == &j) {
                jobs.erase(it);
                break;
            }
    }
};

pool &the_pool() {
    static pool *p = [] {
        auto *q = new pool;
        q->start();
        return q;
    }();
    return *p;
}

struct sigaction old_segv, old_bus;

void on_fault(int sig, siginfo_t *info, void *uc) {
    if (ts.armed) {
        ts.armed = 0;
        ts.fault_addr = (uintptr_t)info->si_addr;
        ts.fault_sig = sig;
#if defined(__x86_64__)
        // Bit 1 of the page-fault error code: the access was a write.
        ts.fault_write = (((ucontext_t *)uc)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#endif
        siglongjmp(ts.jmp, 1);
    }
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, info, uc);
        return;
    }
    if (old->sa_handler == SIG_IGN) return;
    if (old->sa_handler == SIG_DFL) {
        signal(sig, SIG_DFL);
        return; // the access repeats and takes the default action
    }
    old->sa_handler(sig);
}

} // namespace

void install_fault_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa{};
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &old_segv);
        sigaction(SIGBUS, &sa, &old_bus);
    });
}

void parallel_for(long n, const std::function<void(long)> &fn) {
    if (n <= 0) return;
    the_pool().run(n, fn);
}

std::string run_launch(emu_launch *L) {
    long nb = (long)L->grid.x * L->grid.y * L->grid.z;
    std::mutex mu;
    std::string first;
    std::atomic<bool> failed{false};
    parallel_for(nb, [&](long i) {
        if (failed.load(std::memory_order_relaxed)) return;
        emu_dim3 bid{(unsigned)(i % L->grid.x), (unsigned)((i / L->grid.x) % L->grid.y),
                     (unsigned)(i / ((long)L->grid.x * L->grid.y))};
        std::string why;
        if (sigsetjmp(ts.jmp, 0) == 0) {
            ts.armed = 1;
            bool ok = run_block(L, bid, &why);
            ts.armed = 0;
            if (ok) return;
        } else {
            // Back from the fault handler: SIGSEGV is still blocked (the
            // handler was left by a jump), and the block is abandoned.
            sigset_t s;
            sigemptyset(&s);
            sigaddset(&s, ts.fault_sig);
            pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
            emu_fiber *f = emu_cur_fiber;
            char m[512];
            snprintf(m, sizeof m, "block (%u,%u,%u) thread (%u,%u,%u): invalid %s at 0x%lx: ", bid.x, bid.y, bid.z,
                     f ? f->tid.x : 0, f ? f->tid.y : 0, f ? f->tid.z : 0, ts.fault_write ? "write" : "read",
                     (unsigned long)ts.fault_addr);
            why = m + describe(ts.fault_addr);
            emu_cur_block = nullptr;
            emu_cur_fiber = nullptr;
        }
        std::lock_guard<std::mutex> lk(mu);
        if (!failed.exchange(true)) first = why;
    });
    if (!failed) return "";
    char m[256];
    snprintf(m, sizeof m, "kernel %s grid (%u,%u,%u) block (%u,%u,%u): ", L->name, L->grid.x, L->grid.y, L->grid.z, L->block.x,
             L->block.y, L->block.z);
    return m + first;
}

} // namespace standin

// trm_standin_refusal copies and clears the calling thread's last refused
// call's explanation; it returns its length (0: none).
extern "C" __attribute__((visibility("default"))) int trm_standin_refusal(char *buf, int n) {
    std::string s;
    s.swap(standin::last_refusal);
    if (buf && n > 0) snprintf(buf, n, "%s", s.c_str());
    return (int)s.size();
}
