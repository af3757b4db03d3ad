// Internal interfaces between the parts of the CPU stand-in for the NVIDIA
// libraries (cuda/standin/README.md): the block scheduler and thread pool
// (runtime.cc), the kernel table (kernels.cc), the driver API with its
// memory registry and streams (driver.cc), cuBLAS (blas.cc), NCCL
// (nccl.cc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

struct emu_launch;

namespace standin {

// parallel_for runs fn(0), ..., fn(n-1) over the pool; the caller works
// too, and it returns when all are done.
void parallel_for(long n, const std::function<void(long)> &fn);

// run_launch runs a kernel launch to completion; it returns "" or the
// description of the fault that ended it (an out-of-bounds access names
// the buffer).
std::string run_launch(emu_launch *L);

// install_fault_handler chains a SIGSEGV/SIGBUS handler in front of the
// one installed before (the Go runtime's): faults of kernel code are
// turned into launch errors, every other fault goes on as before.
void install_fault_handler();

// kernel is one entry of the table of kernels compiled from kernels/*.cu.
struct kernel {
    const char *name;
    int nargs;
    void *fn;
    void (*invoke)(void *fn, const uint64_t *args);
};
const kernel *find_kernel(const char *name);
int kernel_count();

// describe names the device buffer that holds (or held, or guards) addr.
std::string describe(uintptr_t addr);

// check_range returns "" when [p, p+n) lies inside one live device buffer,
// else why not, naming the buffer.
std::string check_range(uintptr_t p, size_t n);

// enqueue puts op on stream s (a CUstream; 0 is the context's default
// stream), or into the graph being captured there. op returns a CUresult
// and may set *msg. what names the operation in error reports. Returns the
// CUresult of enqueuing.
int enqueue(void *s, const char *what, std::function<int(std::string *msg)> op);

// current_device returns the device of the calling thread's current
// context, or -1.
int current_device();

// set_error records a sticky error of device dev, as a faulting kernel
// does on a GPU: every later call on its context returns it.
void set_error(int dev, int code, const std::string &msg);

// refuse logs why a call was refused (an operand outside its buffer) and
// keeps the text for the calling thread, which the backend appends to the
// call's error (trm_standin_refusal).
void refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// log prints a line to stderr prefixed with the stand-in's name.
void log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

} // namespace standin

// CUresult codes used by the stand-in (values from cuda.h).
enum {
    SI_SUCCESS = 0,
    SI_INVALID_VALUE = 1,
    SI_OUT_OF_MEMORY = 2,
    SI_NOT_INITIALIZED = 3,
    SI_NO_DEVICE = 100,
    SI_INVALID_DEVICE = 101,
    SI_INVALID_IMAGE = 200,
    SI_INVALID_CONTEXT = 201,
    SI_INVALID_HANDLE = 400,
    SI_NOT_FOUND = 500,
    SI_ILLEGAL_ADDRESS = 700,
    SI_LAUNCH_OUT_OF_RESOURCES = 701,
    SI_LAUNCH_FAILED = 719,
    SI_NOT_SUPPORTED = 801,
    SI_CAPTURE_UNSUPPORTED = 900,
    SI_CAPTURE_INVALIDATED = 901,
    SI_CAPTURE_UNMATCHED = 903,
    SI_CAPTURE_UNJOINED = 904,
    SI_CAPTURE_WRONG_THREAD = 908,
};
