package gemm

import (
	"sync"
	"sync/atomic"
)

// The pool keeps long-lived worker goroutines parked on channels so that a
// call costs a channel send per worker and phase instead of goroutine
// creation (which allocates). The calling goroutine works too, as worker 0.
type pool struct {
	mu      sync.Mutex   // held for the whole of a parallel call
	workers []chan *task // workers[i] feeds worker i (index 0 unused)
	ws      []*workspace // ws[i] is worker i's workspace; ws[0] the caller's
	t       task         // reused for every phase of every call
}

var thePool pool

// ensure starts workers so that nt goroutines (caller included) can run.
func (pl *pool) ensure(nt int) {
	if len(pl.ws) == 0 {
		pl.ws = append(pl.ws, new(workspace))
		pl.workers = append(pl.workers, nil)
	}
	for len(pl.ws) < nt {
		ws := new(workspace)
		ch := make(chan *task, 1)
		pl.ws = append(pl.ws, ws)
		pl.workers = append(pl.workers, ch)
		go worker(ch, ws)
	}
}

func worker(ch chan *task, ws *workspace) {
	for t := range ch {
		t.work(ws)
		t.wg.Done()
	}
}

const (
	phasePack    = iota // pack A micro-panels (first N block only) and B micro-panels
	phaseCompute        // run micro-kernels over (A panel, run of B panels) units
	phaseBatch          // compute whole matrices of a batch serially
)

// task describes one phase. Units are claimed through an atomic counter;
// which worker claims a unit has no effect on the values it produces.
type task struct {
	kind  int
	pr    problem // copied in: a pointer would make the caller's value escape
	bt    batched
	kern  *kernel
	units int
	next  atomic.Int64
	wg    sync.WaitGroup

	// current block (pack and compute phases)
	pc, kcb, jc      int
	mTiles, nTiles   int
	packA            bool
	nChunks, jrChunk int
	ap, bp           []float32
}

// phase runs t on nt goroutines and returns when every unit is done.
func (pl *pool) phase(t *task, nt int) {
	t.next.Store(0)
	helpers := min(nt, t.units) - 1
	t.wg.Add(helpers)
	for i := 1; i <= helpers; i++ {
		pl.workers[i] <- t
	}
	t.work(pl.ws[0])
	t.wg.Wait()
}

func (t *task) work(ws *workspace) {
	for {
		u := int(t.next.Add(1) - 1)
		if u >= t.units {
			return
		}
		switch t.kind {
		case phasePack:
			mr, nr := t.kern.mr, t.kern.nr
			if t.packA {
				if u < t.mTiles {
					t.pr.packA(t.kern, t.ap[u*t.kern.ms*t.kcb:], u*mr, t.pc, t.kcb)
					continue
				}
				u -= t.mTiles
			}
			t.pr.packB(t.kern, t.bp[u*nr*t.kcb:], t.jc+u*nr, t.pc, t.kcb)
		case phaseCompute:
			ir, ch := u/t.nChunks, u%t.nChunks
			jr0 := ch * t.jrChunk
			jr1 := min(t.nTiles, jr0+t.jrChunk)
			t.pr.computeRow(t.kern, t.ap, t.bp, ws.tile, ir, jr0, jr1, t.jc, t.pc, t.kcb)
		case phaseBatch:
			sub := t.bt.item(u)
			sub.run(t.kern, ws)
		}
	}
}

// gemmParallel computes p with nt goroutines. Each block is packed
// cooperatively, then its C tiles are shared out. When A has few micro-panels
// the B panels of a sweep are split into chunks too, so that all workers
// get units.
func (pl *pool) gemmParallel(p *problem, kern *kernel, nt int) {
	t := &pl.t
	mr, nr := kern.mr, kern.nr
	mTiles := ceilDiv(p.m, mr)
	kcs := splitK(p.k, kern.kc)
	nc := blockWidth(p.n, kern)
	shared := pl.ws[0]
	shared.ap = grow(shared.ap, mTiles*kern.ms*kcs)
	shared.bp = grow(shared.bp, nc*kcs)
	for i := 0; i < nt; i++ {
		pl.ws[i].tile = grow(pl.ws[i].tile, mr*nr)
	}
	t.pr, t.kern, t.mTiles = *p, kern, mTiles
	t.ap, t.bp = shared.ap, shared.bp
	for pc := 0; pc < p.k; pc += kcs {
		t.pc, t.kcb = pc, min(kcs, p.k-pc)
		for jc := 0; jc < p.n; jc += nc {
			t.jc = jc
			t.nTiles = ceilDiv(min(nc, p.n-jc), nr)
			t.packA = jc == 0

			t.kind = phasePack
			t.units = t.nTiles
			if t.packA {
				t.units += mTiles
			}
			pl.phase(t, nt)

			t.kind = phaseCompute
			t.nChunks = 1
			if mTiles < 4*nt {
				t.nChunks = min(t.nTiles, ceilDiv(4*nt, mTiles))
			}
			t.jrChunk = ceilDiv(t.nTiles, t.nChunks)
			t.nChunks = ceilDiv(t.nTiles, t.jrChunk)
			t.units = mTiles * t.nChunks
			pl.phase(t, nt)
		}
	}
	t.pr, t.ap, t.bp = problem{}, nil, nil
}

// batchedParallel distributes whole matrices over the workers when they are
// small or numerous, and otherwise runs them one by one, each in parallel.
func (pl *pool) batchedParallel(bt *batched, kern *kernel, nt int) {
	p := &bt.pr
	per := p.m * p.n * p.k
	if bt.batch >= nt && (per < 1<<22 || bt.batch >= 4*nt) {
		t := &pl.t
		t.kind, t.bt, t.kern, t.units = phaseBatch, *bt, kern, bt.batch
		pl.phase(t, nt)
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
