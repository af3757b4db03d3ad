//go:build cuda

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/tinyrecursive/trm/cuda"
	"github.com/tinyrecursive/trm/device"
	"github.com/tinyrecursive/trm/device/comm"
	"github.com/tinyrecursive/trm/device/gpucomm"
	"github.com/tinyrecursive/trm/device/nccl"
	"github.com/tinyrecursive/trm/device/rendezvous"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/trainer"
	"gorgonia.org/cu"
)

func init() {
	// A single device: the plain backend (unless another cuda file of this
	// command already set the hook).
	if cudaBackend == nil {
		cudaBackend = func(d int) (engine.Backend, error) { return cuda.New(d) }
	}
	openParallel = planParallel
	runParallel = runPlan
}

// plan is what planParallel decided and runPlan carries out.
type plan struct {
	devices  []int           // in-process replicas, one per device (rank = position)
	backends []*cuda.Backend // opened, backends[0] given to the caller
	env      *rendezvous.Env // set: this process is one rank of a multi-process job
}

var active *plan

// planParallel opens the backend(s) for a multi-GPU --device, or for this
// process's GPU in a multi-process job.
func planParallel(spec string) (engine.Backend, error) {
	// The job's layout and its secret first: a rank that could not join
	// fails before it initialises CUDA or takes a GPU's memory.
	env, multi, err := rendezvous.FromEnv()
	if err != nil {
		return nil, err
	}
	if multi {
		if err := env.CheckAuth(); err != nil {
			return nil, err
		}
	}
	visible, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("--device %s: counting CUDA devices: %w", spec, err)
	}
	devs, err := device.ParseCUDASpec(spec, visible)
	if err != nil {
		return nil, err
	}
	if multi {
		// One process per GPU: LOCAL_RANK picks among the devices named
		// (all visible for "cuda"); a launcher that gives each process
		// just its own GPU (CUDA_VISIBLE_DEVICES per task) leaves one.
		d := devs[0]
		if len(devs) > 1 {
			if env.LocalRank >= len(devs) {
				return nil, fmt.Errorf("--device %s: LOCAL_RANK %d but only %d device(s) named or visible", spec, env.LocalRank, len(devs))
			}
			d = devs[env.LocalRank]
		}
		be, err := cuda.New(d)
		if err != nil {
			return nil, err
		}
		active = &plan{devices: []int{d}, backends: []*cuda.Backend{be}, env: &env}
		return be, nil
	}
	if len(devs) == 1 {
		return cuda.New(devs[0])
	}
	p := &plan{devices: devs, backends: make([]*cuda.Backend, len(devs))}
	for i, d := range devs {
		if p.backends[i], err = cuda.New(d); err != nil {
			for _, b := range p.backends[:i] {
				b.Close()
			}
			return nil, err
		}
	}
	active = p
	return p.backends[0], nil
}

// runPlan runs the active plan; ran is false when there is none.
func runPlan(ctx context.Context, cfg trainer.Config, opt trainer.RunOptions) (*trainer.Summary, bool, error) {
	p := active
	if p == nil {
		return nil, false, nil
	}
	lib, err := nccl.Open()
	if err != nil {
		return nil, true, fmt.Errorf("data parallelism over several GPUs needs NCCL: %w", err)
	}
	if p.env != nil {
		sum, err := runRank(ctx, cfg, opt, p, lib)
		return sum, true, err
	}
	sum, err := runLocal(ctx, cfg, opt, p, lib)
	return sum, true, err
}

// runLocal runs one replica per device in this process, each in its own
// goroutine locked to an OS thread (the backend's device worker has its
// own locked thread too), all joined in one NCCL communicator.
func runLocal(ctx context.Context, cfg trainer.Config, opt trainer.RunOptions, p *plan, lib *nccl.Lib) (*trainer.Summary, error) {
	n := len(p.backends)
	id, err := lib.UniqueID()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "data parallel: %d replicas on cuda:%v, NCCL %s (%s)\n", n, p.devices, lib.VersionString(), lib.Path)
	comms := make([]*gpucomm.Comm, n)
	sums := make([]*trainer.Summary, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			c, err := gpucomm.New(lib, id, r, n, p.backends[r], 0)
			if err != nil {
				errs[r] = err
				return
			}
			comms[r] = c
			ro := trainer.RunOptions{Backend: p.backends[r], Comm: c, Resume: opt.Resume, Init: opt.Init}
			if r == 0 {
				ro.Hooks = opt.Hooks // rank 0 logs, serves metrics, checkpoints
			}
			sums[r], errs[r] = trainer.Run(ctx, cfg, ro)
		}()
	}
	wg.Wait()
	for r, c := range comms {
		if c != nil {
			c.Close()
		}
		p.backends[r].Close()
	}
	return sums[0], joinRankErrors(errs)
}

// runRank is one process of a multi-process job: rendezvous for the NCCL
// id, one replica on this process's GPU; only rank 0 keeps the hooks
// (logs, metrics) and writes checkpoints.
func runRank(ctx context.Context, cfg trainer.Config, opt trainer.RunOptions, p *plan, lib *nccl.Lib) (*trainer.Summary, error) {
	env := *p.env
	be := p.backends[0]
	defer be.Close()
	var id nccl.UniqueID
	var payload []byte
	if env.Rank == 0 {
		var err error
		if id, err = lib.UniqueID(); err != nil {
			return nil, err
		}
		payload = id[:]
	}
	timeout := 5 * time.Minute
	if v := os.Getenv("TRM_RENDEZVOUS_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("TRM_RENDEZVOUS_TIMEOUT=%q: %w", v, err)
		}
		timeout = d
	}
	fmt.Fprintf(os.Stderr, "data parallel: %s on cuda:%d, NCCL %s (%s)\n", env, p.devices[0], lib.VersionString(), lib.Path)
	sess, got, err := rendezvous.Exchange(ctx, rendezvous.Options{Env: env, Timeout: timeout, Log: os.Stderr}, payload)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	if len(got) != len(id) {
		return nil, fmt.Errorf("rendezvous: got an id of %d bytes, want %d", len(got), len(id))
	}
	copy(id[:], got)
	c, err := gpucomm.New(lib, id, env.Rank, env.WorldSize, be, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// A rank lost anywhere aborts our communicator, so a collective
	// waiting for it returns with the rendezvous's explanation.
	sess.OnFailure(func(err error) { c.Abort(err) })
	ro := trainer.RunOptions{Backend: be, Comm: c, Resume: opt.Resume, Init: opt.Init}
	if env.Rank == 0 {
		ro.Hooks = opt.Hooks
	}
	sum, err := trainer.Run(ctx, cfg, ro)
	if err != nil {
		if serr := sess.Err(); serr != nil && !errors.Is(err, serr) {
			err = fmt.Errorf("%w (watchdog: %v)", err, serr)
		}
	}
	return sum, err
}

// joinRankErrors reports every failed replica, the first cause first:
// after one fails, the others fail with "aborted" errors naming it.
func joinRankErrors(errs []error) error {
	var first, rest []error
	for r, err := range errs {
		if err == nil {
			continue
		}
		e := fmt.Errorf("replica %d: %w", r, err)
		if errors.Is(err, comm.ErrAborted) {
			rest = append(rest, e)
		} else {
			first = append(first, e)
		}
	}
	return errors.Join(append(first, rest...)...)
}
