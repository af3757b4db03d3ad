//go:build cuda

// Package probe checks, before gorgonia.org/cu initialises, that a CUDA
// GPU is visible, and explains what to do when none is.
//
// Why a separate package: cu's package init calls cuInit and, where it
// fails (a driver but no GPU, e.g. CUDA_VISIBLE_DEVICES="" or a container
// started without --gpus), prints a bare error and exits. Go initialises
// packages in import-path order among those whose imports are ready
// (Go 1.21+), and this package imports only what cu imports too, so
// github.com/tinyrecursive/trm/cuda/probe runs before gorgonia.org/cu.
//
// It opens the driver with dlopen rather than linking it, so its own check
// never adds a load-time dependency. Where no driver library exists at all
// the dynamic loader stops the cuda binary before any Go code runs
// ("error while loading shared libraries: libcuda.so.1"), because cu links
// libcuda: that message cannot be improved from Go; use the CPU build.
package probe

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef int (*trm_cuInit_t)(unsigned int);
typedef int (*trm_cuDeviceGetCount_t)(int *);
typedef int (*trm_cuDriverGetVersion_t)(int *);
typedef int (*trm_cuGetErrorName_t)(int, const char **);

// trm_probe fills *count, *driver and *name for the first failing call;
// it returns 0 on success, -1 if libcuda.so.1 cannot be opened, else the
// CUresult of the failing call.
static int trm_probe(int *count, int *driver, const char **name) {
	*count = 0; *driver = 0; *name = "";
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
	if (!h) { *name = dlerror(); return -1; }
	trm_cuInit_t init = (trm_cuInit_t)dlsym(h, "cuInit");
	trm_cuDeviceGetCount_t cnt = (trm_cuDeviceGetCount_t)dlsym(h, "cuDeviceGetCount");
	trm_cuDriverGetVersion_t ver = (trm_cuDriverGetVersion_t)dlsym(h, "cuDriverGetVersion");
	trm_cuGetErrorName_t en = (trm_cuGetErrorName_t)dlsym(h, "cuGetErrorName");
	if (!init || !cnt) { *name = "libcuda.so.1 lacks cuInit/cuDeviceGetCount"; return -1; }
	if (ver) ver(driver);
	int rc = init(0);
	if (rc == 0) rc = cnt(count);
	if (rc != 0 && en) en(rc, name);
	return rc;
}
*/
import "C"

import (
	"fmt"
	"os"
)

// Result is what the probe found, for logs (trm-train prints it with
// --device cuda:N).
type Result struct {
	Devices       int    // visible CUDA devices
	DriverVersion int    // e.g. 13000 for CUDA 13.0
	Err           string // empty when at least one GPU is visible
}

// Found is the probe's result at program start.
var Found Result

func init() {
	var count, driver C.int
	var name *C.char
	rc := C.trm_probe(&count, &driver, &name)
	Found = Result{Devices: int(count), DriverVersion: int(driver)}
	switch {
	case rc == -1:
		Found.Err = "cannot open the CUDA driver library libcuda.so.1: " + C.GoString(name)
	case rc != 0:
		Found.Err = fmt.Sprintf("cuInit failed: %s (CUresult %d)", C.GoString(name), int(rc))
	case count == 0:
		Found.Err = "the CUDA driver reports no devices"
	}
	if Found.Err == "" || os.Getenv("TRM_CUDA_PROBE") == "off" {
		return
	}
	fmt.Fprintf(os.Stderr, `trm: this is the CUDA build of trm, but no CUDA GPU is visible.
  %s (driver version %d)
  Check nvidia-smi, CUDA_VISIBLE_DEVICES (now %q), and that a container was
  started with --gpus all. Without a GPU, use the CPU build: go build ./cmd/trm-train
  (no -tags cuda) or the plain Docker image, and --device cpu.
`, Found.Err, Found.DriverVersion, os.Getenv("CUDA_VISIBLE_DEVICES"))
	os.Exit(3)
}
