//go:build cuda

package cuda

import (
	"fmt"
	"hash/fnv"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"unsafe"

	"gorgonia.org/cu"
)

// op is one queued operation. run enqueues its work on the backend's
// stream; an upload carries its host data so a replayed graph can refill
// its staging slot without running the op again.
type op struct {
	name   string
	key    []uint64 // everything a captured launch bakes in (buffers, sizes, scalars)
	run    func(x *execCtx) error
	upload []byte // host data of an upload
	pcs    [6]uintptr
}

// execCtx says how ops run: eagerly with transient staging, or under
// capture with staging slots owned by the graph being built.
type execCtx struct {
	b     *Backend
	index int         // the op's position in its sequence
	entry *graphEntry // non-nil while capturing
	err   error
}

// stage returns pinned memory of n bytes for the current op.
func (x *execCtx) stage(n int) (unsafe.Pointer, error) {
	if x.entry != nil {
		p, err := x.entry.pool.alloc(n)
		if err != nil {
			return nil, err
		}
		x.entry.slots[x.index] = p
		return p, nil
	}
	return x.b.pin.alloc(n)
}

// postOp queues an op: straight to the worker, or into the recorder in
// graph mode. Its error is wrapped with the op's description (shapes) and
// the call site captured here. Ops come through postArgs (cuda/opkey.go),
// whose key is the op's whole argument list, or postUpload.
func (b *Backend) postOp(o *op) {
	if b.closed {
		b.fail(errClosed)
		return
	}
	runtime.Callers(3, o.pcs[:])
	if b.rec != nil {
		b.rec.ops = append(b.rec.ops, o)
		return
	}
	b.dev.post(func() {
		x := &execCtx{b: b}
		if err := o.run(x); err != nil {
			b.fail(o.wrap(withRefusal(err)))
		}
	})
}

// wrap names the op, its shapes and the engine call site in an error.
func (o *op) wrap(err error) error {
	site := "?"
	frames := runtime.CallersFrames(o.pcs[:])
	for {
		f, more := frames.Next()
		if f.Function != "" && !isOwnFrame(f.Function) {
			site = fmt.Sprintf("%s:%d", f.File, f.Line)
			break
		}
		if !more {
			break
		}
	}
	return fmt.Errorf("cuda backend: %s (called from %s): %w", o.name, site, err)
}

func isOwnFrame(fn string) bool {
	const own = "github.com/tinyrecursive/trm/cuda."
	return len(fn) >= len(own) && fn[:len(own)] == own
}

// uploadArgs is an upload's graph key: where and how much (the data is
// the op's payload, refilled into the graph's staging slot at replay).
type uploadArgs struct {
	Dst   cu.DevicePtr
	Bytes int
}

func (b *Backend) postUpload(dst cu.DevicePtr, payload []byte) {
	n := len(payload)
	o := &op{name: fmt.Sprintf("Upload(%d bytes)", n), key: argKey(uploadArgs{dst, n}), upload: payload}
	o.run = func(x *execCtx) error {
		p, err := x.stage(n)
		if err != nil {
			return err
		}
		copy(unsafe.Slice((*byte)(p), n), payload)
		atomic.AddInt64(&b.stats.Launches, 1)
		return wrapCU("cuMemcpyHtoDAsync", cu.MemcpyHtoDAsync(dst, p, int64(n), b.stream))
	}
	b.postOp(o)
}

// pinPool is pinned host memory handed out by bumping through chunks;
// reset makes it all reusable (after the stream is synchronised).
type pinPool struct {
	chunks []pinChunk
	cur    int
}

type pinChunk struct {
	p          unsafe.Pointer
	size, used int
}

func (pp *pinPool) alloc(n int) (unsafe.Pointer, error) {
	n = (n + 63) &^ 63
	for ; pp.cur < len(pp.chunks); pp.cur++ {
		c := &pp.chunks[pp.cur]
		if c.size-c.used >= n {
			p := unsafe.Add(c.p, c.used)
			c.used += n
			return p, nil
		}
	}
	size := max(n, 4<<20)
	p, err := pinned(size)
	if err != nil {
		return nil, err
	}
	pp.chunks = append(pp.chunks, pinChunk{p: p, size: size, used: n})
	pp.cur = len(pp.chunks) - 1
	return p, nil
}

func (pp *pinPool) reset() {
	for i := range pp.chunks {
		pp.chunks[i].used = 0
	}
	pp.cur = 0
}

func (pp *pinPool) free() {
	for _, c := range pp.chunks {
		freePinned(c.p)
	}
	pp.chunks = nil
}

// recorder holds graph mode's state: the ops since the last Sync, the
// captured graphs by sequence signature, and how often each signature
// was seen (a sequence is captured the second time it is seen, so one-off
// sequences such as buffer set-up never pay for a capture).
type recorder struct {
	ops        []*op
	graphs     map[uint64]*graphEntry
	seen       map[uint64]int
	LastReject error // the last capture that failed (the sequence then runs eagerly)
}

// graphEntry is one captured sequence: its graph and the pinned staging
// slot of each upload op, by op index.
type graphEntry struct {
	g        *graph
	n        int
	slots    []unsafe.Pointer
	pool     pinPool
	launches int64 // kernel launches, cuBLAS calls and copies inside
}

const maxGraphs = 64

func newRecorder() *recorder {
	return &recorder{graphs: map[uint64]*graphEntry{}, seen: map[uint64]int{}}
}

func (r *recorder) destroy() {
	for _, e := range r.graphs {
		e.g.destroy()
		e.pool.free()
	}
	r.graphs = nil
}

// signature hashes every op's name and key.
func signature(ops []*op) uint64 {
	h := fnv.New64a()
	var buf [8]byte
	put := func(v uint64) {
		for i := range buf {
			buf[i] = byte(v >> (8 * i))
		}
		h.Write(buf[:])
	}
	for _, o := range ops {
		h.Write([]byte(o.name))
		put(uint64(len(o.key)))
		for _, k := range o.key {
			put(k)
		}
	}
	return h.Sum64()
}

// flushRecorded runs the recorded sequence: replays its graph, captures it
// (second sighting), or runs it op by op.
func (b *Backend) flushRecorded() {
	r := b.rec
	ops := r.ops
	r.ops = nil
	if len(ops) == 0 {
		b.dev.do(func() error {
			b.finish()
			return nil
		})
		return
	}
	sig := signature(ops)
	b.mu.Lock()
	clean := b.err == nil
	b.mu.Unlock()
	b.dev.do(func() error {
		if e := r.graphs[sig]; e != nil && e.n == len(ops) {
			b.replayChecked(e, ops)
			return nil
		}
		if clean && r.seen[sig] >= 1 && len(r.graphs) < maxGraphs {
			if e, err := b.capture(ops); err == nil {
				r.graphs[sig] = e
				b.replayChecked(e, ops)
				return nil
			} else {
				b.reject(err)
				r.seen[sig] = -1 << 30 // never try this sequence again
			}
		}
		r.seen[sig]++
		atomic.AddInt64(&b.stats.EagerSequences, 1)
		for i, o := range ops {
			x := &execCtx{b: b, index: i}
			if err := o.run(x); err != nil {
				b.fail(o.wrap(withRefusal(err)))
			}
		}
		b.finish()
		return nil
	})
}

// reject records a failed capture: counted in Stats.GraphRejects, kept in
// LastReject, and logged the first time on this backend, since the
// sequence then runs eagerly for good (slower, never wrong).
func (b *Backend) reject(err error) {
	atomic.AddInt64(&b.stats.GraphRejects, 1)
	atomic.AddInt64(&b.captureFailures, 1)
	if b.rec.LastReject == nil {
		fmt.Fprintf(os.Stderr, "trm: %s: a CUDA graph capture failed; that sequence of ops runs eagerly from now on: %v\n", b.Name(), err)
	}
	b.rec.LastReject = err
}

// capture records ops into a new graph (on the worker). Nothing executes
// while capturing; replay then launches it.
func (b *Backend) capture(ops []*op) (*graphEntry, error) {
	e := &graphEntry{n: len(ops), slots: make([]unsafe.Pointer, len(ops))}
	if err := beginCapture(b.raw); err != nil {
		return nil, err
	}
	var runErr error
	before := atomic.LoadInt64(&b.stats.Launches)
	for i, o := range ops {
		x := &execCtx{b: b, index: i, entry: e}
		if err := o.run(x); err != nil {
			runErr = o.wrap(err)
			break
		}
	}
	g, err := endCapture(b.raw)
	if runErr != nil || err != nil {
		if g != nil {
			g.destroy()
		}
		e.pool.free()
		if runErr != nil {
			return nil, fmt.Errorf("capturing a sequence of %d ops: %w", len(ops), runErr)
		}
		return nil, fmt.Errorf("capturing a sequence of %d ops: %w", len(ops), err)
	}
	// Launches counted while capturing did not run: they become the
	// graph's node count for the replay statistics.
	e.launches = atomic.AddInt64(&b.stats.Launches, 0) - before
	atomic.AddInt64(&b.stats.Launches, -e.launches)
	atomic.AddInt64(&b.stats.GraphCaptures, 1)
	e.g = g
	return e, nil
}

// replayChecked replays e, first checking it against an eager run of ops
// from the same device memory when Options.VerifyGraphs asks.
func (b *Backend) replayChecked(e *graphEntry, ops []*op) {
	if !b.opt.VerifyGraphs {
		b.replay(e, ops)
		return
	}
	before, err := b.snapshot()
	if err != nil {
		b.fail(fmt.Errorf("cuda backend: TRM_CUDA_GRAPHS=verify: %w", err))
		b.replay(e, ops)
		return
	}
	for i, o := range ops {
		if err := o.run(&execCtx{b: b, index: i}); err != nil {
			b.fail(o.wrap(withRefusal(err)))
		}
	}
	b.finish()
	eager, err := b.snapshot()
	if err == nil {
		err = b.restore(before)
	}
	b.replay(e, ops)
	var replayed [][]byte
	if err == nil {
		replayed, err = b.snapshot()
	}
	if err != nil {
		b.fail(fmt.Errorf("cuda backend: TRM_CUDA_GRAPHS=verify: %w", err))
		return
	}
	for c := range eager {
		if i := firstDiff(eager[c], replayed[c]); i >= 0 {
			names := make([]string, 0, 4)
			for _, o := range ops[:min(len(ops), 4)] {
				names = append(names, o.name)
			}
			b.fail(fmt.Errorf("cuda backend: TRM_CUDA_GRAPHS=verify: replaying the graph of %d ops (%s, ...) left device memory different from running them eagerly: chunk %d (0x%x) differs first at byte %d (an op's key misses something its launch bakes in)",
				len(ops), strings.Join(names, ", "), c, uint64(b.arena.chunks[c].ptr), i))
			return
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// snapshot copies every chunk of the backend's device memory to the host
// (on the worker, after the queued work).
func (b *Backend) snapshot() ([][]byte, error) {
	out := make([][]byte, len(b.arena.chunks))
	for i, c := range b.arena.chunks {
		out[i] = make([]byte, c.size)
		if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&out[i][0]), c.ptr, c.size, b.stream); err != nil {
			return nil, fmt.Errorf("snapshot: cuMemcpyDtoHAsync: %w", err)
		}
	}
	if err := b.stream.Synchronize(); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return out, nil
}

// restore writes a snapshot back (on the worker).
func (b *Backend) restore(s [][]byte) error {
	for i, c := range b.arena.chunks[:len(s)] {
		if err := cu.MemcpyHtoDAsync(c.ptr, unsafe.Pointer(&s[i][0]), c.size, b.stream); err != nil {
			return fmt.Errorf("restore: cuMemcpyHtoDAsync: %w", err)
		}
	}
	if err := b.stream.Synchronize(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// replay refills the upload slots with this sequence's host data,
// launches the graph and waits.
func (b *Backend) replay(e *graphEntry, ops []*op) {
	for i, o := range ops {
		if o.upload != nil {
			copy(unsafe.Slice((*byte)(e.slots[i]), len(o.upload)), o.upload)
		}
	}
	atomic.AddInt64(&b.stats.GraphLaunches, 1)
	atomic.AddInt64(&b.stats.GraphOps, e.launches)
	if err := e.g.launch(b.raw); err != nil {
		b.fail(fmt.Errorf("cuda backend: replaying a graph of %d ops (%d nodes): %w", e.n, e.g.nodes, err))
	}
	b.finish()
}

func atomicAdd(p *int64, d int64) { atomic.AddInt64(p, d) }
