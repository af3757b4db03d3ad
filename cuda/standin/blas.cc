// cuBLAS of the stand-in (libcublas.so.13 is a link to the one library):
// the entry points cuda/native.go opens, with GemmStridedBatchedEx
// computing as the real library does on fp32 data: CUBLAS_COMPUTE_32F in
// fp32, _FAST_16BF with both operands rounded to bf16 (round to nearest
// even) and _FAST_TF32 rounded to tf32, every product accumulated in fp32.
// The product is queued on the handle's stream like any kernel, so it is
// captured into graphs and its errors surface at synchronisation.
#include "standin.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace {

struct handle {
    void *stream = nullptr;
    void *workspace = nullptr;
    size_t workspace_size = 0;
    int math = 0;
};

enum {
    ST_SUCCESS = 0,
    ST_NOT_INITIALIZED = 1,
    ST_INVALID_VALUE = 7,
    ST_EXECUTION_FAILED = 13,
    ST_NOT_SUPPORTED = 15,
};

// round_bits drops the low `drop` bits of the mantissa of v, rounding to
// nearest even; NaN and infinity pass unchanged.
inline float round_bits(float v, int drop) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return v;
    uint32_t half = 1u << (drop - 1);
    uint32_t lsb = (u >> drop) & 1u;
    u = (u + half - 1 + lsb) & ~((1u << drop) - 1);
    std::memcpy(&v, &u, 4);
    return v;
}

constexpr int kCompute32F = 68, kCompute32FPedantic = 69, kComputeFast16BF = 75, kComputeFastTF32 = 77;

inline float operand(float v, int compute) {
    if (compute == kComputeFast16BF) return round_bits(v, 16);
    if (compute == kComputeFastTF32) return round_bits(v, 13);
    return v;
}

// span is the number of elements a column-major matrix of r x c with
// leading dimension ld covers.
inline size_t span(int r, int c, int ld) { return r == 0 || c == 0 ? 0 : (size_t)(c - 1) * ld + r; }

// gemm_col computes acc[i] = sum over l of a[l*m + i] * b[l], each sum in
// order of l in fp32, as one accumulator per output does; the loop over i
// is what vectorises (AVX2 where the CPU has it; no FMA contraction, so
// every machine gets the same bits).
__attribute__((target_clones("avx2", "default"))) void gemm_col(float *acc, const float *a, const float *b, int m, int k) {
    for (int i = 0; i < m; i++) acc[i] = 0.0f;
    for (int l = 0; l < k; l++) {
        float x = b[l];
        const float *al = a + (size_t)l * m;
        for (int i = 0; i < m; i++) acc[i] += al[i] * x;
    }
}

// live_handles counts the cuBLAS handles not yet destroyed.
std::atomic<int> live_handles{0};

} // namespace

extern "C" {

__attribute__((visibility("default"))) int cublasCreate_v2(void **h) {
    if (!h) return ST_INVALID_VALUE;
    if (standin::current_device() < 0) return ST_NOT_INITIALIZED;
    *h = new handle;
    live_handles++;
    return ST_SUCCESS;
}

__attribute__((visibility("default"))) int cublasDestroy_v2(void *h) {
    if (!h) return ST_NOT_INITIALIZED;
    delete (handle *)h;
    live_handles--;
    return ST_SUCCESS;
}

// trm_standin_blas_handles counts the cuBLAS handles created and not yet
// destroyed, so a test can tell that a failed backend start left none.
__attribute__((visibility("default"))) int trm_standin_blas_handles(void) { return live_handles.load(); }

__attribute__((visibility("default"))) int cublasSetStream_v2(void *h, void *s) {
    if (!h) return ST_NOT_INITIALIZED;
    ((handle *)h)->stream = s;
    return ST_SUCCESS;
}

__attribute__((visibility("default"))) int cublasSetWorkspace_v2(void *h, void *ws, size_t n) {
    if (!h) return ST_NOT_INITIALIZED;
    std::string why = standin::check_range((uintptr_t)ws, n);
    if (!why.empty()) {
        standin::refuse("cublasSetWorkspace: %s", why.c_str());
        return ST_INVALID_VALUE;
    }
    ((handle *)h)->workspace = ws;
    ((handle *)h)->workspace_size = n;
    return ST_SUCCESS;
}

__attribute__((visibility("default"))) int cublasSetMathMode(void *h, int mode) {
    if (!h) return ST_NOT_INITIALIZED;
    ((handle *)h)->math = mode;
    return ST_SUCCESS;
}

__attribute__((visibility("default"))) int cublasGetVersion_v2(void *h, int *v) {
    if (!h) return ST_NOT_INITIALIZED;
    *v = 120000;
    return ST_SUCCESS;
}

__attribute__((visibility("default"))) const char *cublasGetStatusString(int st) {
    switch (st) {
    case ST_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case ST_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case ST_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case ST_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case ST_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

// cublasGemmStridedBatchedEx for fp32 matrices (CUDA_R_32F = 0) in host
// pointer mode, column-major as cuBLAS defines it.
__attribute__((visibility("default"))) int cublasGemmStridedBatchedEx(void *hv, int ta, int tb, int m, int n, int k,
                                                                      const void *alpha, const void *A, int atype, int lda,
                                                                      long long sA, const void *B, int btype, int ldb,
                                                                      long long sB, const void *beta, void *C, int ctype,
                                                                      int ldc, long long sC, int batch, int compute, int algo) {
    handle *h = (handle *)hv;
    if (!h) return ST_NOT_INITIALIZED;
    (void)algo;
    if (atype != 0 || btype != 0 || ctype != 0) {
        standin::log("cublasGemmStridedBatchedEx: only CUDA_R_32F data is emulated (got %d, %d, %d)", atype, btype, ctype);
        return ST_NOT_SUPPORTED;
    }
    if (compute != kCompute32F && compute != kCompute32FPedantic && compute != kComputeFast16BF && compute != kComputeFastTF32) {
        standin::log("cublasGemmStridedBatchedEx: compute type %d is not emulated", compute);
        return ST_NOT_SUPPORTED;
    }
    if (m < 0 || n < 0 || k < 0 || batch < 0 || (ta != 0 && ta != 1) || (tb != 0 && tb != 1)) return ST_INVALID_VALUE;
    int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    if (lda < std::max(1, ar) || ldb < std::max(1, br) || ldc < std::max(1, m)) return ST_INVALID_VALUE;
    if (m == 0 || n == 0 || batch == 0) return ST_SUCCESS;
    float al, be;
    std::memcpy(&al, alpha, 4);
    std::memcpy(&be, beta, 4);
    // Every operand must lie inside one buffer: an overrun is named here
    // rather than read from a neighbour.
    struct {
        const char *what;
        const void *p;
        size_t elems;
    } ops[] = {
        {"A", A, k == 0 ? 0 : (size_t)(batch - 1) * sA + span(ar, ac, lda)},
        {"B", B, k == 0 ? 0 : (size_t)(batch - 1) * sB + span(br, bc, ldb)},
        {"C", C, (size_t)(batch - 1) * sC + span(m, n, ldc)},
    };
    for (auto &o : ops) {
        std::string why = standin::check_range((uintptr_t)o.p, o.elems * 4);
        if (!why.empty()) {
            standin::refuse("cublasGemmStridedBatchedEx %dx%dx%d batch %d: operand %s: %s", m, n, k, batch, o.what, why.c_str());
            return ST_INVALID_VALUE;
        }
    }
    const float *a = (const float *)A, *b = (const float *)B;
    float *c = (float *)C;
    int rc = standin::enqueue(h->stream, "cublasGemmStridedBatchedEx", [=](std::string *) {
        std::vector<float> pa((size_t)k * m), pb((size_t)n * k);
        for (int q = 0; q < batch; q++) {
            const float *aq = a + (size_t)q * sA, *bq = b + (size_t)q * sB;
            float *cq = c + (size_t)q * sC;
            // op(A) column-major (k columns of m), op(B) by columns (n of
            // k), each element rounded once.
            for (int l = 0; l < k; l++)
                for (int i = 0; i < m; i++) pa[(size_t)l * m + i] = operand(ta ? aq[l + (size_t)i * lda] : aq[i + (size_t)l * lda], compute);
            for (int j = 0; j < n; j++)
                for (int l = 0; l < k; l++) pb[(size_t)j * k + l] = operand(tb ? bq[j + (size_t)l * ldb] : bq[l + (size_t)j * ldb], compute);
            int cols = std::max(1, std::min(n, 4));
            standin::parallel_for((n + cols - 1) / cols, [&](long t) {
                std::vector<float> acc(m);
                for (int j = (int)t * cols; j < std::min(n, (int)(t + 1) * cols); j++) {
                    gemm_col(acc.data(), pa.data(), &pb[(size_t)j * k], m, k);
                    float *cj = cq + (size_t)j * ldc;
                    if (be == 0.0f)
                        for (int i = 0; i < m; i++) cj[i] = al * acc[i];
                    else
                        for (int i = 0; i < m; i++) cj[i] = al * acc[i] + be * cj[i];
                }
            });
        }
        return 0;
    });
    return rc == 0 ? ST_SUCCESS : ST_EXECUTION_FAILED;
}

} // extern "C"
