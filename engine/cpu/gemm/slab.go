package gemm

import (
	"runtime"
	"sync/atomic"
)

// A call is computed in slabs: C is cut along one dimension into a few
// slabs per thread (slabsPerThread), and the thread that claims a slab
// computes it from start to finish with no barrier between K blocks. The operand along the cut (A's rows for an M
// cut, B's columns for an N cut) is private to the slab, packed by its
// thread into its own workspace (or read in place, see useDirect). The
// other operand is shared: every slab
// needs all of it, so it is packed once, cooperatively and lazily. It is
// cut into groups of micro-panels, each with a state word; the first thread
// that needs a group claims it with a compare-and-swap and packs it, a
// thread that finds it ready uses it, and a thread that finds another one
// packing it moves on to other groups and comes back. Threads start at
// different groups, so they pack different ones.
//
// This replaced a scheme with two barriers per (K block, N block), packing
// then computing: a 512x1536x1552 product had 42 of them, and on two shared
// cores the waits cost a quarter of the run (261 GFLOP/s against 331 for
// two independent half products measured in the same run).
//
// The shared operand is held for a run of K blocks at once (a super-block,
// bounded by sharedBudget), so a slab never waits for another to release a
// buffer; consecutive super-blocks are separated by the pool's phase
// barrier, and within one the slabs are claimed dynamically, so a thread
// whose own slab is done takes a slab that a late thread has not started.
//
// Determinism: every tile of C is still produced by one micro-kernel call
// per K block, on panels packed the same way whoever packs them, with the
// K blocks in order; the cut only decides which thread makes the call.

// sharedBudget bounds the shared packed operand of one super-block, in
// floats (16 MB): enough for the whole weight matrix of the engine's
// products, while a product with a very long K (a weight gradient over a
// large batch) is done in several super-blocks.
const sharedBudget = 4 << 20

// slabsPerThread is how many slabs a parallel call is cut into per thread.
// More than one lets a thread that finishes early take the slabs of one
// that started late (a worker can take tens of microseconds to wake on a
// busy machine, a large share of a 0.5 ms product such as 5184x128x128);
// the cost is little, since no operand is packed twice either way.
var slabsPerThread = 2

// useDirect enables reading panels in place (see plan.directA); tests and
// benchmarks turn it off to compare with packing everything.
var useDirect = true

// Panels read in place: with op(A) = A^T, the mr values of a k step of an
// A micro-panel are consecutive in A's row pc+q, and with op(B) = B the nr
// values of a B micro-panel likewise, so the kernel can read them where
// they are, rows ld apart, instead of from a packed copy. Packing such a
// panel is a plain copy that buys only alignment and locality, and for a
// weight gradient (TN) with small M and N over a long K each element is
// used only M or N times after being copied: 128x128x6208 spent a quarter
// of its time packing. Only full panels are read in place; the partial
// last one of each operand is still packed, zero-padded, and the strided
// kernel does exactly the arithmetic of the packed one, so results do not
// depend on where a panel was read.

// maxDirectStride is the longest row (in floats) of a matrix whose panels
// are read in place: a k step further down a 3072-float row is 12 KB away,
// so one panel's 256 steps touch 768 pages and the TLB misses cost more
// than the copy saves (3072x512x1552 TN: 354 GFLOP/s packed, 328 in
// place), while with 128- to 512-float rows reading in place gained 5% to
// 55% (128x128x6208 TN: 182 -> 280).
const maxDirectStride = 1024

// chunkBytes bounds the private packed A of an M slab that is reused
// across N blocks (1 MB: it is re-read from L2 or L3 once per N block).
const chunkBytes = 1 << 20

// Shared group states hold stamps derived from plan.seq: 2*seq+1 while a
// thread packs the group, 2*seq+2 once it is ready. seq grows with every
// super-block and never wraps, so states left by earlier calls are always
// below the current stamps.
const (
	groupReady = iota // packed for this super-block: read it
	groupMine         // claimed by the caller, who must pack it and publish
	groupBusy         // another thread is packing it
)

// plan is one call's cut and its shared packed operand.
type plan struct {
	p      problem
	kern   *kernel
	splitN bool // cut along N (A shared) rather than M (B shared)
	mTiles int  // micro-panels of A (mr rows each)
	nTiles int  // micro-panels of B (nr columns each)
	slabs  int  // number of slabs
	cut    int  // panels along the cut dimension
	kcs    int  // K block depth
	ncT    int  // N block width in B panels
	chunk  int  // A panels packed at a time in an M slab
	group  int  // shared panels per group
	groups int  // shared groups per K block
	perK   int  // shared floats per K block
	kb0    int  // first K block of the current super-block
	kb1    int  // end of the current super-block
	seq    uint64

	// directA and directB: full panels of op(A) = A^T and op(B) = B are
	// read in place by the strided kernel instead of packed (see direct).
	directA, directB bool
	fullA, fullB     int // full panels of A (mr rows) and B (nr columns)

	shared []float32
	states []atomic.Uint64
}

// setup prepares p to be computed in at most slabs slabs.
func (pl *plan) setup(p *problem, kern *kernel, slabs int) {
	pl.p, pl.kern = *p, kern
	pl.mTiles = ceilDiv(p.m, kern.mr)
	pl.nTiles = ceilDiv(p.n, kern.nr)
	pl.kcs = splitK(p.k, kern.kc)
	pl.ncT = blockWidth(p.n, kern) / kern.nr
	// A bf16 operand (mixed.go) is always packed: the kernels read fp32.
	pl.directA = useDirect && kern.strided != nil && p.transA && p.lda <= maxDirectStride && p.a16 == nil
	pl.directB = useDirect && kern.strided != nil && !p.transB && p.ldb <= maxDirectStride && p.b16 == nil
	pl.fullA, pl.fullB = p.m/kern.mr, p.n/kern.nr
	// Cut the dimension with more panels: the finer the cut, the closer
	// the slabs are to equal work. A transposed product (swap.go) is cut
	// along N even in one slab: its A is short, and packing its long B
	// one N block at a time into the private buffer, which stays in L2,
	// took less than half the time of packing each K block's whole B
	// into the shared one (1296x11x512 on one thread).
	pl.splitN = (slabs > 1 || p.transC) && pl.nTiles > pl.mTiles
	cut := pl.mTiles
	if pl.splitN {
		cut = pl.nTiles
	}
	pl.slabs = min(slabs, cut)
	pl.cut = cut
	// Shared groups are small enough for every slab to start on its own
	// group: with 128 columns (4 panels) in one group, one thread would
	// pack all of B for each K block while the others waited.
	if pl.splitN {
		pl.group = max(1, min(fusedGroup, pl.mTiles/pl.slabs))
		pl.groups = ceilDiv(pl.mTiles, pl.group)
		pl.perK = pl.mTiles * kern.ms * pl.kcs
	} else {
		pl.group = max(1, min(packGroupB, min(pl.ncT, pl.nTiles)/pl.slabs))
		pl.groups = ceilDiv(pl.nTiles, pl.group)
		pl.perK = pl.nTiles * kern.nr * pl.kcs
		// With one N block every A panel is used by one sweep per K block:
		// pack a few at a time right before their sweeps, so the packed
		// copy stays in L2 (this matters for tall, narrow products such as
		// 5184x128x128). Otherwise keep up to chunkBytes of panels for all
		// the N blocks.
		pl.chunk = packGroupA
		if pl.ncT < pl.nTiles {
			pl.chunk = max(packGroupA, chunkBytes/(4*kern.ms*pl.kcs))
		}
	}
	kBlocks := ceilDiv(p.k, pl.kcs)
	perSuper := max(1, min(kBlocks, sharedBudget/pl.perK))
	pl.shared = grow(pl.shared, perSuper*pl.perK)
	if n := perSuper * pl.groups; cap(pl.states) < n {
		pl.states = make([]atomic.Uint64, n)
	}
}

// superBlocks returns the number of K blocks per super-block.
func (pl *plan) superBlocks() int { return len(pl.shared) / pl.perK }

// release drops the references to the caller's matrices.
func (pl *plan) release() { pl.p = problem{} }

// prepare sizes a workspace for this plan's private buffers.
func (pl *plan) prepare(ws *workspace) {
	k := pl.kern
	if pl.splitN {
		ws.bp = grow(ws.bp, pl.ncT*k.nr*pl.kcs)
	} else {
		ws.ap = grow(ws.ap, pl.chunk*k.ms*pl.kcs)
	}
	ws.tile = grow(ws.tile, k.mr*k.nr+tileTSize(k))
	if cap(ws.pending) < pl.groups {
		ws.pending = make([]int, 0, pl.groups)
	}
}

// claim reports the state of a shared group for the current super-block,
// claiming it for the caller when nobody has.
func (pl *plan) claim(st *atomic.Uint64) int {
	packing, ready := 2*pl.seq+1, 2*pl.seq+2
	for {
		v := st.Load()
		switch {
		case v == ready:
			return groupReady
		case v == packing:
			return groupBusy
		case st.CompareAndSwap(v, packing):
			return groupMine
		}
	}
}

// publish marks a group the caller packed as ready.
func (pl *plan) publish(st *atomic.Uint64) { st.Store(2*pl.seq + 2) }

// wait spins until a group another thread is packing is ready. Yielding
// lets that thread run if it shares the caller's core.
func (pl *plan) wait(st *atomic.Uint64) {
	for st.Load() != 2*pl.seq+2 {
		runtime.Gosched()
	}
}

// runSlab computes slab s over the K blocks of the current super-block.
func (pl *plan) runSlab(s int, ws *workspace) {
	// Balanced slabs (sizes differ by at most one panel): 37 panels in 4
	// slabs of 10, 10, 10 and 7 would leave two threads 20 and 17.
	t0, t1 := s*pl.cut/pl.slabs, (s+1)*pl.cut/pl.slabs
	for kb := pl.kb0; kb < pl.kb1; kb++ {
		pc := kb * pl.kcs
		kcb := min(pl.kcs, pl.p.k-pc)
		r := kb - pl.kb0
		shared := pl.shared[r*pl.perK : (r+1)*pl.perK]
		states := pl.states[r*pl.groups : (r+1)*pl.groups]
		if pl.splitN {
			pl.slabN(ws, s, t0, t1, pc, kcb, shared, states)
		} else {
			pl.slabM(ws, s, t0, t1, pc, kcb, shared, states)
		}
	}
}

// start returns the group slab s visits first among n, spreading the
// slabs' first claims evenly.
func (pl *plan) start(s, n int) int { return s * n / pl.slabs }

// slabM computes A panels t0..t1-1 (private) against every B panel
// (shared) for the K block at pc.
func (pl *plan) slabM(ws *workspace, s, t0, t1, pc, kcb int, shared []float32, states []atomic.Uint64) {
	p, k := &pl.p, pl.kern
	for c0 := t0; c0 < t1; c0 += pl.chunk {
		c1 := min(c0+pl.chunk, t1)
		switch {
		case !pl.directA:
			p.packATiles(k, ws.ap, c0, c1, pc, kcb)
		case c1 > pl.fullA:
			p.packATiles(k, ws.ap, pl.fullA, c1, pc, kcb) // the partial panel
		}
		for j0 := 0; j0 < pl.nTiles; j0 += pl.ncT {
			j1 := min(j0+pl.ncT, pl.nTiles)
			switch {
			case !pl.directB:
				pl.ensureB(ws, s, j0, j1, pc, kcb, shared, states)
			case j1 > pl.fullB:
				pl.ensureB(ws, s, pl.fullB, j1, pc, kcb, shared, states) // the partial panel
			}
			for ir := c0; ir < c1; ir++ {
				var a *float32
				sa := k.ms * 4
				switch {
				case !pl.directA:
					a = &ws.ap[(ir-c0)*k.ms*kcb]
				case ir < pl.fullA:
					a, sa = &p.a[pc*p.lda+ir*k.mr], p.lda*4
				default:
					a = &ws.ap[0]
				}
				p.computeRow(k, a, sa, shared, pl.directB, ws.tile, ir, j0, j1, 0, pc, kcb)
			}
		}
	}
}

// ensureB makes the shared B panels j0..j1-1 of the K block ready, packing
// the groups no other thread has claimed.
func (pl *plan) ensureB(ws *workspace, s, j0, j1, pc, kcb int, shared []float32, states []atomic.Uint64) {
	g0, g1 := j0/pl.group, ceilDiv(j1, pl.group)
	n := g1 - g0
	pending := ws.pending[:0]
	for i, first := 0, pl.start(s, n); i < n; i++ {
		g := g0 + (first+i)%n
		switch pl.claim(&states[g]) {
		case groupMine:
			pl.p.packBPanels(pl.kern, shared, 0, g*pl.group, min((g+1)*pl.group, pl.nTiles), pc, kcb)
			pl.publish(&states[g])
		case groupBusy:
			pending = append(pending, g)
		}
	}
	for _, g := range pending {
		pl.wait(&states[g])
	}
	ws.pending = pending[:0]
}

// slabN computes every A panel (shared) against B panels t0..t1-1
// (private) for the K block at pc, one N block at a time. Groups of A
// panels that another thread is still packing are swept last.
func (pl *plan) slabN(ws *workspace, s, t0, t1, pc, kcb int, shared []float32, states []atomic.Uint64) {
	p, k := &pl.p, pl.kern
	for j0 := t0; j0 < t1; j0 += pl.ncT {
		nT := min(pl.ncT, t1-j0)
		jc := j0 * k.nr
		switch {
		case !pl.directB:
			p.packBPanels(k, ws.bp, jc, 0, nT, pc, kcb)
		case j0+nT > pl.fullB:
			p.packBPanels(k, ws.bp, jc, pl.fullB-j0, nT, pc, kcb) // the partial panel
		}
		sweep := func(g int) {
			for ir := g * pl.group; ir < min((g+1)*pl.group, pl.mTiles); ir++ {
				a, sa := &shared[ir*k.ms*kcb], k.ms*4
				if pl.directA && ir < pl.fullA {
					a, sa = &p.a[pc*p.lda+ir*k.mr], p.lda*4
				}
				p.computeRow(k, a, sa, ws.bp, pl.directB, ws.tile, ir, 0, nT, jc, pc, kcb)
			}
		}
		pending := ws.pending[:0]
		for i, first := 0, pl.start(s, pl.groups); i < pl.groups; i++ {
			g := (first + i) % pl.groups
			if pl.directA && (g+1)*pl.group <= pl.fullA {
				sweep(g) // read in place: nothing to pack
				continue
			}
			switch pl.claim(&states[g]) {
			case groupMine:
				t := g * pl.group
				p.packATiles(k, shared[t*k.ms*kcb:], t, min(t+pl.group, pl.mTiles), pc, kcb)
				pl.publish(&states[g])
			case groupBusy:
				pending = append(pending, g)
				continue
			}
			sweep(g)
		}
		for _, g := range pending {
			pl.wait(&states[g])
			sweep(g)
		}
		ws.pending = pending[:0]
	}
}

// runSerial computes the whole problem as one slab on the calling
// goroutine.
func (pl *plan) runSerial(p *problem, kern *kernel, ws *workspace) {
	pl.setup(p, kern, 1)
	pl.prepare(ws)
	nK := ceilDiv(p.k, pl.kcs)
	for pl.kb0 = 0; pl.kb0 < nK; pl.kb0 += pl.superBlocks() {
		pl.kb1 = min(pl.kb0+pl.superBlocks(), nK)
		pl.seq++
		pl.runSlab(0, ws)
	}
	pl.release()
}
