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
	phasePack    = iota // pack A micro-panels (first N block only) and B micro-panels
	phaseCompute        // run micro-kernels over (A panel, run of B panels) units
	phaseBatch          // compute whole matrices of a batch serially
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
	pr       problem // copied in: a pointer would make the caller's value escape
	bt       batched
	kern     *kernel
	claim    atomic.Uint64 // gen<<48 | units<<24 | next
	threads  atomic.Int32  // goroutines allowed in the current call (workers 0..threads-1)
	gen      uint64        // generation of the current phase (caller only)
	done     atomic.Int64  // units finished in the current phase
	finished chan struct{} // a worker that finishes a phase's last unit reports here

	// current block (pack and compute phases)
	pc, kcb, jc      int
	mTiles, nTiles   int
	packA            bool
	fused            bool // single N block: compute units pack their own A panels
	kcs              int  // K block depth (the last block may be shallower)
	nChunks, jrChunk int
	ap, bp           []float32
	base             int // first batch item of a batch phase
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
	case phasePack:
		if t.packA {
			aUnits := ceilDiv(t.mTiles, packGroupA)
			if u < aUnits {
				t0 := u * packGroupA
				t.pr.packATiles(t.kern, t.ap[t0*t.kern.ms*t.kcb:], t0, min(t0+packGroupA, t.mTiles), t.pc, t.kcb)
				return
			}
			u -= aUnits
		}
		t0 := u * packGroupB
		t.pr.packBPanels(t.kern, t.bp, t.jc, t0, min(t0+packGroupB, t.nTiles), t.pc, t.kcb)
	case phaseCompute:
		ws.tile = grow(ws.tile, t.kern.mr*t.kern.nr)
		if t.fused {
			// ws.ap is this worker's own: there is no shared packed A in
			// this mode.
			ws.ap = grow(ws.ap, fusedGroup*t.kern.ms*t.kcs)
			t0 := u * fusedGroup
			t.pr.sweepGroup(t.kern, ws.ap, t.bp, ws.tile, t0, min(t0+fusedGroup, t.mTiles), t.nTiles, t.pc, t.kcb)
			return
		}
		ir, ch := u/t.nChunks, u%t.nChunks
		jr0 := ch * t.jrChunk
		jr1 := min(t.nTiles, jr0+t.jrChunk)
		t.pr.computeRow(t.kern, t.ap[ir*t.kern.ms*t.kcb:], t.bp, ws.tile, ir, jr0, jr1, t.jc, t.pc, t.kcb)
	case phaseBatch:
		sub := t.bt.item(t.base + u)
		sub.run(t.kern, ws)
	}
}

// minUnitsPerThread is the number of compute units per thread below which a
// sweep is split into chunks of B panels. A phase ends when its last unit
// does, so on average half a unit per phase is lost to waiting; with small
// M (512 rows: 37 panels) whole sweeps are too coarse for the 40-odd
// phases of a long K.
var minUnitsPerThread = 4

// gemmParallel computes p with nt goroutines. Each block is packed
// cooperatively, then its C tiles are shared out. When A has few micro-panels
// the B panels of a sweep are split into chunks too, so that all workers
// get units.
func (pl *pool) gemmParallel(p *problem, kern *kernel, nt int) {
	t := &pl.t
	mr, nr := kern.mr, kern.nr
	mTiles := ceilDiv(p.m, mr)
	if mTiles+ceilDiv(kern.nc, nr) > maxUnits {
		// Beyond the claim word's unit count (m over 200 million rows).
		gemmSerial(p, kern, pl.ws[0])
		return
	}
	kcs := splitK(p.k, kern.kc)
	nc := blockWidth(p.n, kern)
	// Fuse A packing into the sweeps (see gemmSerial) when C is one N block
	// wide and there are enough A panel groups to share out.
	fused := nc >= p.n && ceilDiv(mTiles, fusedGroup) >= 4*nt
	// The shared buffers live in the caller's workspace; with fused packing
	// that workspace's ap is the caller's private one, like every worker's.
	shared := pl.ws[0]
	if !fused {
		shared.ap = grow(shared.ap, mTiles*kern.ms*kcs)
	}
	shared.bp = grow(shared.bp, nc*kcs)
	t.pr, t.kern, t.mTiles, t.fused, t.kcs = *p, kern, mTiles, fused, kcs
	t.ap, t.bp = shared.ap, shared.bp
	for pc := 0; pc < p.k; pc += kcs {
		t.pc, t.kcb = pc, min(kcs, p.k-pc)
		for jc := 0; jc < p.n; jc += nc {
			t.jc = jc
			t.nTiles = ceilDiv(min(nc, p.n-jc), nr)
			t.packA = jc == 0 && !fused

			t.kind = phasePack
			units := ceilDiv(t.nTiles, packGroupB)
			if t.packA {
				units += ceilDiv(mTiles, packGroupA)
			}
			pl.phase(t, nt, units)

			t.kind = phaseCompute
			if fused {
				pl.phase(t, nt, ceilDiv(mTiles, fusedGroup))
				continue
			}
			t.nChunks = 1
			if mTiles < minUnitsPerThread*nt {
				t.nChunks = min(t.nTiles, ceilDiv(minUnitsPerThread*nt, mTiles))
			}
			t.jrChunk = ceilDiv(t.nTiles, t.nChunks)
			t.nChunks = ceilDiv(t.nTiles, t.jrChunk)
			pl.phase(t, nt, mTiles*t.nChunks)
		}
	}
	t.pr, t.ap, t.bp, t.fused = problem{}, nil, nil, false
}

// batchedParallel distributes whole matrices over the workers when they are
// small or numerous, and otherwise runs them one by one, each in parallel.
func (pl *pool) batchedParallel(bt *batched, kern *kernel, nt int) {
	p := &bt.pr
	per := p.m * p.n * p.k
	if bt.batch >= nt && (per < 1<<22 || bt.batch >= 4*nt) {
		t := &pl.t
		t.kind, t.bt, t.kern = phaseBatch, *bt, kern
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
