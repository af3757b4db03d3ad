//go:build cuda

// Package cuda is the engine's CUDA backend: the ops of engine.Backend as
// the kernels of kernels/ (launched through gorgonia.org/cu) plus GEMMs in
// cuBLAS (opened at run time with dlopen), on one stream per backend.
//
// Threading: CUDA's current context is per OS thread, and cu's Ctx wrapper
// costs a goroutine round trip per call, so each device has one worker
// goroutine locked to its OS thread with the device's primary context
// current, fed closures through a channel. Ops validate their arguments on
// the caller's goroutine (errors name the op, the shapes and the call
// site), then post a closure and return: nothing waits until Sync or a
// Download (which is synchronous), so a step has no host round trip.
//
// Graphs: with Options.Graphs, the ops between two Syncs are recorded
// instead of run. At Sync the sequence's signature (every op's kind,
// buffers and sizes) is looked up: a sequence seen before is captured once
// into a CUDA graph and then replayed with one cuGraphLaunch per Sync; the
// host data of Uploads (and scalars that change every step, such as the
// optimizer's learning rate) reach the graph through pinned staging slots
// that are refilled before each launch. The engine's step code runs
// unchanged every step; only the launches are replaced. See graph.go.
package cuda

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/tinyrecursive/trm/cuda/probe"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/kernels"
	"gorgonia.org/cu"
)

// The probe must run before cu's init; importing it here documents the
// dependency (Go orders them by import path, see package probe).
var _ = probe.Found

// GemmMode selects how GEMMs compute.
type GemmMode int

// GEMM modes.
const (
	// GemmBF16 rounds the fp32 operands to bf16 inside cuBLAS and
	// accumulates in fp32 (CUBLAS_COMPUTE_32F_FAST_16BF): the reference's
	// training precision, on the tensor cores. The default.
	GemmBF16 GemmMode = iota
	// GemmFP32 is true fp32 (CUBLAS_COMPUTE_32F): golden parity with the
	// CPU backend and the PyTorch reference within float32 tolerances.
	GemmFP32
	// GemmTF32 rounds operands to tf32.
	GemmTF32
)

func (m GemmMode) String() string {
	switch m {
	case GemmBF16:
		return "bf16"
	case GemmFP32:
		return "fp32"
	case GemmTF32:
		return "tf32"
	}
	return fmt.Sprintf("GemmMode(%d)", int(m))
}

func (m GemmMode) compute() int {
	switch m {
	case GemmFP32:
		return computeFP32
	case GemmTF32:
		return computeTF32
	}
	return computeBF16
}

// Options configure a Backend.
type Options struct {
	// Gemm is the GEMM precision (default bf16).
	Gemm GemmMode
	// Graphs records the ops between Syncs and replays repeated sequences
	// as CUDA graphs.
	Graphs bool
	// VerifyGraphs (with Graphs) checks every replay: the sequence runs
	// eagerly and then, from the same snapshot of the backend's device
	// memory, as the graph; Sync fails unless the memory is bitwise equal
	// afterwards. Slow (device memory is copied three times per replay):
	// for finding an op whose graph key misses something. The environment
	// variable TRM_CUDA_GRAPHS=verify turns it on.
	VerifyGraphs bool
	// Fatbin names a kernel file to load instead of the embedded one (for
	// example one built on the GPU machine for sm_90a). The environment
	// variable TRM_CUDA_FATBIN does the same when this is empty.
	Fatbin string
	// ArenaBytes, when positive, reserves the whole device arena up front
	// (one allocation, sized once); otherwise the arena grows in chunks of
	// at least 256 MiB and never shrinks until Close.
	ArenaBytes int64
	// BatchHint is the batch size the buffers are sized for; an
	// out-of-memory error then suggests a batch size that would fit.
	BatchHint int
}

// Backend runs engine ops on one CUDA device. It implements engine.Backend.
type Backend struct {
	dev    *device
	opt    Options
	stream cu.Stream
	raw    unsafe.Pointer // the stream as a CUstream, for our own cgo
	blas   *blasHandle
	arena  *arena

	errDev  cu.DevicePtr   // int32[8]: device-side error word (kernels/common.cuh)
	errHost unsafe.Pointer // pinned int32[8] it is copied into at each Sync
	pin     *pinPool       // transient staging, reset at each Sync (worker only)

	mu  sync.Mutex
	err error // first error since the last Sync

	rec     *recorder       // graph mode: the ops since the last Sync
	scratch map[string]*buf // internal buffers by purpose (attention's D, reduction parts, hyper-parameters)

	stats  Stats
	closed bool
	// captureFailures counts failed graph captures over the backend's
	// life (Stats.GraphRejects is reset by each Stats call).
	captureFailures int64
}

// GraphCaptureFailures is the number of CUDA graph captures that failed
// since the backend was made; each failed sequence then runs eagerly. The
// metrics exporter publishes it as trm_cuda_graph_capture_failures_total.
func (b *Backend) GraphCaptureFailures() int64 { return atomic.LoadInt64(&b.captureFailures) }

var _ engine.Backend = (*Backend)(nil)

// Stats count what a backend did; Take returns and resets them.
type Stats struct {
	Launches       int64 // kernel launches and cuBLAS calls enqueued (eager or captured)
	Syncs          int64 // host waits on the stream
	GraphLaunches  int64 // captured sequences replayed
	GraphCaptures  int64 // sequences captured
	GraphRejects   int64 // captures that failed (the sequence then runs eagerly for good)
	GraphOps       int64 // launches and copies executed inside replayed graphs
	EagerSequences int64 // sequences run op by op
}

// Stats returns the counters accumulated since the last call and resets them.
func (b *Backend) Stats() Stats {
	s := Stats{
		Launches:       atomic.SwapInt64(&b.stats.Launches, 0),
		Syncs:          atomic.SwapInt64(&b.stats.Syncs, 0),
		GraphLaunches:  atomic.SwapInt64(&b.stats.GraphLaunches, 0),
		GraphCaptures:  atomic.SwapInt64(&b.stats.GraphCaptures, 0),
		GraphRejects:   atomic.SwapInt64(&b.stats.GraphRejects, 0),
		GraphOps:       atomic.SwapInt64(&b.stats.GraphOps, 0),
		EagerSequences: atomic.SwapInt64(&b.stats.EagerSequences, 0),
	}
	return s
}

// New returns a backend on device ordinal `device` with default options:
// bf16 GEMMs and graphs on. The environment can override both without a
// rebuild: TRM_CUDA_GEMM=fp32|tf32|bf16 and TRM_CUDA_GRAPHS=0 (or verify,
// see Options.VerifyGraphs).
func New(device int) (*Backend, error) {
	opt := Options{Gemm: GemmBF16, Graphs: os.Getenv("TRM_CUDA_GRAPHS") != "0", VerifyGraphs: os.Getenv("TRM_CUDA_GRAPHS") == "verify"}
	switch os.Getenv("TRM_CUDA_GEMM") {
	case "fp32":
		opt.Gemm = GemmFP32
	case "tf32":
		opt.Gemm = GemmTF32
	case "", "bf16":
	default:
		return nil, fmt.Errorf("TRM_CUDA_GEMM=%q: want fp32, tf32 or bf16", os.Getenv("TRM_CUDA_GEMM"))
	}
	return NewWithOptions(device, opt)
}

// NewWithOptions returns a backend on device ordinal `device`.
func NewWithOptions(device int, opt Options) (*Backend, error) {
	d, err := openDevice(device, opt.Fatbin)
	if err != nil {
		return nil, err
	}
	b := &Backend{dev: d, opt: opt}
	err = d.do(func() error {
		s, err := cu.MakeStream(cu.NonBlocking)
		if err != nil {
			return fmt.Errorf("cuStreamCreate: %w", err)
		}
		b.stream = s
		b.raw = unsafe.Pointer(s.C())
		if b.blas, err = d.blas.newHandle(b.raw); err != nil {
			b.stream.Destroy()
			return err
		}
		if b.errHost, err = pinned(32); err != nil {
			b.blas.destroy()
			b.stream.Destroy()
			return err
		}
		b.pin = &pinPool{}
		return nil
	})
	if err != nil {
		// What was made before the failure was destroyed above: the
		// stream and the cuBLAS handle do not outlive a failed New.
		d.release()
		return nil, fmt.Errorf("cuda device %d: %w", device, err)
	}
	b.arena = &arena{b: b, separate: Emulated()}
	if opt.ArenaBytes > 0 && !b.arena.separate {
		if err := b.arena.reserve(opt.ArenaBytes); err != nil {
			b.Close()
			return nil, err
		}
	}
	eb := b.Alloc(engine.I32, 8).(*buf)
	b.errDev = eb.ptr
	// cuBLAS gets a fixed workspace so that it never allocates while a
	// stream is being captured; without the call (cuBLAS < 11.2) graphs
	// stay off.
	ws := b.Alloc(engine.F32, blasWorkspace/4).(*buf)
	// A failed Alloc (out of device memory) surfaces at Sync, before its
	// null pointer reaches cuBLAS and turns into a less telling error.
	if err = b.Sync(); err == nil {
		err = d.do(func() error {
			ok, err := b.blas.setWorkspace(uintptr(ws.ptr), blasWorkspace)
			if err == nil && !ok && b.opt.Graphs {
				b.opt.Graphs = false
				fmt.Fprintf(os.Stderr, "trm: cuda device %d: cuBLAS %s lacks cublasSetWorkspace_v2 (cuBLAS < 11.2), so it could allocate while a graph is captured: CUDA graphs are off (every step runs op by op)\n",
					device, b.dev.blas.Path)
			}
			return err
		})
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("cuda device %d: %w", device, err)
	}
	if b.opt.Graphs {
		b.rec = newRecorder()
	}
	return b, nil
}

// blasWorkspace is cuBLAS's workspace: 32 MiB, what NVIDIA recommends for
// Hopper.
const blasWorkspace = 32 << 20

// Name implements engine.Backend.
func (b *Backend) Name() string {
	g := "eager"
	if b.rec != nil {
		g = "graphs"
	}
	return fmt.Sprintf("cuda:%d(%s sm_%d%d, %s gemm, %s)", b.dev.ord, b.dev.name, b.dev.major, b.dev.minor, b.opt.Gemm, g)
}

// Device describes the device and libraries in use, for logs and the GPU
// check's header.
func (b *Backend) Device() string {
	return fmt.Sprintf("%s, sm_%d%d, %d SMs, driver API %d, cuBLAS %d (%s), kernels from %s",
		b.dev.name, b.dev.major, b.dev.minor, b.dev.sms, cu.Version(), b.blas.version(), b.dev.blas.Path, b.dev.fatbinFrom)
}

// SetBatchHint records the batch size buffers are being sized for, so an
// out-of-memory error can suggest one that fits.
func (b *Backend) SetBatchHint(n int) { b.opt.BatchHint = n }

// memsetArgs is the zeroing of a new buffer: its graph key (postArgs).
type memsetArgs struct {
	Ptr   cu.DevicePtr
	Bytes int64
}

// Close waits for queued work and frees everything the backend holds.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	// Ops recorded since the last Sync still run (in graph mode they are
	// held back until Sync): their errors are Close's.
	var errs []error
	if b.rec != nil && len(b.rec.ops) > 0 {
		b.flushRecorded()
	}
	b.mu.Lock()
	errs = append(errs, b.err)
	b.err = nil
	b.mu.Unlock()
	b.closed = true
	err := b.dev.do(func() error {
		if b.stream != (cu.Stream{}) {
			errs = append(errs, b.stream.Synchronize())
		}
		if b.rec != nil {
			b.rec.destroy()
		}
		if b.blas != nil {
			b.blas.destroy()
		}
		if b.arena != nil {
			errs = append(errs, b.arena.free())
		}
		if b.pin != nil {
			b.pin.free()
		}
		if b.errHost != nil {
			freePinned(b.errHost)
		}
		if b.stream != (cu.Stream{}) {
			errs = append(errs, b.stream.Destroy())
		}
		return errors.Join(errs...)
	})
	b.dev.release()
	return err
}

// errClosed is what every op of a closed backend fails with: the device
// may still serve other backends, but this one's stream is gone.
var errClosed = errors.New("cuda backend: used after Close")

// fail records the first error.
func (b *Backend) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

// failf records a validation error of op, naming the caller's call site.
func (b *Backend) failf(op string, format string, args ...any) {
	b.fail(fmt.Errorf("cuda backend: %s: %s (called from %s)", op, fmt.Sprintf(format, args...), callSite()))
}

// callSite names the first frame outside this package: the engine code
// that called the op.
func callSite() string {
	var pcs [8]uintptr
	n := runtime.Callers(2, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if !strings.Contains(f.Function, "trm/cuda.") {
			return fmt.Sprintf("%s:%d", f.File, f.Line)
		}
		if !more {
			return "?"
		}
	}
}

// buf is a device buffer or a view into one.
type buf struct {
	dt  engine.DType
	ptr cu.DevicePtr
	n   int
}

func (x *buf) Len() int            { return x.n }
func (x *buf) DType() engine.DType { return x.dt }

func sizeOf(dt engine.DType) int {
	if dt == engine.F64 {
		return 8
	}
	return 4
}

func (x *buf) bytes() int64 { return int64(x.n) * int64(sizeOf(x.dt)) }

// Alloc implements engine.Backend: a zeroed buffer from the arena.
func (b *Backend) Alloc(dt engine.DType, n int) engine.Buf {
	x := &buf{dt: dt, n: n}
	if dt != engine.F32 && dt != engine.F64 && dt != engine.I32 {
		b.failf("Alloc", "unknown dtype %v", dt)
		x.n = 0
		return x
	}
	if n < 0 {
		b.failf("Alloc", "negative length %d", n)
		x.n = 0
		return x
	}
	if n == 0 {
		return x
	}
	what := fmt.Sprintf("Alloc(%v, %d)", dt, n)
	if b.arena.separate {
		what += " from " + callSite()
	}
	p, err := b.arena.alloc(x.bytes(), what)
	if err != nil {
		b.fail(err)
		x.n = 0
		return x
	}
	x.ptr = p
	nb := x.bytes()
	postArgs(b, "memset", memsetArgs{p, nb}, func(x *execCtx, a memsetArgs) error {
		return wrapCU("Alloc: cuMemsetD8Async", cu.MemsetD8Async(a.Ptr, 0, a.Bytes, b.stream))
	})
	return x
}

// Slice implements engine.Backend.
func (b *Backend) Slice(x engine.Buf, off, n int) engine.Buf {
	s := x.(*buf)
	if off < 0 || n < 0 || off+n > s.n {
		b.failf("Slice", "[%d, %d) out of a buffer of %d", off, off+n, s.n)
		return &buf{dt: s.dt}
	}
	return &buf{dt: s.dt, ptr: s.ptr + cu.DevicePtr(off*sizeOf(s.dt)), n: n}
}

// hostBytes views a host slice of a supported type as bytes.
func hostBytes(v any) (dt engine.DType, p []byte, ok bool) {
	switch s := v.(type) {
	case []float32:
		return engine.F32, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 4*len(s)), true
	case []float64:
		return engine.F64, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 8*len(s)), true
	case []int32:
		return engine.I32, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 4*len(s)), true
	}
	return 0, nil, false
}

// Upload implements engine.Backend. The host data is copied at once (the
// caller may reuse its slice), then staged through pinned memory.
func (b *Backend) Upload(dst engine.Buf, src any) {
	d := dst.(*buf)
	dt, p, ok := hostBytes(src)
	if !ok {
		b.failf("Upload", "unsupported host type %T", src)
		return
	}
	if dt != d.dt || int64(len(p)) != d.bytes() {
		b.failf("Upload", "%T of %d elements into %v buffer of %d", src, len(p)/sizeOf(dt), d.dt, d.n)
		return
	}
	if d.n == 0 {
		return
	}
	payload := append([]byte(nil), p...)
	b.postUpload(d.ptr, payload)
}

// Download implements engine.Backend. It is synchronous: the queued work
// is run first (in graph mode, the recorded sequence is flushed), then the
// copy completes before Download returns, so dst is valid at once, as with
// the CPU backend (callers such as `return v[0] > 0, be.Sync()` read dst
// before Sync runs). Errors are still returned by the next Sync. The engine
// never downloads inside a step, so this adds no host round trip there.
func (b *Backend) Download(dst any, src engine.Buf) {
	s := src.(*buf)
	dt, p, ok := hostBytes(dst)
	if !ok {
		b.failf("Download", "unsupported host type %T", dst)
		return
	}
	if dt != s.dt || int64(len(p)) != s.bytes() {
		b.failf("Download", "%v buffer of %d elements into %T of %d", s.dt, s.n, dst, len(p)/sizeOf(dt))
		return
	}
	if s.n == 0 {
		return
	}
	if s.ptr == 0 {
		b.failf("Download", "the buffer was never allocated (an earlier Alloc failed)")
		return
	}
	if b.closed {
		b.fail(errClosed)
		return
	}
	if b.rec != nil && len(b.rec.ops) > 0 {
		b.flushRecorded()
	}
	n := len(p)
	err := b.dev.do(func() error {
		stage, err := b.pin.alloc(n)
		if err != nil {
			return err
		}
		countLaunch(b)
		if err := cu.MemcpyDtoHAsync(stage, s.ptr, int64(n), b.stream); err != nil {
			return fmt.Errorf("cuMemcpyDtoHAsync: %w", err)
		}
		atomic.AddInt64(&b.stats.Syncs, 1)
		if err := b.stream.Synchronize(); err != nil {
			return fmt.Errorf("stream synchronize: %w (an op faulted; CUDA errors are sticky: recreate the backend)%s", err, b.faultDetail())
		}
		copy(p, unsafe.Slice((*byte)(stage), n))
		// The stream is idle: every transient staging slot is free again.
		b.pin.reset()
		return nil
	})
	if err != nil {
		b.fail(fmt.Errorf("cuda backend: Download(%d bytes) (called from %s): %w", n, callSite(), err))
	}
}

// Sync implements engine.Backend: it runs (or replays) the queued ops,
// waits for the stream, reads the device error word, and returns the first
// error since the last Sync.
func (b *Backend) Sync() error {
	if b.closed {
		return errClosed
	}
	if b.rec != nil {
		b.flushRecorded()
	} else {
		b.dev.do(func() error {
			b.finish()
			return nil
		})
	}
	b.mu.Lock()
	err := b.err
	b.err = nil
	b.mu.Unlock()
	return err
}

// finish runs on the worker after a sequence was enqueued: it queues the
// read-back and clearing of the device error word (kernels report bad ids
// through it), waits for the stream once, resets the transient staging
// and decodes the error word.
func (b *Backend) finish() {
	e1 := cu.MemcpyDtoHAsync(b.errHost, b.errDev, 32, b.stream)
	e2 := cu.MemsetD8Async(b.errDev, 0, 32, b.stream)
	atomic.AddInt64(&b.stats.Syncs, 1)
	if err := b.stream.Synchronize(); err != nil {
		b.fail(fmt.Errorf("cuda backend: stream synchronize: %w (an op faulted; CUDA errors are sticky: recreate the backend)%s", err, b.faultDetail()))
		b.pin.reset()
		return
	}
	b.pin.reset()
	if err := errors.Join(e1, e2); err != nil {
		b.fail(fmt.Errorf("cuda backend: reading the device error word: %w", err))
		return
	}
	w := unsafe.Slice((*int32)(b.errHost), 8)
	if w[0] != 0 {
		b.fail(decodeDeviceError(w))
		w[0] = 0
	}
}

// decodeDeviceError turns the error word into the CPU backend's messages.
func decodeDeviceError(w []int32) error {
	switch w[0] {
	case 1:
		return fmt.Errorf("cuda backend: Embed: row %d position %d: token %d outside [0, %d)", w[1], w[2], w[3], w[4])
	case 2:
		return fmt.Errorf("cuda backend: Embed: row %d: puzzle identifier %d outside [0, %d)", w[1], w[3], w[4])
	case 3:
		return fmt.Errorf("cuda backend: LossHead: row %d position %d: label %d outside [0, %d)", w[1], w[2], w[3], w[4])
	case 4:
		return fmt.Errorf("cuda backend: SignSGDRows: row %d: id %d outside the table's %d rows", w[1], w[3], w[4])
	}
	return fmt.Errorf("cuda backend: device error code %d (%d, %d, %d, %d)", w[0], w[1], w[2], w[3], w[4])
}

// faultDetail is what the CPU stand-in knows of a fault (the kernel, the
// thread, the buffer), as ": detail", or "" on a GPU.
func (b *Backend) faultDetail() string {
	if d := standinError(b.dev.ord); d != "" {
		return ": " + d
	}
	return ""
}

func wrapCU(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// f64arg and i64arg encode kernel scalars: every kernel parameter is 8
// bytes (cu's Launch copies 8 bytes per argument; kernels/common.cuh).
func f64arg(v float64) uint64 { return math.Float64bits(v) }
func i64arg(v int) uint64     { return uint64(int64(v)) }

func envFatbin(opt string) string {
	if opt != "" {
		return opt
	}
	return os.Getenv("TRM_CUDA_FATBIN")
}

// embeddedFatbin is the kernels package's go:embed image.
func embeddedFatbin() []byte { return kernels.Fatbin }
