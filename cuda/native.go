//go:build cuda

package cuda

// Own cgo for what gorgonia.org/cu lacks: pinned host memory,
// stream capture and graph launch, and cuBLAS opened at run time with
// dlopen and our own prototypes. cuBLAS is never linked: the GPU machines
// ship it as libcublas.so.12/13 in Python wheels, Debian as .so.11, and
// its C API (the _v2 entry points and GemmStridedBatchedEx) is stable
// across 11-13, so one binary runs against whichever is found.

/*
#cgo LDFLAGS: -lcuda -ldl
#cgo linux CFLAGS: -I/usr/local/cuda/include
#include <cuda.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <stddef.h>

// ---- pinned host memory ----
static int trm_host_alloc(void **p, size_t n) { return cuMemHostAlloc(p, n, 0); }
static int trm_host_free(void *p) { return cuMemFreeHost(p); }

// ---- graphs ----
// Relaxed capture: the capturing thread may still call non-stream APIs
// (nothing else runs on the worker thread while it captures).
static int trm_begin_capture(void *stream) {
	return cuStreamBeginCapture((CUstream)stream, CU_STREAM_CAPTURE_MODE_RELAXED);
}
static int trm_end_capture(void *stream, void **graph) {
	return cuStreamEndCapture((CUstream)stream, (CUgraph *)graph);
}
static int trm_graph_instantiate(void **exec, void *graph) {
	return cuGraphInstantiateWithFlags((CUgraphExec *)exec, (CUgraph)graph, 0);
}
static int trm_graph_launch(void *exec, void *stream) { return cuGraphLaunch((CUgraphExec)exec, (CUstream)stream); }
static int trm_graph_exec_destroy(void *exec) { return cuGraphExecDestroy((CUgraphExec)exec); }
static int trm_graph_destroy(void *graph) { return cuGraphDestroy((CUgraph)graph); }
static int trm_graph_nodes(void *graph, size_t *n) { return cuGraphGetNodes((CUgraph)graph, NULL, n); }
static const char *trm_cu_error_name(int rc) {
	const char *s = 0;
	if (cuGetErrorName((CUresult)rc, &s) != CUDA_SUCCESS || !s) return "unknown CUresult";
	return s;
}
static int trm_device_arch(int ord, int *major, int *minor, int *sms) {
	CUdevice d;
	int rc = cuDeviceGet(&d, ord);
	if (rc) return rc;
	rc = cuDeviceGetAttribute(major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d);
	if (rc) return rc;
	rc = cuDeviceGetAttribute(minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d);
	if (rc) return rc;
	return cuDeviceGetAttribute(sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d);
}

// ---- cuBLAS through dlopen ----
// Own prototypes of the few entry points used; handles and streams are
// opaque pointers, enums plain ints (values from cublas_api.h, stable).
typedef int (*trm_cublasCreate_t)(void **);
typedef int (*trm_cublasDestroy_t)(void *);
typedef int (*trm_cublasSetStream_t)(void *, void *);
typedef int (*trm_cublasSetWorkspace_t)(void *, void *, size_t);
typedef int (*trm_cublasSetMathMode_t)(void *, int);
typedef int (*trm_cublasGetVersion_t)(void *, int *);
typedef int (*trm_cublasGemmStridedBatchedEx_t)(void *, int, int, int, int, int, const void *, const void *, int, int,
                                                long long, const void *, int, int, long long, const void *, void *, int,
                                                int, long long, int, int, int);
typedef const char *(*trm_cublasGetStatusString_t)(int);

typedef struct {
	void *lib, *lt;
	trm_cublasCreate_t create;
	trm_cublasDestroy_t destroy;
	trm_cublasSetStream_t setStream;
	trm_cublasSetWorkspace_t setWorkspace; // NULL before cuBLAS 11.2
	trm_cublasSetMathMode_t setMathMode;
	trm_cublasGetVersion_t getVersion;
	trm_cublasGemmStridedBatchedEx_t gemm;
	trm_cublasGetStatusString_t statusString; // NULL before cuBLAS 11.4
} trm_blas;

// trm_blas_close unloads a candidate that failed (its cuBLASLt too), so a
// library without the entry points does not stay mapped.
static void trm_blas_close(trm_blas *b) {
	if (b->lib) dlclose(b->lib);
	if (b->lt) dlclose(b->lt);
	b->lib = 0;
	b->lt = 0;
}

// trm_standin_marker returns the marker string the CPU stand-in for the
// NVIDIA libraries exports (cuda/standin/driver.cc), looked up in lib;
// NULL for NVIDIA's own libraries.
static const char *trm_standin_marker(void *lib) {
	return (const char *)dlsym(lib, "trm_standin_version");
}

// trm_blas_open loads cuBLAS from path (its cuBLASLt from ltPath first, if
// given, so the library's own dependency resolves to the same folder).
// Returns 0, or 1 with *err set to dlerror's message or the missing symbol.
static int trm_blas_open(trm_blas *b, const char *path, const char *ltPath, const char **err) {
	if (ltPath) b->lt = dlopen(ltPath, RTLD_NOW | RTLD_GLOBAL);
	b->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!b->lib) { *err = dlerror(); trm_blas_close(b); return 1; }
#define TRM_SYM(field, name, type) b->field = (type)dlsym(b->lib, name); if (!b->field) { *err = name; trm_blas_close(b); return 1; }
	TRM_SYM(create, "cublasCreate_v2", trm_cublasCreate_t)
	TRM_SYM(destroy, "cublasDestroy_v2", trm_cublasDestroy_t)
	TRM_SYM(setStream, "cublasSetStream_v2", trm_cublasSetStream_t)
	TRM_SYM(setMathMode, "cublasSetMathMode", trm_cublasSetMathMode_t)
	TRM_SYM(getVersion, "cublasGetVersion_v2", trm_cublasGetVersion_t)
	TRM_SYM(gemm, "cublasGemmStridedBatchedEx", trm_cublasGemmStridedBatchedEx_t)
#undef TRM_SYM
	b->setWorkspace = (trm_cublasSetWorkspace_t)dlsym(b->lib, "cublasSetWorkspace_v2");
	b->statusString = (trm_cublasGetStatusString_t)dlsym(b->lib, "cublasGetStatusString");
	return 0;
}

static int trm_blas_create(trm_blas *b, void **h) { return b->create(h); }
static int trm_blas_destroy(trm_blas *b, void *h) { return b->destroy(h); }
static int trm_blas_set_stream(trm_blas *b, void *h, void *s) { return b->setStream(h, s); }
static int trm_blas_has_workspace(trm_blas *b) { return b->setWorkspace != 0; }
static int trm_blas_set_workspace(trm_blas *b, void *h, unsigned long long ws, size_t n) {
	return b->setWorkspace(h, (void *)ws, n);
}
static int trm_blas_set_math(trm_blas *b, void *h, int mode) { return b->setMathMode(h, mode); }
static int trm_blas_version(trm_blas *b, void *h, int *v) { return b->getVersion(h, v); }
static const char *trm_blas_status(trm_blas *b, int st) {
	if (b->statusString) return b->statusString(st);
	return "cuBLAS status";
}

// trm_blas_sgemm: column-major C = alpha op(A) op(B) + beta C over batch
// strided fp32 matrices, computed with the given cublasComputeType_t
// (68 = 32F, 75 = 32F_FAST_16BF, 77 = 32F_FAST_TF32); CUDA_R_32F = 0,
// CUBLAS_GEMM_DEFAULT = -1. Alpha and beta live on this C stack (host
// pointer mode).
static int trm_blas_sgemm(trm_blas *b, void *h, int ta, int tb, int m, int n, int k, float alpha, unsigned long long A,
                          int lda, long long sA, unsigned long long B, int ldb, long long sB, float beta,
                          unsigned long long C, int ldc, long long sC, int batch, int compute) {
	return b->gemm(h, ta, tb, m, n, k, &alpha, (const void *)A, 0, lda, sA, (const void *)B, 0, ldb, sB, &beta,
	               (void *)C, 0, ldc, sC, batch, compute, -1);
}
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"
)

// cuErr turns a CUresult from our own cgo calls into an error (nil for 0).
func cuErr(rc C.int) error {
	if rc == 0 {
		return nil
	}
	return fmt.Errorf("%s (CUresult %d)", C.GoString(C.trm_cu_error_name(rc)), int(rc))
}

// pinned allocates n bytes of page-locked host memory (needed for truly
// asynchronous copies and for copies captured into a CUDA graph).
func pinned(n int) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	if err := cuErr(C.trm_host_alloc(&p, C.size_t(n))); err != nil {
		return nil, fmt.Errorf("cuMemHostAlloc(%d bytes): %w", n, err)
	}
	return p, nil
}

func freePinned(p unsafe.Pointer) { C.trm_host_free(p) }

// deviceArch returns the compute capability and multiprocessor count.
func deviceArch(ord int) (major, minor, sms int, err error) {
	var a, b, c C.int
	err = cuErr(C.trm_device_arch(C.int(ord), &a, &b, &c))
	return int(a), int(b), int(c), err
}

// graph wraps an instantiated CUDA graph.
type graph struct {
	g, exec unsafe.Pointer
	nodes   int
}

func beginCapture(stream unsafe.Pointer) error {
	if err := cuErr(C.trm_begin_capture(stream)); err != nil {
		return fmt.Errorf("cuStreamBeginCapture: %w", err)
	}
	return nil
}

// endCapture ends a capture and instantiates the graph.
func endCapture(stream unsafe.Pointer) (*graph, error) {
	var g graph
	if err := cuErr(C.trm_end_capture(stream, &g.g)); err != nil {
		return nil, fmt.Errorf("cuStreamEndCapture: %w", err)
	}
	var n C.size_t
	if err := cuErr(C.trm_graph_nodes(g.g, &n)); err == nil {
		g.nodes = int(n)
	}
	if err := cuErr(C.trm_graph_instantiate(&g.exec, g.g)); err != nil {
		C.trm_graph_destroy(g.g)
		return nil, fmt.Errorf("cuGraphInstantiateWithFlags: %w", err)
	}
	return &g, nil
}

func (g *graph) launch(stream unsafe.Pointer) error {
	if err := cuErr(C.trm_graph_launch(g.exec, stream)); err != nil {
		return fmt.Errorf("cuGraphLaunch: %w", err)
	}
	return nil
}

func (g *graph) destroy() {
	if g.exec != nil {
		C.trm_graph_exec_destroy(g.exec)
	}
	if g.g != nil {
		C.trm_graph_destroy(g.g)
	}
	g.exec, g.g = nil, nil
}

// cuBLAS compute types (cublasComputeType_t) for fp32 data.
const (
	computeFP32 = 68 // CUBLAS_COMPUTE_32F: true fp32 FMA (golden parity)
	computeBF16 = 75 // CUBLAS_COMPUTE_32F_FAST_16BF: bf16 operands, fp32 accumulate
	computeTF32 = 77 // CUBLAS_COMPUTE_32F_FAST_TF32
)

// blasLib is cuBLAS opened with dlopen; one per process.
type blasLib struct {
	c    C.trm_blas
	Path string // the file opened
}

// blasCandidates lists where libcublas is looked for, in order: an
// explicit TRM_CUBLAS file, LD_LIBRARY_PATH, the CUDA install folders, the
// Python wheels' site-packages/nvidia/{cublas,cu13}/lib (how PyTorch ships
// it, e.g. on the GPU machines), and finally the bare sonames, which the
// dynamic loader resolves through its cache (Debian's libcublas.so.11).
func blasCandidates() []string {
	var dirs []string
	for _, d := range strings.Split(os.Getenv("LD_LIBRARY_PATH"), ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib")
	if m, _ := filepath.Glob("/usr/local/cuda-*/lib64"); len(m) > 0 {
		sort.Sort(sort.Reverse(sort.StringSlice(m)))
		dirs = append(dirs, m...)
	}
	var wheels []string
	for _, pat := range []string{
		"/usr/lib/python3*/site-packages", "/usr/lib/python3/dist-packages", "/usr/local/lib/python3*/site-packages",
		"/usr/local/lib/python3*/dist-packages", "/opt/*/.venv/lib/python3*/site-packages", "/opt/*/lib/python3*/site-packages",
		"/opt/conda/lib/python3*/site-packages", os.Getenv("HOME") + "/.local/lib/python3*/site-packages",
	} {
		// nvidia/cublas/lib (CUDA 11-12 wheels) and nvidia/cu13/lib (CUDA 13).
		m, _ := filepath.Glob(filepath.Join(pat, "nvidia", "*", "lib"))
		wheels = append(wheels, m...)
	}
	if venv := os.Getenv("VIRTUAL_ENV"); venv != "" {
		m, _ := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages", "nvidia", "*", "lib"))
		wheels = append(m, wheels...)
	}
	sort.Stable(sort.Reverse(sort.StringSlice(wheels))) // newer Python first
	dirs = append(dirs, wheels...)
	var out []string
	if p := os.Getenv("TRM_CUBLAS"); p != "" {
		out = append(out, p)
	}
	for _, v := range []string{"13", "12", "11"} {
		for _, d := range dirs {
			p := filepath.Join(d, "libcublas.so."+v)
			if _, err := os.Stat(p); err == nil {
				out = append(out, p)
			}
		}
	}
	return append(out, "libcublas.so.13", "libcublas.so.12", "libcublas.so.11")
}

// openBlas tries every candidate and returns the first that loads with all
// the entry points, or an error listing what was tried.
func openBlas() (*blasLib, error) {
	var tried []string
	for _, p := range blasCandidates() {
		b := &blasLib{Path: p}
		cp := C.CString(p)
		var clt *C.char
		if strings.Contains(p, "/") {
			lt := filepath.Join(filepath.Dir(p), strings.Replace(filepath.Base(p), "libcublas.", "libcublasLt.", 1))
			if _, err := os.Stat(lt); err == nil {
				clt = C.CString(lt)
			}
		}
		var msg *C.char
		rc := C.trm_blas_open(&b.c, cp, clt, &msg)
		C.free(unsafe.Pointer(cp))
		if clt != nil {
			C.free(unsafe.Pointer(clt))
		}
		if rc == 0 {
			return b, nil
		}
		tried = append(tried, p+": "+C.GoString(msg))
	}
	return nil, fmt.Errorf("cuBLAS not found (set TRM_CUBLAS to the file, or LD_LIBRARY_PATH to its folder); tried:\n  %s",
		strings.Join(tried, "\n  "))
}

// standin reports whether this cuBLAS is the CPU stand-in's.
func (l *blasLib) standin() bool { return C.trm_standin_marker(l.c.lib) != nil }

func (l *blasLib) status(st C.int) error {
	if st == 0 {
		return nil
	}
	return fmt.Errorf("%s (cublasStatus %d)", C.GoString(C.trm_blas_status(&l.c, st)), int(st))
}

// blasHandle is a cuBLAS handle bound to one stream.
type blasHandle struct {
	lib *blasLib
	h   unsafe.Pointer
}

func (l *blasLib) newHandle(stream unsafe.Pointer) (*blasHandle, error) {
	var h unsafe.Pointer
	if err := l.status(C.trm_blas_create(&l.c, &h)); err != nil {
		return nil, fmt.Errorf("cublasCreate (%s): %w", l.Path, err)
	}
	if err := l.status(C.trm_blas_set_stream(&l.c, h, stream)); err != nil {
		C.trm_blas_destroy(&l.c, h)
		return nil, fmt.Errorf("cublasSetStream: %w", err)
	}
	// Default math: fp32 compute types stay true fp32 unless a fast
	// compute type is asked per call.
	if err := l.status(C.trm_blas_set_math(&l.c, h, 0)); err != nil {
		C.trm_blas_destroy(&l.c, h)
		return nil, fmt.Errorf("cublasSetMathMode: %w", err)
	}
	return &blasHandle{lib: l, h: h}, nil
}

func (h *blasHandle) version() int {
	var v C.int
	if C.trm_blas_version(&h.lib.c, h.h, &v) != 0 {
		return 0
	}
	return int(v)
}

// setWorkspace hands cuBLAS a fixed workspace so that it never allocates
// during stream capture. It reports false where the library predates the
// call (graphs are then left off).
func (h *blasHandle) setWorkspace(p uintptr, n int) (bool, error) {
	if C.trm_blas_has_workspace(&h.lib.c) == 0 {
		return false, nil
	}
	return true, h.lib.status(C.trm_blas_set_workspace(&h.lib.c, h.h, C.ulonglong(p), C.size_t(n)))
}

func (h *blasHandle) destroy() {
	if h.h != nil {
		C.trm_blas_destroy(&h.lib.c, h.h)
		h.h = nil
	}
}

// sgemm runs the column-major strided-batched product.
func (h *blasHandle) sgemm(ta, tb bool, m, n, k int, alpha float32, a uintptr, lda, sa int, b uintptr, ldb, sb int,
	beta float32, c uintptr, ldc, sc, batch, compute int) error {
	return h.lib.status(C.trm_blas_sgemm(&h.lib.c, h.h, cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		C.ulonglong(a), C.int(lda), C.longlong(sa), C.ulonglong(b), C.int(ldb), C.longlong(sb), C.float(beta),
		C.ulonglong(c), C.int(ldc), C.longlong(sc), C.int(batch), C.int(compute)))
}

func cbool(v bool) C.int {
	if v {
		return 1
	}
	return 0
}
