//go:build cuda

package cuda

import (
	"fmt"
	"os"
	"runtime"
	"sync"

	"gorgonia.org/cu"
)

// device is one GPU shared by every Backend on it: the primary context
// (the one the CUDA runtime, hence cuBLAS, also uses), the kernel module,
// and the worker goroutine locked to an OS thread with that context
// current. Backends on the device each have their own stream.
type device struct {
	ord                  int
	name                 string
	major, minor, sms    int
	ctx                  cu.CUContext
	mod                  cu.Module
	fns                  map[string]cu.Function
	blas                 *blasLib
	fatbinFrom           string
	work                 chan func()
	stopped              chan struct{} // closed when the worker has unloaded the kernels and released the context
	refs                 int
	dev                  cu.Device
	totalMem, freeAtOpen int64
}

var (
	devMu   sync.Mutex
	devices = map[int]*device{}
	blasMu  sync.Mutex
	blasOne *blasLib
)

// kernelNames are every kernel the backend launches; all are looked up at
// load time so a stale fatbin fails at New, not in the middle of a step.
var kernelNames = []string{
	"trm_copy2d", "trm_transpose", "trm_add", "trm_axpby", "trm_fill_f32", "trm_fill_f64", "trm_fill_i32", "trm_ema",
	"trm_add_rmsnorm", "trm_rmsnorm_backward", "trm_swiglu", "trm_swiglu_backward", "trm_rope",
	"trm_attn_rowdot",
	"trm_attn_fwd_d16", "trm_attn_fwd_d32", "trm_attn_fwd_d64", "trm_attn_fwd_d128", "trm_attn_fwd_d256",
	"trm_attn_bwd_dkv_d16", "trm_attn_bwd_dkv_d32", "trm_attn_bwd_dkv_d64", "trm_attn_bwd_dkv_d128", "trm_attn_bwd_dkv_d256",
	"trm_attn_bwd_dq_d16", "trm_attn_bwd_dq_d32", "trm_attn_bwd_dq_d64", "trm_attn_bwd_dq_d128", "trm_attn_bwd_dq_d256",
	"trm_embed", "trm_embed_onehot", "trm_embed_pos_backward", "trm_embed_local_backward",
	"trm_act_reset", "trm_act_halt", "trm_loss_head",
	"trm_adam_atan2", "trm_signsgd_rows", "trm_sumsq_partial", "trm_sumsq_final",
}

// openDevice returns the shared device for ordinal ord, starting its
// worker and loading the kernels on first use.
func openDevice(ord int, fatbin string) (*device, error) {
	devMu.Lock()
	defer devMu.Unlock()
	if d := devices[ord]; d != nil {
		if f := envFatbin(fatbin); f != "" && f != d.fatbinFrom {
			return nil, fmt.Errorf("cuda device %d already loaded kernels from %s; cannot also load %s", ord, d.fatbinFrom, f)
		}
		d.refs++
		return d, nil
	}
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices: %w", err)
	}
	if ord < 0 || ord >= n {
		return nil, fmt.Errorf("cuda: device %d does not exist (%d visible; CUDA_VISIBLE_DEVICES=%q)", ord, n, os.Getenv("CUDA_VISIBLE_DEVICES"))
	}
	lib, err := sharedBlas()
	if err != nil {
		return nil, err
	}
	if err := checkLibraries(lib); err != nil {
		return nil, err
	}
	d := &device{ord: ord, fns: map[string]cu.Function{}, blas: lib, work: make(chan func(), 1024), stopped: make(chan struct{}), refs: 1}
	started := make(chan error)
	go d.loop(fatbin, started)
	if err := <-started; err != nil {
		close(d.work)
		return nil, fmt.Errorf("cuda device %d: %w", ord, err)
	}
	devices[ord] = d
	return d, nil
}

func sharedBlas() (*blasLib, error) {
	blasMu.Lock()
	defer blasMu.Unlock()
	if blasOne != nil {
		return blasOne, nil
	}
	l, err := openBlas()
	if err != nil {
		return nil, err
	}
	blasOne = l
	return l, nil
}

// loop is the device's worker: locked to one OS thread for its lifetime,
// so the context made current here stays current for every call.
func (d *device) loop(fatbin string, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(d.stopped)
	if err := d.init(fatbin); err != nil {
		if d.ctx != (cu.CUContext{}) {
			d.dev.ReleasePrimaryCtx()
		}
		started <- err
		return
	}
	started <- nil
	for f := range d.work {
		f()
	}
	// Closed: every Backend released the device.
	d.mod.Unload()
	d.dev.ReleasePrimaryCtx()
}

func (d *device) init(fatbin string) error {
	dev, err := cu.GetDevice(d.ord)
	if err != nil {
		return fmt.Errorf("cuDeviceGet: %w", err)
	}
	d.dev = dev
	if d.name, err = dev.Name(); err != nil {
		return fmt.Errorf("cuDeviceGetName: %w", err)
	}
	if d.major, d.minor, d.sms, err = deviceArch(d.ord); err != nil {
		return fmt.Errorf("reading compute capability: %w", err)
	}
	if d.ctx, err = dev.RetainPrimaryCtx(); err != nil {
		return fmt.Errorf("cuDevicePrimaryCtxRetain: %w", err)
	}
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		return fmt.Errorf("cuCtxSetCurrent: %w", err)
	}
	d.freeAtOpen, d.totalMem, _ = cu.MemInfo()
	image := embeddedFatbin()
	d.fatbinFrom = "the embedded kernels/trm.fatbin (sm_80, sm_90, compute_90 PTX)"
	if f := envFatbin(fatbin); f != "" {
		if image, err = os.ReadFile(f); err != nil {
			return fmt.Errorf("reading the kernel fatbin: %w", err)
		}
		d.fatbinFrom = f
	}
	if len(image) == 0 {
		return fmt.Errorf("the kernel image is empty: run `make kernels` before `go build -tags cuda`")
	}
	if d.mod, err = cu.LoadData(string(image)); err != nil {
		return fmt.Errorf("loading kernels from %s on %s (sm_%d%d): %w (a fatbin needs a cubin for this GPU or PTX no newer than it)",
			d.fatbinFrom, d.name, d.major, d.minor, err)
	}
	for _, name := range kernelNames {
		fn, err := d.mod.Function(name)
		if err != nil {
			return fmt.Errorf("kernel %s missing from %s: %w (rebuild with `make kernels`)", name, d.fatbinFrom, err)
		}
		d.fns[name] = fn
	}
	return nil
}

// do runs f on the worker and waits for it.
func (d *device) do(f func() error) error {
	done := make(chan error, 1)
	d.work <- func() { done <- f() }
	return <-done
}

// post queues f on the worker without waiting.
func (d *device) post(f func()) { d.work <- f }

// release drops one Backend's reference; the last one stops the worker,
// which unloads the module and releases the primary context, and waits
// for that, so that a backend opened next on the device starts from a
// fresh context and nothing of this one is still being torn down.
func (d *device) release() {
	devMu.Lock()
	defer devMu.Unlock()
	d.refs--
	if d.refs == 0 {
		delete(devices, d.ord)
		close(d.work)
		<-d.stopped
	}
}
