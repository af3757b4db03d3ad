// Package comm defines the collectives data-parallel training needs and a
// host implementation for replicas in one process (CPU replicas, tests).
// The NCCL implementation for GPUs satisfies the same interface.
package comm

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tinyrecursive/trm/engine"
)

// Comm is one replica's handle on a group of Size replicas. Every replica
// must call the same collectives in the same order with buffers of the
// same length and type. Results are identical on every replica.
type Comm interface {
	Rank() int
	Size() int
	// AllReduceSum replaces buf on every replica by the elementwise sum
	// over replicas (F32, F64 or I32 buffers).
	AllReduceSum(be engine.Backend, buf engine.Buf) error
	// AllGather writes the concatenation of every replica's send, in rank
	// order, into recv (Size times as long).
	AllGather(be engine.Backend, send, recv engine.Buf) error
	// Broadcast copies root's buf into every replica's buf.
	Broadcast(be engine.Backend, buf engine.Buf, root int) error
	// Abort makes every pending and future collective of the group fail
	// with err: a replica that fails must not leave the others waiting.
	Abort(err error)
}

// ErrAborted is wrapped by the errors of collectives after an Abort.
var ErrAborted = errors.New("collective aborted")

// hostGroup is the shared state of in-process replicas: one slot per rank
// and a generation-counting barrier.
type hostGroup struct {
	n       int
	mu      sync.Mutex
	cond    *sync.Cond
	arrived int
	gen     uint64
	err     error
	slots   []any
	timeout time.Duration
}

// Host is one replica of an in-process group.
type Host struct {
	g    *hostGroup
	rank int
}

var _ Comm = (*Host)(nil)

// NewHostGroup returns the communicators of n in-process replicas. A
// collective that waits longer than timeout for the others fails (0: no
// limit), naming the ranks that did not arrive.
func NewHostGroup(n int, timeout time.Duration) []*Host {
	g := &hostGroup{n: n, slots: make([]any, n), timeout: timeout}
	g.cond = sync.NewCond(&g.mu)
	out := make([]*Host, n)
	for r := range out {
		out[r] = &Host{g: g, rank: r}
	}
	return out
}

// Rank implements Comm.
func (h *Host) Rank() int { return h.rank }

// Size implements Comm.
func (h *Host) Size() int { return h.g.n }

// Abort implements Comm.
func (h *Host) Abort(err error) {
	g := h.g
	g.mu.Lock()
	if g.err == nil {
		g.err = fmt.Errorf("%w by rank %d: %v", ErrAborted, h.rank, err)
	}
	g.mu.Unlock()
	g.cond.Broadcast()
}

// barrier waits until every rank has arrived (or the group is aborted or
// the timeout passes).
func (h *Host) barrier(op string) error {
	g := h.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return g.err
	}
	gen := g.gen
	g.arrived++
	if g.arrived == g.n {
		g.arrived = 0
		g.gen++
		g.cond.Broadcast()
		return nil
	}
	var timer *time.Timer
	if g.timeout > 0 {
		timer = time.AfterFunc(g.timeout, func() { g.cond.Broadcast() })
		defer timer.Stop()
	}
	start := time.Now()
	for g.gen == gen && g.err == nil {
		if g.timeout > 0 && time.Since(start) >= g.timeout {
			var missing []int
			for r, s := range g.slots {
				if s == nil {
					missing = append(missing, r)
				}
			}
			g.err = fmt.Errorf("%s: rank %d waited %s; %d of %d ranks arrived (missing ranks: %v)", op, h.rank, g.timeout, g.arrived, g.n, missing)
			g.cond.Broadcast()
			break
		}
		g.cond.Wait()
	}
	if g.gen == gen {
		return g.err
	}
	return nil
}

// download copies a buffer to a fresh host slice of its type.
func download(be engine.Backend, b engine.Buf) any {
	switch b.DType() {
	case engine.F32:
		v := make([]float32, b.Len())
		be.Download(v, b)
		return v
	case engine.F64:
		v := make([]float64, b.Len())
		be.Download(v, b)
		return v
	default:
		v := make([]int32, b.Len())
		be.Download(v, b)
		return v
	}
}

// exchange deposits this rank's host copy and returns everyone's, after
// a barrier; a second barrier in the caller's done() releases the slots.
func (h *Host) exchange(op string, be engine.Backend, b engine.Buf) ([]any, func() error, error) {
	v := download(be, b)
	if err := be.Sync(); err != nil {
		h.Abort(err)
		return nil, nil, err
	}
	h.g.mu.Lock()
	h.g.slots[h.rank] = v
	h.g.mu.Unlock()
	if err := h.barrier(op); err != nil {
		return nil, nil, err
	}
	all := append([]any(nil), h.g.slots...)
	for r, s := range all {
		if lenOf(s) != b.Len() {
			err := fmt.Errorf("%s: rank %d has %d elements, rank %d has %d", op, r, lenOf(s), h.rank, b.Len())
			h.Abort(err)
			return nil, nil, err
		}
	}
	done := func() error {
		if err := h.barrier(op); err != nil {
			return err
		}
		// Every rank has read the slots; clearing one's own is race-free
		// until the next exchange deposits again.
		h.g.mu.Lock()
		h.g.slots[h.rank] = nil
		h.g.mu.Unlock()
		return nil
	}
	return all, done, nil
}

func lenOf(v any) int {
	switch s := v.(type) {
	case []float32:
		return len(s)
	case []float64:
		return len(s)
	case []int32:
		return len(s)
	}
	return -1
}

// AllReduceSum implements Comm. The sum runs in rank order on every
// replica, so all replicas get the same bits.
func (h *Host) AllReduceSum(be engine.Backend, b engine.Buf) error {
	all, done, err := h.exchange("AllReduceSum", be, b)
	if err != nil {
		return err
	}
	switch b.DType() {
	case engine.F32:
		out := make([]float32, b.Len())
		for _, s := range all {
			for i, x := range s.([]float32) {
				out[i] += x
			}
		}
		be.Upload(b, out)
	case engine.F64:
		out := make([]float64, b.Len())
		for _, s := range all {
			for i, x := range s.([]float64) {
				out[i] += x
			}
		}
		be.Upload(b, out)
	default:
		out := make([]int32, b.Len())
		for _, s := range all {
			for i, x := range s.([]int32) {
				out[i] += x
			}
		}
		be.Upload(b, out)
	}
	if err := done(); err != nil {
		return err
	}
	return be.Sync()
}

// AllGather implements Comm.
func (h *Host) AllGather(be engine.Backend, send, recv engine.Buf) error {
	if recv.Len() != send.Len()*h.g.n || recv.DType() != send.DType() {
		err := fmt.Errorf("AllGather: recv has %d %v elements, want %d x %d %v", recv.Len(), recv.DType(), h.g.n, send.Len(), send.DType())
		h.Abort(err)
		return err
	}
	all, done, err := h.exchange("AllGather", be, send)
	if err != nil {
		return err
	}
	n := send.Len()
	switch send.DType() {
	case engine.F32:
		out := make([]float32, 0, n*len(all))
		for _, s := range all {
			out = append(out, s.([]float32)...)
		}
		be.Upload(recv, out)
	case engine.F64:
		out := make([]float64, 0, n*len(all))
		for _, s := range all {
			out = append(out, s.([]float64)...)
		}
		be.Upload(recv, out)
	default:
		out := make([]int32, 0, n*len(all))
		for _, s := range all {
			out = append(out, s.([]int32)...)
		}
		be.Upload(recv, out)
	}
	if err := done(); err != nil {
		return err
	}
	return be.Sync()
}

// Broadcast implements Comm.
func (h *Host) Broadcast(be engine.Backend, b engine.Buf, root int) error {
	if root < 0 || root >= h.g.n {
		return fmt.Errorf("Broadcast: root %d outside 0..%d", root, h.g.n-1)
	}
	all, done, err := h.exchange("Broadcast", be, b)
	if err != nil {
		return err
	}
	be.Upload(b, all[root])
	if err := done(); err != nil {
		return err
	}
	return be.Sync()
}
