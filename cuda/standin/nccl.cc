// NCCL of the stand-in (libnccl.so.2 is a link to the one library): the
// entry points device/nccl opens, for communicators whose ranks are the
// stand-in devices of one process. A collective is queued on the rank's
// stream like a kernel; when it runs it waits for every rank's copy of
// the same collective, combines the inputs in rank order (so sums are
// reproducible) and writes this rank's output.
#include "standin.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

namespace {

enum { NC_SUCCESS = 0, NC_UNHANDLED_CUDA = 1, NC_SYSTEM = 2, NC_INTERNAL = 3, NC_INVALID_ARGUMENT = 4, NC_INVALID_USAGE = 5, NC_REMOTE = 6 };
enum { T_INT32 = 2, T_FLOAT32 = 7, T_FLOAT64 = 8 };
enum { OP_ALLREDUCE, OP_ALLGATHER, OP_BROADCAST };

struct slot {
    int kind, dtype, root;
    size_t count;
    const void *send[64];
    void *recv[64];
    int arrived = 0, computed = 0, left = 0;
};

// group is what the ranks of one communicator share.
struct group {
    int nranks;
    int joined = 0;
    bool aborted = false;
    std::mutex mu;
    std::condition_variable cv;
    std::map<uint64_t, slot> slots; // by collective sequence number
};

struct comm {
    std::shared_ptr<group> g;
    int rank;
    uint64_t seq = 0; // collectives issued by this rank
    int dev;
};

std::mutex reg_mu;
std::map<std::string, std::shared_ptr<group>> pending; // by unique id, until every rank joined

size_t elem(int dt) { return dt == T_FLOAT64 ? 8 : 4; }

template <typename T> void sum(void *dst, const void *const *src, int n, size_t count) {
    T *d = (T *)dst;
    for (size_t i = 0; i < count; i++) {
        T acc = ((const T *)src[0])[i];
        for (int r = 1; r < n; r++) acc += ((const T *)src[r])[i];
        d[i] = acc;
    }
}

// run is the queued body of one collective on rank c.
int run(const std::shared_ptr<group> &gp, int rank, uint64_t seq, int kind, int dtype, int root, size_t count, const void *send,
        void *recv, std::string *msg) {
    group &g = *gp;
    std::unique_lock<std::mutex> lk(g.mu);
    slot &s = g.slots[seq];
    if (s.arrived == 0) {
        s.kind = kind;
        s.dtype = dtype;
        s.root = root;
        s.count = count;
    } else if (s.kind != kind || s.dtype != dtype || s.count != count || s.root != root) {
        *msg = "ranks disagree on collective " + std::to_string(seq) + " (kind, type, count or root)";
        g.aborted = true;
        g.cv.notify_all();
        return NC_INVALID_USAGE;
    }
    s.send[rank] = send;
    s.recv[rank] = recv;
    s.arrived++;
    g.cv.notify_all();
    while (s.arrived < g.nranks && !g.aborted) g.cv.wait(lk);
    if (g.aborted) {
        *msg = "the communicator was aborted";
        return NC_REMOTE;
    }
    // Every input is in place: compute this rank's output into a private
    // buffer, and write it only once every rank has read the inputs (an
    // in-place all-reduce overwrites its input).
    lk.unlock();
    size_t n = kind == OP_ALLGATHER ? count * g.nranks : count;
    std::vector<char> out(n * elem(dtype));
    switch (kind) {
    case OP_ALLREDUCE:
        if (dtype == T_FLOAT32) sum<float>(out.data(), s.send, g.nranks, count);
        else if (dtype == T_FLOAT64) sum<double>(out.data(), s.send, g.nranks, count);
        else sum<int32_t>(out.data(), s.send, g.nranks, count);
        break;
    case OP_ALLGATHER:
        for (int r = 0; r < g.nranks; r++) std::memcpy(out.data() + r * count * elem(dtype), s.send[r], count * elem(dtype));
        break;
    case OP_BROADCAST:
        std::memcpy(out.data(), s.send[root], count * elem(dtype));
        break;
    }
    lk.lock();
    s.computed++;
    g.cv.notify_all();
    while (s.computed < g.nranks && !g.aborted) g.cv.wait(lk);
    if (g.aborted) {
        *msg = "the communicator was aborted";
        return NC_REMOTE;
    }
    std::memcpy(recv, out.data(), out.size());
    if (++s.left == g.nranks) g.slots.erase(seq);
    return NC_SUCCESS;
}

int issue(comm *c, int kind, const void *send, void *recv, size_t count, int dtype, int root, void *stream) {
    if (!c) return NC_INVALID_ARGUMENT;
    if (dtype != T_INT32 && dtype != T_FLOAT32 && dtype != T_FLOAT64) {
        standin::log("NCCL: data type %d is not emulated (int32, float32 and float64 are)", dtype);
        return NC_INVALID_ARGUMENT;
    }
    if (root < 0 || root >= c->g->nranks) return NC_INVALID_ARGUMENT;
    size_t in = count * elem(dtype), out = kind == OP_ALLGATHER ? in * c->g->nranks : in;
    if (kind != OP_BROADCAST || c->rank == root) {
        std::string why = standin::check_range((uintptr_t)send, in);
        if (!why.empty()) {
            standin::refuse("NCCL collective on rank %d: send buffer: %s", c->rank, why.c_str());
            return NC_INVALID_ARGUMENT;
        }
    }
    std::string why = standin::check_range((uintptr_t)recv, out);
    if (!why.empty()) {
        standin::refuse("NCCL collective on rank %d: receive buffer: %s", c->rank, why.c_str());
        return NC_INVALID_ARGUMENT;
    }
    uint64_t seq = c->seq++;
    static const char *names[] = {"ncclAllReduce", "ncclAllGather", "ncclBroadcast"};
    std::shared_ptr<group> g = c->g;
    int rank = c->rank;
    int rc = standin::enqueue(stream, names[kind], [=](std::string *msg) {
        int r = run(g, rank, seq, kind, dtype, root, count, send, recv, msg);
        // A failed collective is a failed launch on a GPU.
        return r == NC_SUCCESS ? 0 : 719;
    });
    return rc == 0 ? NC_SUCCESS : NC_UNHANDLED_CUDA;
}

} // namespace

extern "C" {

typedef struct {
    char internal[128];
} trm_nccl_id;

__attribute__((visibility("default"))) int ncclGetVersion(int *v) {
    if (!v) return NC_INVALID_ARGUMENT;
    *v = 22105;
    return NC_SUCCESS;
}

__attribute__((visibility("default"))) int ncclGetUniqueId(trm_nccl_id *id) {
    if (!id) return NC_INVALID_ARGUMENT;
    static std::mt19937_64 rng(std::random_device{}());
    static std::mutex mu;
    std::lock_guard<std::mutex> lk(mu);
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "trm-standin-%016llx", (unsigned long long)rng());
    return NC_SUCCESS;
}

__attribute__((visibility("default"))) int ncclCommInitRank(void **out, int nranks, trm_nccl_id id, int rank) {
    if (!out || nranks < 1 || nranks > 64 || rank < 0 || rank >= nranks) return NC_INVALID_ARGUMENT;
    if (strncmp(id.internal, "trm-standin-", 12) != 0) {
        standin::log("ncclCommInitRank: the unique id was not made by this stand-in's ncclGetUniqueId");
        return NC_INVALID_ARGUMENT;
    }
    int dev = standin::current_device();
    if (dev < 0) return NC_UNHANDLED_CUDA;
    std::shared_ptr<group> g;
    {
        std::lock_guard<std::mutex> lk(reg_mu);
        auto &p = pending[id.internal];
        if (!p) {
            p = std::make_shared<group>();
            p->nranks = nranks;
        }
        g = p;
        if (g->nranks != nranks) return NC_INVALID_USAGE;
        if (++g->joined == nranks) pending.erase(id.internal);
    }
    // Block until every rank has joined, as ncclCommInitRank does.
    std::unique_lock<std::mutex> lk(g->mu);
    g->cv.notify_all();
    if (!g->cv.wait_for(lk, std::chrono::minutes(2), [&] { return g->joined == g->nranks; })) {
        standin::log("ncclCommInitRank: rank %d of %d waited 2 minutes for the other ranks", rank, nranks);
        return NC_SYSTEM;
    }
    *out = new comm{g, rank, 0, dev};
    return NC_SUCCESS;
}

__attribute__((visibility("default"))) int ncclAllReduce(const void *send, void *recv, size_t count, int dtype, int op, void *c,
                                                         void *stream) {
    if (op != 0) {
        standin::log("ncclAllReduce: only ncclSum is emulated (got op %d)", op);
        return NC_INVALID_ARGUMENT;
    }
    return issue((comm *)c, OP_ALLREDUCE, send, recv, count, dtype, 0, stream);
}

__attribute__((visibility("default"))) int ncclAllGather(const void *send, void *recv, size_t count, int dtype, void *c,
                                                         void *stream) {
    return issue((comm *)c, OP_ALLGATHER, send, recv, count, dtype, 0, stream);
}

__attribute__((visibility("default"))) int ncclBroadcast(const void *send, void *recv, size_t count, int dtype, int root, void *c,
                                                         void *stream) {
    return issue((comm *)c, OP_BROADCAST, send, recv, count, dtype, root, stream);
}

__attribute__((visibility("default"))) int ncclCommAbort(void *cv) {
    comm *c = (comm *)cv;
    if (!c) return NC_INVALID_ARGUMENT;
    {
        std::lock_guard<std::mutex> lk(c->g->mu);
        c->g->aborted = true;
        c->g->cv.notify_all();
    }
    delete c;
    return NC_SUCCESS;
}

__attribute__((visibility("default"))) int ncclCommDestroy(void *cv) {
    if (!cv) return NC_INVALID_ARGUMENT;
    delete (comm *)cv;
    return NC_SUCCESS;
}

__attribute__((visibility("default"))) int ncclCommGetAsyncError(void *cv, int *res) {
    comm *c = (comm *)cv;
    if (!c || !res) return NC_INVALID_ARGUMENT;
    std::lock_guard<std::mutex> lk(c->g->mu);
    *res = c->g->aborted ? NC_REMOTE : NC_SUCCESS;
    return NC_SUCCESS;
}

__attribute__((visibility("default"))) const char *ncclGetErrorString(int rc) {
    switch (rc) {
    case NC_SUCCESS: return "no error";
    case NC_UNHANDLED_CUDA: return "unhandled cuda error";
    case NC_SYSTEM: return "unhandled system error";
    case NC_INTERNAL: return "internal error";
    case NC_INVALID_ARGUMENT: return "invalid argument";
    case NC_INVALID_USAGE: return "invalid usage";
    case NC_REMOTE: return "remote process exited or there was a network error";
    case 7: return "NCCL operation in progress";
    }
    return "unknown result code";
}

__attribute__((visibility("default"))) int ncclGroupStart(void) { return NC_SUCCESS; }
__attribute__((visibility("default"))) int ncclGroupEnd(void) { return NC_SUCCESS; }

} // extern "C"
