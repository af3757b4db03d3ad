package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The pool keeps long-lived worker goroutines parked on channels so that a
// call costs a channel send per worker and phase instead of goroutine
// creation (which allocates). The calling goroutine works too, as worker 0.
//
// A phase ends when all its units are done, not when every worker has
// checked in: the cores are shared, and a worker whose thread is not
// running simply misses the phase (the others claim its share) instead of
// stalling the call. Wake-ups are therefore non-blocking sends, and a
// worker that wakes late finds nothing to claim and parks again.
type pool struct {
	mu      sync.Mutex      // held for the whole of a parallel call
	workers []chan struct{} // workers[i] wakes worker i (index 0 unused)
	ws      []*workspace    // ws[i] is worker i's workspace; ws[0] the caller's
	t       task            // reused for every phase of every call
}

var thePool pool

// ensure starts workers so that nt goroutines (caller included) can run.
func (pl *pool) ensure(nt int) {
	if len(pl.ws) == 0 {
		pl.ws = append(pl.ws, new(workspace))
		pl.workers = append(pl.workers, nil)
		pl.t.finished = make(chan struct{}, 1)
	}
	for len(pl.ws) < nt {
		ws := new(workspace)
		ch := make(chan struct{}, 1)
		pl.ws = append(pl.ws, ws)
		pl.workers = append(pl.workers, ch)
		go worker(&pl.t, len(pl.ws)-1, ch, ws)
	}
}

// worker is the loop of pool goroutine id. A wake-up can be stale (sent for
// an earlier phase), and a worker can still be polling when a call with
// fewer threads starts, so each worker checks the current phase's thread
// count before joining it and sizes its own buffers when it runs a unit.
func worker(t *task, id int, wake chan struct{}, ws *workspace) {
	for range wake {
		for id < int(t.threads.Load()) {
			if t.work(ws) {
				t.finished <- struct{}{}
			}
			if !t.awaitUnits() {
				break
			}
		}
	}
}

// spinPolls bounds how long a worker watches for the next phase before
// parking: a call's phases follow each other within microseconds, while
// parking and being woken again costs a futex round trip (tens of
// microseconds when the machine is busy). Each poll yields to other
// goroutines.
var spinPolls = 300

// awaitUnits polls for claimable units for a short while and reports
// whether some appeared.
func (t *task) awaitUnits() bool {
	for i := 0; i < spinPolls; i++ {
		v := t.claim.Load()
		if v&unitMask < v>>unitBits&unitMask {
			return true
		}
		runtime.Gosched()
	}
	return false
}

const (
	phaseSlab  = iota // compute slabs of one super-block (see plan)
	phaseBatch        // compute whole matrices of a batch serially
)

// The claim word packs a phase generation, the phase's unit count and the
// next unclaimed unit, so that one compare-and-swap both checks that the
// phase is still the one observed and claims a unit. Holding an unfinished
// unit keeps the phase (and so the task fields) alive, which makes it safe
// to read the fields after a successful claim.
const (
	unitBits = 24
	unitMask = 1<<unitBits - 1
	maxUnits = unitMask
)

// task describes the current phase. Which goroutine claims a unit has no
// effect on the values it produces.
type task struct {
	kind     int
	bt       batched
	kern     *kernel
	claim    atomic.Uint64 // gen<<48 | units<<24 | next
	threads  atomic.Int32  // goroutines allowed in the current call (workers 0..threads-1)
	gen      uint64        // generation of the current phase (caller only)
	done     atomic.Int64  // units finished in the current phase
	finished chan struct{} // a worker that finishes a phase's last unit reports here

	// current parallel call (slab phases)
	plan plan
	base int // first batch item of a batch phase
}

// phase runs units units of t on up to nt goroutines and returns when all
// are done. The task fields must be set before the call.
func (pl *pool) phase(t *task, nt, units int) {
	if units == 0 {
		return
	}
	t.threads.Store(int32(nt))
	t.gen = (t.gen + 1) & 0xffff
	t.done.Store(0)
	t.claim.Store(t.gen<<48 | uint64(units)<<unitBits)
	for i := 1; i < min(nt, units); i++ {
		select {
		case pl.workers[i] <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	if !t.work(pl.ws[0]) {
		<-t.finished
	}
}

// work claims and runs units of the current phase until none are left, and
// reports whether it finished the phase's last unit.
func (t *task) work(ws *workspace) (last bool) {
	for {
		v := t.claim.Load()
		u, units := int(v&unitMask), int(v>>unitBits&unitMask)
		if u >= units {
			return last
		}
		if !t.claim.CompareAndSwap(v, v+1) {
			continue
		}
		t.run(u, ws)
		last = t.done.Add(1) == int64(units)
	}
}

// run executes unit u of the current phase.
func (t *task) run(u int, ws *workspace) {
	switch t.kind {
	case phaseSlab:
		t.plan.prepare(ws)
		t.plan.runSlab(u, ws)
	case phaseBatch:
		sub := t.bt.item(t.base + u)
		sub.run(t.kern, ws)
	}
}

// gemmParallel computes p with nt goroutines sharing slabsPerThread*nt
// slabs (see plan), one phase per super-block.
func (pl *pool) gemmParallel(p *problem, kern *kernel, nt int) {
	t := &pl.t
	t.plan.setup(p, kern, nt*slabsPerThread)
	if t.plan.slabs > maxUnits {
		t.plan.release()
		pl.ws[0].serial.runSerial(p, kern, pl.ws[0])
		return
	}
	// Size every worker's buffers here rather than when a worker first
	// runs a slab: which workers take slabs varies from call to call, so
	// lazy growth would allocate now and then for many calls, where this
	// allocates only on the first call of a larger shape.
	for _, ws := range pl.ws[:nt] {
		t.plan.prepare(ws)
	}
	nK := ceilDiv(p.k, t.plan.kcs)
	t.kind = phaseSlab
	for kb0 := 0; kb0 < nK; kb0 += t.plan.superBlocks() {
		t.plan.kb0, t.plan.kb1 = kb0, min(kb0+t.plan.superBlocks(), nK)
		t.plan.seq++
		pl.phase(t, nt, t.plan.slabs)
	}
	t.plan.release()
}

// batchedParallel distributes whole matrices over the workers when they are
// small or numerous, and otherwise runs them one by one, each in parallel.
func (pl *pool) batchedParallel(bt *batched, kern *kernel, nt int) {
	p := &bt.pr
	per := p.m * p.n * p.k
	if bt.batch >= nt && (per < 1<<22 || bt.batch >= 4*nt) {
		t := &pl.t
		t.kind, t.bt, t.kern = phaseBatch, *bt, kern
		// Size every worker's serial buffers for these matrices now, as
		// gemmParallel does for slabs: which worker takes which matrix
		// varies, so growing them lazily would allocate now and then.
		if item := bt.item(0); item.k > 0 && item.alpha != 0 {
			for _, ws := range pl.ws[:nt] {
				ws.serial.setup(&item, kern, 1)
				ws.serial.prepare(ws)
				ws.serial.release()
			}
		}
		for t.base = 0; t.base < bt.batch; t.base += maxUnits {
			pl.phase(t, nt, min(maxUnits, bt.batch-t.base))
		}
		t.bt = batched{}
		return
	}
	for i := 0; i < bt.batch; i++ {
		sub := bt.item(i)
		if sub.k == 0 || sub.alpha == 0 || per < minParallelWork {
			sub.run(kern, pl.ws[0])
			continue
		}
		pl.gemmParallel(&sub, kern, nt)
	}
}
