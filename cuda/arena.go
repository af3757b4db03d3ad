//go:build cuda

package cuda

import (
	"fmt"
	"sync/atomic"

	"gorgonia.org/cu"
)

// arena hands out device memory by bumping a pointer through large chunks
// from cuMemAlloc, and frees nothing until Close: the engine allocates its
// buffers once, sized from the config and batch, so a general allocator
// would only add cost. With Options.ArenaBytes the one chunk is reserved
// up front (sized once) and exceeding it is an out-of-memory error.
type arena struct {
	b        *Backend
	chunks   []chunk
	reserved bool
	// separate gives every buffer its own allocation of exactly its size
	// (on the CPU stand-in, whose allocations end at a guard page): an
	// overrun then faults at the buffer's end, naming it, instead of
	// running into the next buffer of a chunk.
	separate bool
	total    int64 // bytes allocated from the driver
	used     int64 // bytes handed out
	// Copies of total and used for readers on other goroutines (the
	// metrics exporter), published after every change.
	pubTotal, pubUsed atomic.Int64
}

// publish makes the current totals visible to DeviceMemory.
func (a *arena) publish() {
	a.pubTotal.Store(a.total)
	a.pubUsed.Store(a.used)
}

type chunk struct {
	ptr        cu.DevicePtr
	size, used int64
}

const (
	arenaAlign    = 256 // cudaMalloc's alignment: every buffer starts aligned for vector loads
	arenaMinChunk = 64 << 20
	arenaMaxChunk = 1 << 30
)

func (a *arena) reserve(n int64) error {
	if err := a.grow(n, "the reserved arena"); err != nil {
		return err
	}
	a.reserved = true
	return nil
}

// alloc returns n bytes (rounded up to the alignment).
func (a *arena) alloc(n int64, what string) (cu.DevicePtr, error) {
	if a.separate {
		return a.allocSeparate(n, what)
	}
	n = (n + arenaAlign - 1) / arenaAlign * arenaAlign
	if len(a.chunks) > 0 {
		c := &a.chunks[len(a.chunks)-1]
		if c.size-c.used >= n {
			p := c.ptr + cu.DevicePtr(c.used)
			c.used += n
			a.used += n
			a.publish()
			return p, nil
		}
	}
	if a.reserved {
		return 0, a.oom(n, what, fmt.Errorf("the reserved arena (%d MiB) is full", a.total>>20))
	}
	size := max(n, min(int64(arenaMaxChunk), max(int64(arenaMinChunk), a.total)))
	if err := a.grow(size, what); err != nil {
		// Retry with exactly what is needed before giving up.
		if size == n || a.grow(n, what) != nil {
			return 0, err
		}
	}
	c := &a.chunks[len(a.chunks)-1]
	c.used = n
	a.used += n
	a.publish()
	return c.ptr, nil
}

// allocSeparate is alloc in separate mode: one driver allocation per
// buffer, named after what asked for it.
func (a *arena) allocSeparate(n int64, what string) (cu.DevicePtr, error) {
	if err := a.grow(n, what); err != nil {
		return 0, err
	}
	c := &a.chunks[len(a.chunks)-1]
	c.used = n
	a.used += n
	a.publish()
	nameBuffer(uintptr(c.ptr), what)
	return c.ptr, nil
}

func (a *arena) grow(size int64, what string) error {
	if a.b.closed {
		return errClosed
	}
	var p cu.DevicePtr
	err := a.b.dev.do(func() error {
		var err error
		p, err = cu.MemAlloc(size)
		return err
	})
	if err != nil {
		return a.oom(size, what, err)
	}
	a.chunks = append(a.chunks, chunk{ptr: p, size: size})
	a.total += size
	a.publish()
	return nil
}

// oom builds the out-of-memory message: what was asked, what is free, and
// a batch size that would fit when the caller gave a hint (buffers scale
// about linearly with the batch).
func (a *arena) oom(asked int64, what string, cause error) error {
	var free, total int64
	a.b.dev.do(func() error {
		var err error
		free, total, err = cu.MemInfo()
		return err
	})
	msg := fmt.Sprintf("cuda device %d: out of device memory: %s asked %.1f MiB; %.1f MiB free of %.1f MiB; this backend holds %.1f MiB",
		a.b.dev.ord, what, mib(asked), mib(free), mib(total), mib(a.total))
	if hint := a.b.opt.BatchHint; hint > 0 {
		need := float64(a.used + asked)
		fit := int(float64(hint) * float64(a.total+free) / need * 0.9)
		if fit < hint {
			msg += fmt.Sprintf("; a batch size of about %d would fit (now %d)", max(fit, 1), hint)
		}
	} else {
		msg += "; reduce the batch size (memory grows about linearly with it)"
	}
	return fmt.Errorf("%s: %w", msg, cause)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// free returns every chunk to the driver (on the worker, from Close).
func (a *arena) free() error {
	var first error
	for _, c := range a.chunks {
		if err := cu.MemFree(c.ptr); err != nil && first == nil {
			first = err
		}
	}
	a.chunks = nil
	return first
}

// Mark is a point in a backend's allocation order; Release frees what was
// allocated after it.
type Mark struct {
	chunks int   // chunks held at the mark
	last   int64 // bytes used of the last of them
	used   int64 // bytes handed out
}

// Mark returns the current point of the backend's allocation order, for
// Release: buffers with a lifetime shorter than the backend (an
// evaluation's carry, a gather's staging) are allocated after a Mark and
// given back with Release, so device memory in use stops growing.
func (b *Backend) Mark() Mark {
	a := b.arena
	m := Mark{chunks: len(a.chunks), used: a.used}
	if m.chunks > 0 {
		m.last = a.chunks[m.chunks-1].used
	}
	return m
}

// Release frees every buffer allocated since m. It first runs and waits
// for the queued work (which may still use them); the released Bufs, and
// slices of them, must not be used again. Graphs captured since are
// dropped (they may point into the memory), as are the backend's internal
// buffers allocated since, which are made again when next needed.
// Releasing to a mark older than another one released before is allowed;
// a mark newer than the current point is an error.
func (b *Backend) Release(m Mark) error {
	if b.closed {
		return errClosed
	}
	a := b.arena
	if m.chunks > len(a.chunks) || m.used > a.used || (m.chunks > 0 && m.last > a.chunks[m.chunks-1].used) {
		return fmt.Errorf("cuda backend: Release to a mark past the current allocation point (released twice?)")
	}
	if err := b.Sync(); err != nil {
		return err
	}
	released := func(p cu.DevicePtr) bool {
		for i := m.chunks; i < len(a.chunks); i++ {
			if c := a.chunks[i]; p >= c.ptr && p < c.ptr+cu.DevicePtr(c.size) {
				return true
			}
		}
		if m.chunks > 0 {
			c := a.chunks[m.chunks-1]
			return p >= c.ptr+cu.DevicePtr(m.last) && p < c.ptr+cu.DevicePtr(c.size)
		}
		return false
	}
	for k, s := range b.scratch {
		if released(s.ptr) {
			delete(b.scratch, k)
		}
	}
	gone := a.chunks[m.chunks:]
	err := b.dev.do(func() error {
		if b.rec != nil {
			b.rec.destroy()
			b.rec.graphs, b.rec.seen = map[uint64]*graphEntry{}, map[uint64]int{}
		}
		var first error
		for _, c := range gone {
			if err := cu.MemFree(c.ptr); err != nil && first == nil {
				first = err
			}
		}
		return first
	})
	for _, c := range gone {
		a.total -= c.size
	}
	a.chunks = a.chunks[:m.chunks]
	if m.chunks > 0 {
		a.chunks[m.chunks-1].used = m.last
	}
	a.used = m.used
	a.publish()
	if err != nil {
		return fmt.Errorf("cuda backend: Release: cuMemFree: %w", err)
	}
	return nil
}

// BeginScope is Mark and Release for callers that hold an engine.Backend
// and must not import this package (the trainer's evaluation, gather and
// broadcast buffers): the returned function releases every buffer
// allocated since the call. Through an interface check:
//
//	if s, ok := be.(interface{ BeginScope() func() error }); ok {
//		end := s.BeginScope()
//		defer end()
//	}
func (b *Backend) BeginScope() func() error {
	m := b.Mark()
	return func() error { return b.Release(m) }
}
