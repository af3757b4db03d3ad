package cpu

import (
	"runtime"
	"sync/atomic"
)

// job is the parallel body of an op: run processes the indices [lo, hi)
// on worker w (0 <= w < threads, for per-worker scratch). Ops keep their
// job structs inside the Backend and pass pointers to them, so handing a
// job to the workers allocates nothing (unlike a closure per call, which
// escapes to the heap once other goroutines see it).
//
// Every job computes each index independently of how [0, n) is cut into
// units and of which worker runs a unit, so results do not depend on the
// thread count or the scheduling.
type job interface {
	run(w, lo, hi int)
}

// The claim word packs a generation, the unit count and the next unit to
// claim, so one compare-and-swap both checks that the phase is the one the
// worker saw and claims a unit; a worker holding an unfinished unit keeps
// the phase open, which makes the job fields safe to read after a claim.
const (
	unitBits = 20
	unitMask = 1<<unitBits - 1
	genShift = 2 * unitBits
)

// unitsPerThread splits a call into more units than threads: the cores are
// shared, and a worker whose thread is descheduled should cost the others
// a small unit, not a whole share.
const unitsPerThread = 4

// pool runs jobs on long-lived worker goroutines parked on channels: a
// call costs a non-blocking channel send per helper, no allocation. The
// calling goroutine works too, as worker 0. Ops run one at a time on a
// Backend, so one pool (and one set of job structs) serves all of them.
type pool struct {
	threads  int
	wake     []chan struct{} // wake[i] wakes helper i (index 0 unused)
	claim    atomic.Uint64
	done     atomic.Int64  // units finished in the current phase
	finished chan struct{} // the helper that finishes a phase's last unit reports here
	gen      uint64        // generation of the current phase

	// the current phase, set by the caller before it publishes claim
	j job
	n int
}

// spinPolls bounds how long an idle helper watches for the next phase
// before parking: ops follow each other within microseconds, and parking
// costs a futex round trip to wake up again. Each poll yields.
const spinPolls = 200

func newPool(threads int) *pool {
	p := &pool{threads: threads, finished: make(chan struct{}, 1)}
	p.wake = make([]chan struct{}, threads)
	for i := 1; i < threads; i++ {
		ch := make(chan struct{}, 1)
		p.wake[i] = ch
		go p.helper(i, ch)
	}
	return p
}

// stop ends the helpers (they finish the phase in hand first). The
// Backend's cleanup calls it once the Backend is unreachable, so dropped
// backends do not leave parked goroutines behind.
func (p *pool) stop() {
	for _, ch := range p.wake[1:] {
		close(ch)
	}
}

// helper is the loop of worker w, until stop closes its channel; it costs
// nothing while parked.
func (p *pool) helper(w int, wake chan struct{}) {
	for range wake {
		for {
			if p.work(w) {
				p.finished <- struct{}{}
			}
			if !p.await() {
				break
			}
		}
	}
}

// await polls briefly for a phase with unclaimed units.
func (p *pool) await() bool {
	for range spinPolls {
		v := p.claim.Load()
		if v&unitMask < v>>unitBits&unitMask {
			return true
		}
		runtime.Gosched()
	}
	return false
}

// work claims and runs units of the current phase as worker w until none
// is left, and reports whether it finished the phase's last unit.
func (p *pool) work(w int) (last bool) {
	for {
		v := p.claim.Load()
		u, units := int(v&unitMask), int(v>>unitBits&unitMask)
		if u >= units {
			return last
		}
		if !p.claim.CompareAndSwap(v, v+1) {
			continue
		}
		lo, hi := p.n*u/units, p.n*(u+1)/units
		p.j.run(w, lo, hi)
		last = p.done.Add(1) == int64(units)
	}
}

// run runs j over [0, n) in units of at least grain indices and returns
// when all are done. Small calls run inline on the caller.
func (p *pool) run(j job, n, grain int) {
	if n <= 0 {
		return
	}
	units := min((n+grain-1)/max(grain, 1), p.threads*unitsPerThread, unitMask)
	if units <= 1 || p.threads == 1 {
		j.run(0, 0, n)
		return
	}
	p.j, p.n = j, n
	p.gen = (p.gen + 1) & (1<<(64-genShift) - 1)
	p.done.Store(0)
	p.claim.Store(p.gen<<genShift | uint64(units)<<unitBits)
	for i := 1; i < min(p.threads, units); i++ {
		select {
		case p.wake[i] <- struct{}{}:
		default: // already awake or a wake-up is pending
		}
	}
	if !p.work(0) {
		<-p.finished
	}
	p.j = nil
}
