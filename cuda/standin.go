//go:build cuda

package cuda

// The CPU stand-in for the NVIDIA libraries (cuda/standin, `make
// test-cuda-standin`) runs this backend without a GPU. It is recognised
// by the marker symbol every part of it exports, never by a name: the
// backend then labels itself emulated, gives every buffer its own guarded
// allocation (so an overrun faults naming the buffer, see arena.go), and
// refuses to mix the stand-in with NVIDIA's libraries.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef int (*trm_si_name_t)(unsigned long long, const char *);
typedef int (*trm_si_live_t)(int, unsigned long long *);
typedef int (*trm_si_text_t)(int, char *, int);

static void *trm_si_sym(const char *name) { return dlsym(dlopen(NULL, RTLD_NOW), name); }
static const char *trm_si_marker(void) { return (const char *)trm_si_sym("trm_standin_version"); }
static int trm_si_name(void *f, unsigned long long p, const char *s) { return ((trm_si_name_t)f)(p, s); }
static int trm_si_live(void *f, int dev, unsigned long long *bytes) { return ((trm_si_live_t)f)(dev, bytes); }
static int trm_si_text(void *f, int dev, char *buf, int n) { return ((trm_si_text_t)f)(dev, buf, n); }
static int trm_si_refusal(void *f, char *buf, int n) { return ((int (*)(char *, int))f)(buf, n); }
static int trm_si_count(void *f, int dev) { return ((int (*)(int))f)(dev); }
static int trm_si_count0(void *f) { return ((int (*)(void))f)(); }
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

var standin struct {
	once              sync.Once
	marker            string
	name, live, leaks unsafe.Pointer
	errText, refusal  unsafe.Pointer
	streams, handles  unsafe.Pointer
}

func loadStandin() {
	standin.once.Do(func() {
		if m := C.trm_si_marker(); m != nil {
			standin.marker = C.GoString(m)
		}
		sym := func(s string) unsafe.Pointer {
			cs := C.CString(s)
			defer C.free(unsafe.Pointer(cs))
			return C.trm_si_sym(cs)
		}
		if standin.marker != "" {
			standin.name = sym("trm_standin_name")
			standin.live = sym("trm_standin_live")
			standin.leaks = sym("trm_standin_leaks")
			standin.errText = sym("trm_standin_error")
			standin.refusal = sym("trm_standin_refusal")
			standin.streams = sym("trm_standin_streams")
			standin.handles = sym("trm_standin_blas_handles")
		}
	})
}

// Emulated reports whether the CUDA driver in this process is the CPU
// stand-in (cuda/standin) rather than NVIDIA's: timings and capacities
// then mean nothing, so benchmarks and GPU checks must refuse to run.
func Emulated() bool {
	loadStandin()
	return standin.marker != ""
}

// Emulated reports whether the backend runs on the CPU stand-in.
func (b *Backend) Emulated() bool { return Emulated() }

// checkLibraries refuses a mix of the stand-in and NVIDIA's libraries:
// stand-in kernels writing into memory a real cuBLAS reads, or the
// reverse, would fail in ways that say nothing about the engine.
func checkLibraries(l *blasLib) error {
	drv := Emulated()
	bl := l.standin()
	if drv == bl {
		return nil
	}
	if drv {
		return fmt.Errorf("the CUDA driver is the CPU stand-in (cuda/standin) but cuBLAS (%s) is NVIDIA's: use both stand-ins (TRM_CUBLAS=bin/standin/libcublas.so.13) or neither", l.Path)
	}
	return fmt.Errorf("cuBLAS %s is the CPU stand-in (cuda/standin) but the CUDA driver is NVIDIA's: remove bin/standin from TRM_CUBLAS and LD_LIBRARY_PATH", l.Path)
}

// nameBuffer tells the stand-in what a device buffer holds, so that a
// fault or a leak report names it.
func nameBuffer(p uintptr, what string) {
	if standin.name == nil {
		return
	}
	cs := C.CString(what)
	C.trm_si_name(standin.name, C.ulonglong(p), cs)
	C.free(unsafe.Pointer(cs))
}

// StandinLive returns the number of live device buffers on device dev and
// their bytes, as the stand-in counts them (0, 0 on a GPU).
func StandinLive(dev int) (buffers int, bytes int64) {
	loadStandin()
	if standin.live == nil {
		return 0, 0
	}
	var b C.ulonglong
	n := C.trm_si_live(standin.live, C.int(dev), &b)
	return int(n), int64(b)
}

// StandinHandles returns the streams of device dev that were created and
// not destroyed (its context's default stream aside) and the cuBLAS
// handles of the process not destroyed, as the stand-in counts them (0, 0
// on a GPU): with no backend open both are 0, even after a New that
// failed half way.
func StandinHandles(dev int) (streams, blasHandles int) {
	loadStandin()
	if standin.streams == nil || standin.handles == nil {
		return 0, 0
	}
	return int(C.trm_si_count(standin.streams, C.int(dev))), int(C.trm_si_count0(standin.handles))
}

// StandinLeaks returns the stand-in's report of the buffers still
// allocated when device dev's context was last destroyed ("" when none).
func StandinLeaks(dev int) string { return standinText(standin.leaks, dev) }

// standinError returns the stand-in's description of the sticky error of
// device dev (the kernel, the thread and the buffer of a fault).
func standinError(dev int) string { return standinText(standin.errText, dev) }

func standinText(f unsafe.Pointer, dev int) string {
	loadStandin()
	if f == nil {
		return ""
	}
	var buf [4096]C.char
	n := C.trm_si_text(f, C.int(dev), &buf[0], C.int(len(buf)))
	if n <= 0 {
		return ""
	}
	return C.GoString(&buf[0])
}

// withRefusal adds to err, the error of a driver, cuBLAS or NCCL call made
// on this OS thread, the stand-in's explanation of why it refused the
// call (the buffer an operand overran), when there is one.
func withRefusal(err error) error {
	if err == nil || standin.refusal == nil {
		return err
	}
	var buf [2048]C.char
	if C.trm_si_refusal(standin.refusal, &buf[0], C.int(len(buf))) <= 0 {
		return err
	}
	return fmt.Errorf("%w: %s", err, C.GoString(&buf[0]))
}
