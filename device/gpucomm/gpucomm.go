//go:build cuda

// Package gpucomm implements the collective interface of device/comm with
// NCCL (device/nccl) over the CUDA backend's buffers: each collective is
// enqueued on the backend's own stream from its device worker thread, in
// order with the engine's kernels, so a gradient all-reduce needs no host
// round trip of its own (the trainer's next Download or Sync waits for it).
//
// A peer that dies leaves NCCL's kernels waiting forever; the watchdog
// goroutine started by New polls NCCL's asynchronous error and aborts the
// communicator, and Abort (called by the trainer when a replica fails, or
// by the rendezvous watchdog when a remote rank is lost) does the same, so
// the waiting stream synchronisation returns with an error.
package gpucomm

import (
	"fmt"
	"sync"
	"time"

	"github.com/tinyrecursive/trm/cuda"
	"github.com/tinyrecursive/trm/device/comm"
	"github.com/tinyrecursive/trm/device/nccl"
	"github.com/tinyrecursive/trm/engine"
)

// Comm is one rank of an NCCL communicator bound to one CUDA backend.
type Comm struct {
	lib *nccl.Lib
	nc  *nccl.Comm
	be  *cuda.Backend

	mu   sync.Mutex // serialises AsyncError polls with Abort/Close (NCCL frees the handle)
	err  error      // set by Abort: every later collective fails with it
	done chan struct{}
}

var _ comm.Comm = (*Comm)(nil)

// New joins the communicator id as rank of size on be's device. Every
// rank must call New concurrently (ncclCommInitRank blocks until all have
// joined); in one process, give each rank its own goroutine and backend.
// poll is how often the watchdog checks NCCL's asynchronous error (0: 1 s).
func New(lib *nccl.Lib, id nccl.UniqueID, rank, size int, be *cuda.Backend, poll time.Duration) (*Comm, error) {
	// The CPU stand-in's NCCL works only on the stand-in's devices, and
	// NVIDIA's only on real ones.
	if lib.Emulated != be.Emulated() {
		what := map[bool]string{true: "the CPU stand-in's (cuda/standin)", false: "NVIDIA's"}
		return nil, fmt.Errorf("NCCL %s is %s but the CUDA driver is %s: use both stand-ins or neither", lib.Path, what[lib.Emulated], what[be.Emulated()])
	}
	var nc *nccl.Comm
	err := be.OnStream(func(uintptr) error {
		var err error
		nc, err = lib.InitRank(id, size, rank)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("NCCL on cuda:%d: %w", be.Ordinal(), err)
	}
	c := &Comm{lib: lib, nc: nc, be: be, done: make(chan struct{})}
	if poll <= 0 {
		poll = time.Second
	}
	go c.watch(poll)
	return c, nil
}

// watch aborts the communicator when NCCL reports an asynchronous error
// (a remote rank gone, a network failure).
func (c *Comm) watch(poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return
		}
		err := c.nc.AsyncError()
		c.mu.Unlock()
		if err != nil {
			c.Abort(fmt.Errorf("NCCL watchdog on rank %d: %w", c.nc.Rank(), err))
			return
		}
	}
}

// Rank implements comm.Comm.
func (c *Comm) Rank() int { return c.nc.Rank() }

// Size implements comm.Comm.
func (c *Comm) Size() int { return c.nc.Size() }

// Abort implements comm.Comm: NCCL's pending operations are aborted and
// every later collective fails with an error wrapping comm.ErrAborted.
func (c *Comm) Abort(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = fmt.Errorf("%w on rank %d: %v", comm.ErrAborted, c.nc.Rank(), err)
	close(c.done)
	// The error of the abort itself adds nothing: the communicator is gone
	// either way, and the cause is already recorded.
	_ = c.nc.Abort()
}

// Close destroys the communicator after its pending work (ncclCommDestroy).
func (c *Comm) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil
	}
	c.err = fmt.Errorf("%w: rank %d closed its communicator", comm.ErrAborted, c.nc.Rank())
	close(c.done)
	return c.be.OnStream(func(uintptr) error { return c.nc.Destroy() })
}

func (c *Comm) aborted() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ncclType maps an engine dtype to NCCL's.
func ncclType(dt engine.DType) (nccl.DataType, error) {
	switch dt {
	case engine.F32:
		return nccl.Float32, nil
	case engine.F64:
		return nccl.Float64, nil
	case engine.I32:
		return nccl.Int32, nil
	}
	return 0, fmt.Errorf("no NCCL type for %v", dt)
}

// prepare checks that be is this communicator's backend and returns the
// buffers' device pointers and NCCL type.
func (c *Comm) prepare(op string, be engine.Backend, bufs ...engine.Buf) ([]uintptr, nccl.DataType, error) {
	if err := c.aborted(); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, err)
	}
	if be != engine.Backend(c.be) {
		return nil, 0, fmt.Errorf("%s: called with backend %s, but the communicator is bound to %s", op, be.Name(), c.be.Name())
	}
	dt, err := ncclType(bufs[0].DType())
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, err)
	}
	ptrs := make([]uintptr, len(bufs))
	for i, b := range bufs {
		if ptrs[i], err = c.be.DevicePointer(b); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", op, err)
		}
	}
	return ptrs, dt, nil
}

// enqueue runs an NCCL call on the backend's stream; a failure aborts the
// group so the other ranks do not wait for this one.
func (c *Comm) enqueue(op string, f func(stream uintptr) error) error {
	if err := c.be.OnStream(f); err != nil {
		err = fmt.Errorf("%s on rank %d: %w", op, c.Rank(), err)
		c.Abort(err)
		return err
	}
	return nil
}

// AllReduceSum implements comm.Comm (in place on the device).
func (c *Comm) AllReduceSum(be engine.Backend, buf engine.Buf) error {
	p, dt, err := c.prepare("AllReduceSum", be, buf)
	if err != nil || buf.Len() == 0 {
		return err
	}
	return c.enqueue("AllReduceSum", func(s uintptr) error { return c.nc.AllReduceSum(p[0], p[0], buf.Len(), dt, s) })
}

// AllGather implements comm.Comm.
func (c *Comm) AllGather(be engine.Backend, send, recv engine.Buf) error {
	if recv.Len() != send.Len()*c.Size() || recv.DType() != send.DType() {
		err := fmt.Errorf("AllGather: recv has %d %v elements, want %d x %d %v", recv.Len(), recv.DType(), c.Size(), send.Len(), send.DType())
		c.Abort(err)
		return err
	}
	p, dt, err := c.prepare("AllGather", be, send, recv)
	if err != nil || send.Len() == 0 {
		return err
	}
	return c.enqueue("AllGather", func(s uintptr) error { return c.nc.AllGather(p[0], p[1], send.Len(), dt, s) })
}

// Broadcast implements comm.Comm (in place: root's buf to everyone's).
func (c *Comm) Broadcast(be engine.Backend, buf engine.Buf, root int) error {
	if root < 0 || root >= c.Size() {
		return fmt.Errorf("Broadcast: root %d outside 0..%d", root, c.Size()-1)
	}
	p, dt, err := c.prepare("Broadcast", be, buf)
	if err != nil || buf.Len() == 0 {
		return err
	}
	return c.enqueue("Broadcast", func(s uintptr) error { return c.nc.Broadcast(p[0], p[0], buf.Len(), dt, root, s) })
}
