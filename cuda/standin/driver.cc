// The CUDA driver API of the stand-in (libcuda.so.1): devices, primary
// contexts, guarded device memory, streams with a worker thread each
// (errors of queued work surface at the next synchronisation, as on a
// GPU), stream capture into graphs, modules whose kernels resolve by name
// to kernels.cc, and launches run by runtime.cc. Entry points the trm
// binaries reference but never call are generated into stubs.c (they
// return CUDA_ERROR_NOT_SUPPORTED).
#include <cuda.h>

#include "fiber.h"
#include "standin.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

// The marker every part of the stand-in exports, so that the trm backend
// can tell it from NVIDIA's libraries and refuse a mix of both.
extern "C" __attribute__((visibility("default"))) const char trm_standin_version[] = "trm CPU stand-in 1";

namespace standin {
namespace {

std::atomic<bool> initialized{false};
int ndev = 1;
size_t devmem = size_t(8) << 30;
long page_size = 4096;

size_t parse_size(const char *s, size_t def) {
    if (!s || !*s) return def;
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'k': case 'K': v *= 1 << 10; break;
    case 'm': case 'M': v *= 1 << 20; break;
    case 'g': case 'G': v *= double(1 << 30); break;
    case 0: break;
    default:
        log("TRM_STANDIN_MEM=%s: want bytes with an optional K, M or G suffix; using %zu", s, def);
        return def;
    }
    return v > 0 ? (size_t)v : def;
}

// ---- memory registry: every device buffer and pinned host block ----

struct alloc {
    uintptr_t map_base;
    size_t map_len;
    uintptr_t ptr;
    size_t size;
    int dev;
    bool host, freed = false;
    uint64_t id;
    std::string name;
};

std::mutex mem_mu;
std::map<uintptr_t, alloc *> regions; // by map_base
uint64_t next_id = 1;
size_t used[64];

alloc *region_of(uintptr_t a) {
    auto it = regions.upper_bound(a);
    if (it == regions.begin()) return nullptr;
    --it;
    alloc *r = it->second;
    return a < r->map_base + r->map_len ? r : nullptr;
}

alloc *live_at(uintptr_t p) {
    alloc *r = region_of(p);
    return r && !r->freed && r->ptr == p ? r : nullptr;
}

std::string label(const alloc *r) {
    char m[128];
    snprintf(m, sizeof m, "%s buffer #%llu", r->host ? "pinned host" : "device", (unsigned long long)r->id);
    std::string s = m;
    if (!r->name.empty()) s += " \"" + r->name + "\"";
    snprintf(m, sizeof m, " (%zu bytes at 0x%lx on device %d%s)", r->size, (unsigned long)r->ptr, r->dev, r->freed ? ", freed" : "");
    return s + m;
}

// Freed buffers stay mapped inaccessible, so a use after free faults and
// names the buffer; the oldest are unmapped beyond kQuarantine (every one
// costs a memory mapping, which the kernel limits).
constexpr size_t kQuarantine = 4096;
std::deque<alloc *> quarantine;

void poison(alloc *r) {
    r->freed = true;
    madvise((void *)r->map_base, r->map_len, MADV_DONTNEED);
    mprotect((void *)r->map_base, r->map_len, PROT_NONE);
    quarantine.push_back(r);
    while (quarantine.size() > kQuarantine) {
        alloc *o = quarantine.front();
        quarantine.pop_front();
        regions.erase(o->map_base);
        munmap((void *)o->map_base, o->map_len);
        delete o;
    }
}

// ---- contexts and streams ----

struct task {
    std::string what;
    std::function<int(std::string *)> op;
};

struct context;

struct graph {
    std::vector<task> nodes;
};

struct stream {
    context *ctx;
    std::thread th;
    std::mutex mu;
    std::condition_variable cv, idle;
    std::deque<task> q;
    bool running = false, stop = false;
    graph *capturing = nullptr;
    std::string capture_broken;
    void loop();
    void sync() {
        std::unique_lock<std::mutex> lk(mu);
        while (!q.empty() || running) idle.wait(lk);
    }
};

struct context {
    int dev;
    int refs = 0;
    std::atomic<int> err{0};
    std::mutex mu;
    std::string msg;
    std::set<stream *> streams;
    stream *dflt = nullptr;
};

std::mutex ctx_mu;
context *primary[64];
std::set<stream *> all_streams;
std::string leak_report[64];
thread_local context *cur;

stream *new_stream(context *c) {
    auto *s = new stream;
    s->ctx = c;
    s->th = std::thread([s] { s->loop(); });
    std::lock_guard<std::mutex> lk(ctx_mu);
    c->streams.insert(s);
    all_streams.insert(s);
    return s;
}

void destroy_stream(stream *s) {
    {
        std::lock_guard<std::mutex> lk(s->mu);
        s->stop = true;
        s->cv.notify_all();
    }
    s->th.join();
    std::lock_guard<std::mutex> lk(ctx_mu);
    s->ctx->streams.erase(s);
    all_streams.erase(s);
    delete s;
}

void stream::loop() {
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
        while (q.empty() && !stop) cv.wait(lk);
        if (q.empty() && stop) return;
        task t = std::move(q.front());
        q.pop_front();
        running = true;
        lk.unlock();
        if (ctx->err.load() == 0) {
            std::string msg;
            int rc = t.op(&msg);
            if (rc != 0) set_error(ctx->dev, rc, t.what + (msg.empty() ? "" : ": " + msg));
        }
        lk.lock();
        running = false;
        if (q.empty()) idle.notify_all();
    }
}

void sync_all(context *c) {
    std::vector<stream *> ss;
    {
        std::lock_guard<std::mutex> lk(ctx_mu);
        ss.assign(c->streams.begin(), c->streams.end());
    }
    for (stream *s : ss) s->sync();
}

stream *resolve(void *h, int *rc) {
    *rc = 0;
    context *c = cur;
    if (!c) {
        *rc = SI_INVALID_CONTEXT;
        return nullptr;
    }
    if (!h) {
        if (!c->dflt) c->dflt = new_stream(c);
        return c->dflt;
    }
    std::lock_guard<std::mutex> lk(ctx_mu);
    if (!all_streams.count((stream *)h)) {
        *rc = SI_INVALID_HANDLE;
        return nullptr;
    }
    return (stream *)h;
}

// release_context ends a primary context: it reports and frees what was
// left allocated (a leak: the engine frees everything at Close), destroys
// its streams and clears a sticky error, so the next retain starts fresh.
void release_context(context *c) {
    std::vector<stream *> ss;
    {
        std::lock_guard<std::mutex> lk(ctx_mu);
        ss.assign(c->streams.begin(), c->streams.end());
    }
    // Streams other than the default one are the engine's to destroy
    // before it releases the context: any left are leaks.
    int nstreams = 0;
    for (stream *s : ss)
        if (s != c->dflt) nstreams++;
    for (stream *s : ss) {
        s->sync();
        destroy_stream(s);
    }
    c->dflt = nullptr;
    std::string report;
    int n = 0;
    size_t bytes = 0;
    {
        std::lock_guard<std::mutex> lk(mem_mu);
        std::vector<alloc *> left;
        for (auto &kv : regions) {
            alloc *r = kv.second;
            if (r->freed || r->dev != c->dev) continue;
            n++;
            bytes += r->size;
            if (n <= 20) report += "\n  " + label(r);
            left.push_back(r);
        }
        for (alloc *r : left) {
            if (!r->host) used[c->dev] -= r->size;
            poison(r);
        }
    }
    if (n > 0 || nstreams > 0) {
        char m[256], st[64] = "";
        if (nstreams > 0) snprintf(st, sizeof st, " and %d streams not destroyed", nstreams);
        snprintf(m, sizeof m, "cuda device %d: the context was destroyed with %d buffers (%zu bytes) still allocated%s%s", c->dev, n,
                 bytes, st, n > 0 ? ":" : "");
        leak_report[c->dev] = m + report + (n > 20 ? "\n  ..." : "");
        log("%s", leak_report[c->dev].c_str());
    } else {
        leak_report[c->dev].clear();
    }
    c->err = 0;
    c->msg.clear();
}

bool valid_dev(int d) { return initialized && d >= 0 && d < ndev; }

} // namespace

std::string describe(uintptr_t a) {
    std::lock_guard<std::mutex> lk(mem_mu);
    alloc *r = region_of(a);
    char m[128];
    if (!r) {
        // The nearest buffer below, for a wild offset.
        auto it = regions.upper_bound(a);
        if (it != regions.begin()) {
            --it;
            snprintf(m, sizeof m, "not inside any device buffer (%lu bytes past the end of ",
                     (unsigned long)(a - (it->second->ptr + it->second->size)));
            return m + label(it->second) + ")";
        }
        return "not inside any device buffer";
    }
    if (a >= r->ptr + r->size) {
        snprintf(m, sizeof m, "%lu bytes past the end of ", (unsigned long)(a - (r->ptr + r->size)));
        return m + label(r);
    }
    if (a < r->ptr) {
        snprintf(m, sizeof m, "%lu bytes before the start of ", (unsigned long)(r->ptr - a));
        return m + label(r);
    }
    snprintf(m, sizeof m, "offset %lu of ", (unsigned long)(a - r->ptr));
    return m + label(r) + (r->freed ? " (use after free)" : "");
}

std::string check_range(uintptr_t p, size_t n) {
    if (n == 0) return "";
    std::unique_lock<std::mutex> lk(mem_mu);
    alloc *r = region_of(p);
    if (!r || p < r->ptr || p >= r->ptr + r->size) {
        lk.unlock();
        char m[96];
        snprintf(m, sizeof m, "address 0x%lx is ", (unsigned long)p);
        return m + describe(p);
    }
    if (r->freed) return "the range starts in a freed buffer: " + label(r);
    if (p + n > r->ptr + r->size) {
        char m[128];
        snprintf(m, sizeof m, "%zu bytes at offset %lu run %lu bytes past the end of ", n, (unsigned long)(p - r->ptr),
                 (unsigned long)(p + n - r->ptr - r->size));
        return m + label(r);
    }
    return "";
}

int current_device() { return cur ? cur->dev : -1; }

void set_error(int dev, int code, const std::string &msg) {
    context *c = primary[dev];
    if (!c) return;
    std::lock_guard<std::mutex> lk(c->mu);
    if (c->err.load() != 0) return;
    c->msg = msg;
    c->err = code;
    log("cuda device %d: %s", dev, msg.c_str());
}

int enqueue(void *h, const char *what, std::function<int(std::string *)> op) {
    int rc;
    stream *s = resolve(h, &rc);
    if (!s) return rc;
    if (int e = s->ctx->err.load()) return e;
    std::lock_guard<std::mutex> lk(s->mu);
    if (s->capturing) {
        s->capturing->nodes.push_back(task{what, std::move(op)});
        return 0;
    }
    s->q.push_back(task{what, std::move(op)});
    s->cv.notify_one();
    return 0;
}

} // namespace standin

using namespace standin;

// ---- exported helpers for the trm backend (cuda/standin.go) ----

extern "C" {

__attribute__((visibility("default"))) int trm_standin_name(unsigned long long p, const char *name) {
    std::lock_guard<std::mutex> lk(mem_mu);
    alloc *r = live_at((uintptr_t)p);
    if (!r) return SI_INVALID_VALUE;
    r->name = name;
    return 0;
}

// trm_standin_live counts the live device buffers of dev and their bytes.
__attribute__((visibility("default"))) int trm_standin_live(int dev, unsigned long long *bytes) {
    std::lock_guard<std::mutex> lk(mem_mu);
    int n = 0;
    unsigned long long b = 0;
    for (auto &kv : regions)
        if (!kv.second->freed && !kv.second->host && kv.second->dev == dev) n++, b += kv.second->size;
    if (bytes) *bytes = b;
    return n;
}

// trm_standin_streams counts the streams of dev's primary context other
// than its default stream (the ones cuStreamCreate made and
// cuStreamDestroy has not yet destroyed).
__attribute__((visibility("default"))) int trm_standin_streams(int dev) {
    if (dev < 0 || dev >= 64) return 0;
    std::lock_guard<std::mutex> lk(ctx_mu);
    context *c = primary[dev];
    if (!c) return 0;
    int n = 0;
    for (stream *s : c->streams)
        if (s != c->dflt) n++;
    return n;
}

// trm_standin_leaks copies the leak report of dev's last context release
// into buf ("" when nothing leaked) and returns its length.
__attribute__((visibility("default"))) int trm_standin_leaks(int dev, char *buf, int n) {
    if (dev < 0 || dev >= 64) return 0;
    std::lock_guard<std::mutex> lk(ctx_mu);
    const std::string &s = leak_report[dev];
    if (buf && n > 0) snprintf(buf, n, "%s", s.c_str());
    return (int)s.size();
}

// trm_standin_error copies the sticky error message of dev's context.
__attribute__((visibility("default"))) int trm_standin_error(int dev, char *buf, int n) {
    if (dev < 0 || dev >= 64 || !primary[dev]) return 0;
    context *c = primary[dev];
    std::lock_guard<std::mutex> lk(c->mu);
    if (buf && n > 0) snprintf(buf, n, "%s", c->msg.c_str());
    return (int)c->msg.size();
}

// ---- initialisation and devices ----

CUresult cuInit(unsigned int) {
    const char *sel = getenv("TRM_STANDIN");
    if (!sel || strcmp(sel, "1") != 0) {
        static std::once_flag once;
        std::call_once(once, [] {
            log("this libcuda.so.1 is trm's CPU stand-in for tests, not NVIDIA's driver; it runs only with "
                "TRM_STANDIN=1 (make test-cuda-standin sets it). Remove it from LD_LIBRARY_PATH to use a GPU.");
        });
        return CUDA_ERROR_NO_DEVICE;
    }
    if (!initialized) {
        page_size = sysconf(_SC_PAGESIZE);
        if (const char *e = getenv("TRM_STANDIN_DEVICES")) ndev = std::max(1, std::min(64, atoi(e)));
        devmem = parse_size(getenv("TRM_STANDIN_MEM"), devmem);
        install_fault_handler();
        initialized = true;
    }
    return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *v) {
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    *v = 11080;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *n) {
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    *n = ndev;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *d, int ord) {
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_dev(ord)) return CUDA_ERROR_INVALID_DEVICE;
    *d = ord;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
    if (!valid_dev(d)) return CUDA_ERROR_INVALID_DEVICE;
    snprintf(name, len, "trm CPU stand-in %d (emulated)", (int)d);
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetUuid(CUuuid *u, CUdevice d) {
    if (!valid_dev(d)) return CUDA_ERROR_INVALID_DEVICE;
    memset(u, 0, sizeof *u);
    memcpy(u->bytes, "trm-standin", 11);
    u->bytes[15] = (char)d;
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem(size_t *b, CUdevice d) {
    if (!valid_dev(d)) return CUDA_ERROR_INVALID_DEVICE;
    *b = devmem;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice d) {
    if (!valid_dev(d)) return CUDA_ERROR_INVALID_DEVICE;
    snprintf(id, len, "0000:%02x:00.0", 0xe0 + (int)d);
    return CUDA_SUCCESS;
}

// The device reports a fixed small shape: 2 SMs of sm_90.
CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice d) {
    if (!valid_dev(d)) return CUDA_ERROR_INVALID_DEVICE;
    switch (a) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: *v = 64; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *v = 0x7fffffff; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: *v = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *v = 48 << 10; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *v = 32; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 2; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *v = 2048; break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: *v = 0xe0 + (int)d; break;
    default: *v = 0;
    }
    return CUDA_SUCCESS;
}

// ---- contexts ----

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice d) {
    if (!valid_dev(d)) return CUDA_ERROR_INVALID_DEVICE;
    std::lock_guard<std::mutex> lk(ctx_mu);
    if (!primary[d]) {
        primary[d] = new context;
        primary[d]->dev = d;
    }
    // The device size is read again whenever a context starts, so that a
    // test can shrink the device to reach out-of-memory paths.
    if (primary[d]->refs++ == 0) devmem = parse_size(getenv("TRM_STANDIN_MEM"), size_t(8) << 30);
    *pctx = (CUcontext)primary[d];
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease(CUdevice d) {
    if (!valid_dev(d)) return CUDA_ERROR_INVALID_DEVICE;
    context *c;
    {
        std::lock_guard<std::mutex> lk(ctx_mu);
        c = primary[d];
        if (!c || c->refs == 0) return CUDA_ERROR_INVALID_CONTEXT;
        if (--c->refs > 0) return CUDA_SUCCESS;
    }
    release_context(c);
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxGetState(CUdevice d, unsigned int *flags, int *active) {
    if (!valid_dev(d)) return CUDA_ERROR_INVALID_DEVICE;
    std::lock_guard<std::mutex> lk(ctx_mu);
    *flags = 0;
    *active = primary[d] && primary[d]->refs > 0;
    return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext c) {
    cur = (context *)c;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetCurrent(CUcontext *c) {
    *c = (CUcontext)cur;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice(CUdevice *d) {
    if (!cur) return CUDA_ERROR_INVALID_CONTEXT;
    *d = cur->dev;
    return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize(void) {
    if (!cur) return CUDA_ERROR_INVALID_CONTEXT;
    sync_all(cur);
    return (CUresult)cur->err.load();
}

// ---- memory ----

CUresult cuMemGetInfo(size_t *free, size_t *total) {
    if (!cur) return CUDA_ERROR_INVALID_CONTEXT;
    std::lock_guard<std::mutex> lk(mem_mu);
    *total = devmem;
    *free = devmem - used[cur->dev];
    return CUDA_SUCCESS;
}

// guarded maps n bytes so that the byte after the last one is the first
// of an inaccessible page, and so is the page before: an overrun faults
// at once. New device memory is filled with 0xff bytes (NaN as float) so
// that reading what was never written shows.
static alloc *guarded(size_t n, int dev, bool host) {
    size_t data = (n + page_size - 1) / page_size * page_size;
    size_t len = data + 2 * page_size;
    void *m = mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    uintptr_t base = (uintptr_t)m;
    if (mprotect((void *)(base + page_size), data, PROT_READ | PROT_WRITE) != 0) {
        munmap(m, len);
        return nullptr;
    }
    auto *r = new alloc;
    r->map_base = base;
    r->map_len = len;
    // Host blocks keep their natural alignment; device buffers end at the guard.
    r->ptr = host ? base + page_size : base + page_size + data - n;
    r->size = n;
    r->dev = dev;
    r->host = host;
    r->id = next_id++;
    if (!host) memset((void *)r->ptr, 0xff, n);
    regions[base] = r;
    return r;
}

CUresult cuMemAlloc(CUdeviceptr *p, size_t n) {
    if (!cur) return CUDA_ERROR_INVALID_CONTEXT;
    if (int e = cur->err.load()) return (CUresult)e;
    if (n == 0) return CUDA_ERROR_INVALID_VALUE;
    std::lock_guard<std::mutex> lk(mem_mu);
    if (used[cur->dev] + n > devmem) return CUDA_ERROR_OUT_OF_MEMORY;
    alloc *r = guarded(n, cur->dev, false);
    if (!r) return CUDA_ERROR_OUT_OF_MEMORY;
    used[cur->dev] += n;
    *p = (CUdeviceptr)r->ptr;
    return CUDA_SUCCESS;
}

CUresult cuMemFree(CUdeviceptr p) {
    if (!cur) return CUDA_ERROR_INVALID_CONTEXT;
    // As on a GPU, freeing waits for the work queued before it.
    sync_all(cur);
    std::lock_guard<std::mutex> lk(mem_mu);
    alloc *r = live_at((uintptr_t)p);
    if (!r || r->host) {
        alloc *g = region_of((uintptr_t)p);
        log("cuMemFree(0x%llx): not the start of a live device buffer%s%s", (unsigned long long)p, g ? ": " : "",
            g ? label(g).c_str() : "");
        return CUDA_ERROR_INVALID_VALUE;
    }
    used[r->dev] -= r->size;
    poison(r);
    return CUDA_SUCCESS;
}

CUresult cuMemHostAlloc(void **p, size_t n, unsigned int) {
    if (!cur) return CUDA_ERROR_INVALID_CONTEXT;
    if (n == 0) return CUDA_ERROR_INVALID_VALUE;
    std::lock_guard<std::mutex> lk(mem_mu);
    alloc *r = guarded(n, cur->dev, true);
    if (!r) return CUDA_ERROR_OUT_OF_MEMORY;
    *p = (void *)r->ptr;
    return CUDA_SUCCESS;
}

CUresult cuMemAllocHost(void **p, size_t n) { return cuMemHostAlloc(p, n, 0); }

CUresult cuMemFreeHost(void *p) {
    if (cur) sync_all(cur);
    std::lock_guard<std::mutex> lk(mem_mu);
    alloc *r = live_at((uintptr_t)p);
    if (!r || !r->host) return CUDA_ERROR_INVALID_VALUE;
    poison(r);
    return CUDA_SUCCESS;
}

static CUresult checked(const char *what, uintptr_t p, size_t n) {
    std::string why = check_range(p, n);
    if (why.empty()) return CUDA_SUCCESS;
    refuse("%s: %s", what, why.c_str());
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream s) {
    if (CUresult e = checked("cuMemsetD8Async", d, n)) return e;
    return (CUresult)enqueue(s, "cuMemsetD8Async", [=](std::string *) {
        memset((void *)d, v, n);
        return 0;
    });
}

CUresult cuMemcpyHtoDAsync(CUdeviceptr d, const void *h, size_t n, CUstream s) {
    if (CUresult e = checked("cuMemcpyHtoDAsync (destination)", d, n)) return e;
    return (CUresult)enqueue(s, "cuMemcpyHtoDAsync", [=](std::string *) {
        memcpy((void *)d, h, n);
        return 0;
    });
}

CUresult cuMemcpyDtoHAsync(void *h, CUdeviceptr d, size_t n, CUstream s) {
    if (CUresult e = checked("cuMemcpyDtoHAsync (source)", d, n)) return e;
    return (CUresult)enqueue(s, "cuMemcpyDtoHAsync", [=](std::string *) {
        memcpy(h, (const void *)d, n);
        return 0;
    });
}

CUresult cuMemcpyDtoDAsync(CUdeviceptr d, CUdeviceptr src, size_t n, CUstream s) {
    if (CUresult e = checked("cuMemcpyDtoDAsync (destination)", d, n)) return e;
    if (CUresult e = checked("cuMemcpyDtoDAsync (source)", src, n)) return e;
    return (CUresult)enqueue(s, "cuMemcpyDtoDAsync", [=](std::string *) {
        memmove((void *)d, (const void *)src, n);
        return 0;
    });
}

// ---- streams ----

CUresult cuStreamCreate(CUstream *s, unsigned int) {
    if (!cur) return CUDA_ERROR_INVALID_CONTEXT;
    *s = (CUstream)new_stream(cur);
    return CUDA_SUCCESS;
}

CUresult cuStreamDestroy(CUstream h) {
    int rc;
    stream *s = resolve(h, &rc);
    if (!s) return (CUresult)rc;
    if (!h) return CUDA_ERROR_INVALID_HANDLE;
    s->sync();
    destroy_stream(s);
    return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(CUstream h) {
    int rc;
    stream *s = resolve(h, &rc);
    if (!s) return (CUresult)rc;
    {
        std::lock_guard<std::mutex> lk(s->mu);
        if (s->capturing) {
            s->capture_broken = "cuStreamSynchronize on the capturing stream";
            return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
        }
    }
    s->sync();
    return (CUresult)s->ctx->err.load();
}

CUresult cuStreamQuery(CUstream h) {
    int rc;
    stream *s = resolve(h, &rc);
    if (!s) return (CUresult)rc;
    if (int e = s->ctx->err.load()) return (CUresult)e;
    std::lock_guard<std::mutex> lk(s->mu);
    return s->q.empty() && !s->running ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

// ---- graphs: a capture records the stream's operations instead of
// running them; an instantiated graph replays them in order ----

CUresult cuStreamBeginCapture(CUstream h, CUstreamCaptureMode) {
    int rc;
    stream *s = resolve(h, &rc);
    if (!s) return (CUresult)rc;
    if (!h) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED; // the legacy stream cannot be captured
    std::lock_guard<std::mutex> lk(s->mu);
    if (s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
    s->capturing = new graph;
    s->capture_broken.clear();
    return CUDA_SUCCESS;
}

CUresult cuStreamEndCapture(CUstream h, CUgraph *g) {
    int rc;
    stream *s = resolve(h, &rc);
    if (!s) return (CUresult)rc;
    std::lock_guard<std::mutex> lk(s->mu);
    if (!s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
    graph *gr = s->capturing;
    s->capturing = nullptr;
    if (!s->capture_broken.empty()) {
        log("stream capture invalidated: %s", s->capture_broken.c_str());
        delete gr;
        *g = nullptr;
        return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    }
    *g = (CUgraph)gr;
    return CUDA_SUCCESS;
}

CUresult cuGraphGetNodes(CUgraph g, CUgraphNode *nodes, size_t *n) {
    if (!g || !n) return CUDA_ERROR_INVALID_VALUE;
    graph *gr = (graph *)g;
    if (nodes) {
        size_t k = std::min(*n, gr->nodes.size());
        for (size_t i = 0; i < k; i++) nodes[i] = (CUgraphNode)&gr->nodes[i];
    }
    *n = gr->nodes.size();
    return CUDA_SUCCESS;
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec *e, CUgraph g, unsigned long long) {
    if (!g || !e) return CUDA_ERROR_INVALID_VALUE;
    *e = (CUgraphExec) new graph(*(graph *)g);
    return CUDA_SUCCESS;
}

CUresult cuGraphLaunch(CUgraphExec e, CUstream s) {
    if (!e) return CUDA_ERROR_INVALID_VALUE;
    graph *gr = (graph *)e;
    return (CUresult)enqueue(s, "cuGraphLaunch", [gr](std::string *msg) {
        for (size_t i = 0; i < gr->nodes.size(); i++) {
            int rc = gr->nodes[i].op(msg);
            if (rc != 0) {
                char m[64];
                snprintf(m, sizeof m, "graph node %zu of %zu: ", i, gr->nodes.size());
                *msg = m + gr->nodes[i].what + (msg->empty() ? "" : ": " + *msg);
                return rc;
            }
        }
        return 0;
    });
}

CUresult cuGraphExecDestroy(CUgraphExec e) {
    if (!e) return CUDA_ERROR_INVALID_VALUE;
    if (cur) sync_all(cur);
    delete (graph *)e;
    return CUDA_SUCCESS;
}

CUresult cuGraphDestroy(CUgraph g) {
    if (!g) return CUDA_ERROR_INVALID_VALUE;
    delete (graph *)g;
    return CUDA_SUCCESS;
}

// ---- modules and launches ----

struct module {
    std::string image;
};

CUresult cuModuleLoadData(CUmodule *m, const void *image) {
    if (!cur) return CUDA_ERROR_INVALID_CONTEXT;
    const unsigned char *b = (const unsigned char *)image;
    if (!b) return CUDA_ERROR_INVALID_VALUE;
    static const unsigned char fatbin[4] = {0x50, 0xed, 0x55, 0xba};
    if (memcmp(b, fatbin, 4) != 0) {
        log("cuModuleLoadData: the image is not a fatbin (magic %02x%02x%02x%02x)", b[0], b[1], b[2], b[3]);
        return CUDA_ERROR_INVALID_IMAGE;
    }
    // A fatbin is a run of containers, each with a header: magic, version
    // (2 bytes), header size (2), and the size of what follows (8).
    size_t total = 0;
    while (memcmp(b + total, fatbin, 4) == 0) {
        uint16_t hsz;
        uint64_t body;
        memcpy(&hsz, b + total + 6, 2);
        memcpy(&body, b + total + 8, 8);
        total += hsz + body;
    }
    *m = (CUmodule) new module{std::string((const char *)b, total)};
    return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name) {
    if (!m || !name) return CUDA_ERROR_INVALID_VALUE;
    const kernel *k = find_kernel(name);
    // The kernel must also be in the image loaded, as on a GPU: a stale
    // fatbin fails here too.
    if (!k || ((module *)m)->image.find(name) == std::string::npos) return CUDA_ERROR_NOT_FOUND;
    *f = (CUfunction)k;
    return CUDA_SUCCESS;
}

CUresult cuModuleUnload(CUmodule m) {
    if (!m) return CUDA_ERROR_INVALID_VALUE;
    delete (module *)m;
    return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                        CUstream s, void **params, void **extra) {
    const kernel *k = (const kernel *)f;
    if (!k || extra) return CUDA_ERROR_INVALID_VALUE;
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || gy > 65535 || gz > 65535 || bz > 64 ||
        (unsigned long)bx * by * bz > 1024) {
        log("cuLaunchKernel %s: grid (%u,%u,%u) block (%u,%u,%u) is not a valid launch shape", k->name, gx, gy, gz, bx, by, bz);
        return CUDA_ERROR_INVALID_VALUE;
    }
    (void)shmem;
    auto args = std::make_shared<std::vector<uint64_t>>(k->nargs);
    for (int i = 0; i < k->nargs; i++) memcpy(&(*args)[i], params[i], 8);
    return (CUresult)enqueue(s, k->name, [=](std::string *msg) {
        emu_launch L;
        L.grid = emu_dim3{gx, gy, gz};
        L.block = emu_dim3{bx, by, bz};
        L.name = k->name;
        L.invoke = k->invoke;
        L.kernel = k->fn;
        L.args = args->data();
        std::string why = run_launch(&L);
        if (why.empty()) return 0;
        *msg = why;
        return why.find("deadlock") != std::string::npos ? (int)CUDA_ERROR_LAUNCH_FAILED : (int)CUDA_ERROR_ILLEGAL_ADDRESS;
    });
}

// ---- error names ----

static const struct {
    int code;
    const char *name, *text;
} errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_ILLEGAL_STATE, "CUDA_ERROR_ILLEGAL_STATE", "the operation is not permitted in the current state"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported (by trm's CPU stand-in)"},
    {CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"},
    {CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", "operation failed due to a previous error during capture"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

CUresult cuGetErrorName(CUresult rc, const char **s) {
    for (auto &e : errors)
        if (e.code == rc) {
            *s = e.name;
            return CUDA_SUCCESS;
        }
    *s = nullptr;
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult rc, const char **s) {
    for (auto &e : errors)
        if (e.code == rc) {
            *s = e.text;
            return CUDA_SUCCESS;
        }
    *s = nullptr;
    return CUDA_ERROR_INVALID_VALUE;
}

} // extern "C"
