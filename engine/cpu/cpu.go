// Package cpu is the engine's CPU backend over all cores, the reference
// every other backend is checked against: the GEMM of package gemm, and
// elementwise kernels in AVX-512 or AVX2 assembly chosen at run time, with
// pure-Go versions for other CPUs (simd.go).
//
// Every op computes each output from a fixed sequence of operations and
// reduces in a fixed order, independent of how its rows are split among
// the workers, so the same inputs give the same bits for any thread count
// (on one CPU: the vector variants differ from each other in the last
// bits). Ops hand their work to long-lived workers through job structs
// kept in the Backend (pool.go), so a training step allocates nothing.
package cpu

import (
	"fmt"
	"runtime"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// Backend runs the engine's ops on the CPU.
type Backend struct {
	threads int
	gemm    GemmMode     // GEMM precision (NewWithOptions); fp32 from New
	act     engine.DType // activation storage: F32, or BF16 (bf16act.go)
	err     error        // first error since the last Sync
	scr     []float32    // op scratch (attention's per-worker tiles), grown on demand and kept
	// gemmA holds a BF16 operand of an fp32-mode GEMM widened to float32
	// (gemmOperand), gemmB the second one when both are BF16; grown on
	// demand and kept (the bf16 mode packs BF16 operands directly).
	gemmA, gemmB []float32
	// gemmC is the float32 scratch of a Gemm into a BF16 C, in C's
	// layout: the partial sums of a product over several K blocks in the
	// bf16 GEMM mode, the whole product before its rounding in fp32
	// (gemmIntoBF16); grown on demand and kept.
	gemmC []float32
	pool  *pool // long-lived workers
	jobs  jobs  // one job struct per op, reused by every call
	ws    []workerScratch
	parts []float64 // SumSquares chunk sums
	sign  signScratch
}

// signScratch is SignSGDRows' reusable memory: a slot per table row (-1
// when unused), the per-id sums and the ids in order of first appearance.
type signScratch struct {
	slot  []int32
	acc   []float32
	order []int32
}

// jobs holds the parallel bodies of the ops. Ops run one at a time, so one
// of each suffices; an op fills its job, runs it, and clears it so that
// the Backend does not keep the op's buffers alive.
type jobs struct {
	copy       copyJob
	transpose  transposeJob
	add        addJob
	add3       add3Job
	axpby      axpbyJob
	fill       fillJob
	addRMSNorm addRMSNormJob
	rmsBack    rmsBackJob
	swiglu     swigluJob
	swigluBack swigluBackJob
	rope       ropeJob
	attn       attnJob
	attnBack   attnBackJob
	embed      embedJob
	embedBack  embedBackJob
	actReset   actResetJob
	loss       lossJob
	adam       adamJob
	ema        emaJob
	sumSq      sumSqJob
	widen      widenJob
	gemmC      gemmCJob
}

// workerScratch is one worker's scratch memory, grown on demand and kept.
type workerScratch struct {
	f64 []float64
	f32 []float32 // rows or blocks of bf16 operands widened, and of bf16 outputs before their rounding (slot)
}

// scratch returns the scratch buffer with at least n elements. Ops run one
// at a time on a backend, so one buffer serves every op.
func (b *Backend) scratch(n int) []float32 {
	if cap(b.scr) < n {
		b.scr = make([]float32, n)
	}
	return b.scr[:n]
}

var _ engine.Backend = (*Backend)(nil)
var _ engine.FusedAdd3 = (*Backend)(nil)

// New returns a CPU backend using threads worker goroutines (0: all cores).
func New(threads int) *Backend {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	gemm.SetThreads(threads)
	b := &Backend{threads: threads, pool: newPool(threads), ws: make([]workerScratch, threads)}
	// The pool's helpers only reference the pool, so the Backend can
	// become unreachable; then the helpers are told to exit.
	runtime.AddCleanup(b, (*pool).stop, b.pool)
	return b
}

// Name implements engine.Backend.
func (b *Backend) Name() string {
	if b.act == engine.BF16 {
		return fmt.Sprintf("cpu(%d threads, %v GEMM, bf16 activations)", b.threads, b.gemm)
	}
	if b.gemm != GemmFP32 {
		return fmt.Sprintf("cpu(%d threads, %v GEMM)", b.threads, b.gemm)
	}
	return fmt.Sprintf("cpu(%d threads)", b.threads)
}

// Threads returns the number of worker goroutines.
func (b *Backend) Threads() int { return b.threads }

// buf is a CPU buffer or a view into one: exactly one slice is set.
type buf struct {
	dt  engine.DType
	f32 []float32
	f64 []float64
	i32 []int32
	bf  []uint16 // BF16: the top 16 bits of each float32 (bf16store.go)

	// Views handed out by Slice, reused when the same view is asked again:
	// the model slices the same buffers at the same offsets every step, and
	// a new view per call would be a heap allocation per call. They live
	// as long as this buffer, so the memo never outlives what it describes.
	off   int    // offset of this view in its parent
	views []*buf // at most maxViews
	nextV int    // slot the next new view replaces once views is full
}

// maxViews bounds the views remembered per buffer.
const maxViews = 16

func (x *buf) Len() int {
	switch x.dt {
	case engine.F32:
		return len(x.f32)
	case engine.F64:
		return len(x.f64)
	case engine.BF16:
		return len(x.bf)
	default:
		return len(x.i32)
	}
}

func (x *buf) DType() engine.DType { return x.dt }

// Alloc implements engine.Backend.
func (b *Backend) Alloc(dt engine.DType, n int) engine.Buf {
	x := &buf{dt: dt}
	switch dt {
	case engine.F32:
		x.f32 = make([]float32, n)
	case engine.F64:
		x.f64 = make([]float64, n)
	case engine.I32:
		x.i32 = make([]int32, n)
	case engine.BF16:
		x.bf = make([]uint16, n)
	default:
		b.fail("Alloc: unknown dtype %v", dt)
	}
	return x
}

// Slice implements engine.Backend.
func (b *Backend) Slice(x engine.Buf, off, n int) engine.Buf {
	s := x.(*buf)
	if off < 0 || n < 0 || off+n > s.Len() {
		b.fail("Slice: [%d, %d) out of a buffer of %d", off, off+n, s.Len())
		return &buf{dt: s.dt}
	}
	for _, v := range s.views {
		if v.off == off && v.Len() == n {
			return v
		}
	}
	v := &buf{dt: s.dt, off: off}
	if len(s.views) < maxViews {
		s.views = append(s.views, v)
	} else {
		s.views[s.nextV] = v
		s.nextV = (s.nextV + 1) % maxViews
	}
	switch s.dt {
	case engine.F32:
		v.f32 = s.f32[off : off+n : off+n]
	case engine.F64:
		v.f64 = s.f64[off : off+n : off+n]
	case engine.BF16:
		v.bf = s.bf[off : off+n : off+n]
	default:
		v.i32 = s.i32[off : off+n : off+n]
	}
	return v
}

// Upload implements engine.Backend; a BF16 buffer takes []float32,
// rounded to nearest even.
func (b *Backend) Upload(dst engine.Buf, src any) {
	d := dst.(*buf)
	n := 0
	switch s := src.(type) {
	case []float32:
		switch d.dt {
		case engine.F32:
			n = copy(d.f32, s)
		case engine.BF16:
			n = uploadBF16(d.bf, s)
		}
	case []float64:
		if d.dt == engine.F64 {
			n = copy(d.f64, s)
		}
	case []int32:
		if d.dt == engine.I32 {
			n = copy(d.i32, s)
		}
	default:
		b.fail("Upload: unsupported host type %T", src)
		return
	}
	if n != d.Len() || n != lenOf(src) {
		b.fail("Upload: %T of %d elements into %v buffer of %d", src, lenOf(src), d.dt, d.Len())
	}
}

// Download implements engine.Backend; a BF16 buffer gives []float32
// (exact).
func (b *Backend) Download(dst any, src engine.Buf) {
	s := src.(*buf)
	n := 0
	switch d := dst.(type) {
	case []float32:
		switch s.dt {
		case engine.F32:
			n = copy(d, s.f32)
		case engine.BF16:
			n = downloadBF16(d, s.bf)
		}
	case []float64:
		if s.dt == engine.F64 {
			n = copy(d, s.f64)
		}
	case []int32:
		if s.dt == engine.I32 {
			n = copy(d, s.i32)
		}
	default:
		b.fail("Download: unsupported host type %T", dst)
		return
	}
	if n != s.Len() || n != lenOf(dst) {
		b.fail("Download: %v buffer of %d elements into %T of %d", s.dt, s.Len(), dst, lenOf(dst))
	}
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

// Sync implements engine.Backend: CPU ops run synchronously, so it only
// returns and clears the first recorded error.
func (b *Backend) Sync() error {
	err := b.err
	b.err = nil
	return err
}

// fail records the first error; later ops keep running on whatever they
// get, which is harmless because the step's result is discarded.
func (b *Backend) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("cpu backend: "+format, args...)
	}
}

// f32s returns a float32 buffer's elements. A BF16 buffer here is an op
// reading or writing it as float32: the op's need call names it first;
// this catches the buffers an op does not pass to need.
func f32s(x engine.Buf) []float32 {
	if x == nil {
		return nil
	}
	bx := x.(*buf)
	if bx.dt == engine.BF16 {
		bf16Misuse("a float32 op (see the stack)", "an operand")
	}
	return bx.f32
}

func f64s(x engine.Buf) []float64 {
	if x == nil {
		return nil
	}
	return x.(*buf).f64
}

func i32s(x engine.Buf) []int32 {
	if x == nil {
		return nil
	}
	return x.(*buf).i32
}

// grainElems is the smallest unit of elementwise work worth handing to
// another worker (64 KB of float32): below it the wake-up costs more than
// the work.
const grainElems = 1 << 14

// rowGrain is the unit size, in rows of cols elements, for row-wise ops.
func rowGrain(cols int) int { return max(1, grainElems/max(cols, 1)) }

// req is one buffer-size requirement of an op: buffer x named name must
// hold at least n elements.
type req struct {
	name string
	x    engine.Buf
	n    int
}

// need checks an op's buffer requirements. It takes its requirements by
// value in a slice that does not escape (only the error path formats), so
// a call allocates nothing.
//
// A BF16 buffer among them panics (bf16Misuse): the ops that take bf16
// check those buffers with needAny instead.
func (b *Backend) need(op string, rs ...req) bool {
	for _, r := range rs {
		if isBF16(r.x) {
			bf16Misuse(op, r.name)
		}
	}
	return b.needAny(op, rs...)
}

// needAny is need for buffers of any element type.
func (b *Backend) needAny(op string, rs ...req) bool {
	for _, r := range rs {
		if r.x == nil || (r.x.(*buf) == nil) {
			b.fail("%s: %s is missing", op, r.name)
			return false
		}
		if l := r.x.Len(); l < r.n {
			b.fail("%s: %s has %d elements, needs %d", op, r.name, l, r.n)
			return false
		}
	}
	return true
}

// Gemm implements engine.Backend with the gemm package.
func (b *Backend) Gemm(g engine.Gemm) {
	batch := max(g.Batch, 1)
	na, nb, nc, ok := g.Extents()
	if !ok {
		b.fail("Gemm %dx%dx%d: leading dimensions lda %d ldb %d ldc %d too small", g.M, g.N, g.K, g.Lda, g.Ldb, g.Ldc)
		return
	}
	first := b.err == nil
	if !b.needAny("Gemm", req{"A", g.A, na}, req{"B", g.B, nb}, req{"C", g.C, nc}) {
		// Name the product only on the error path (formatting allocates).
		if first {
			b.err = fmt.Errorf("%w (Gemm %dx%dx%d, transA %v, transB %v, batch %d)", b.err, g.M, g.N, g.K, g.TransA, g.TransB, batch)
		}
		return
	}
	if g.M == 0 || g.N == 0 {
		return
	}
	if isBF16(g.C) {
		b.gemmIntoBF16(g, batch, na, nb, nc)
		return
	}
	b.gemmF32(g, batch, na, nb, f32s(g.C))
}

// gemmF32 runs g (A and B of na and nb elements) with its product in c,
// laid out as g.C: g.C itself, or in the fp32 GEMM mode the float32
// scratch of a BF16 C.
func (b *Backend) gemmF32(g engine.Gemm, batch, na, nb int, c []float32) {
	if b.gemm == GemmBF16 {
		// A BF16 operand goes to the GEMM as it is stored: the packing
		// reads bf16 and builds the panels widening would give.
		a, a16 := gemmBF16Operand(g.A)
		bb, b16 := gemmBF16Operand(g.B)
		if batch == 1 {
			gemm.SgemmBF16Mixed(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, a16, g.Lda, bb, b16, g.Ldb, g.Beta, c, g.Ldc)
		} else {
			gemm.SgemmStridedBatchedBF16Mixed(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, a16, g.Lda, g.StrideA, bb, b16, g.Ldb, g.StrideB, g.Beta, c, g.Ldc, g.StrideC, batch)
		}
		return
	}
	// In fp32 a BF16 operand (not one the model stores: StoresBF16 is
	// false there) is widened into scratch (its extent only), exactly.
	// The second scratch buffer serves only when both operands are BF16.
	scrB := &b.gemmA
	if isBF16(g.A) {
		scrB = &b.gemmB
	}
	a, bb := b.gemmOperand(g.A, na, &b.gemmA), b.gemmOperand(g.B, nb, scrB)
	switch {
	case batch == 1:
		gemm.Sgemm(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, g.Lda, bb, g.Ldb, g.Beta, c, g.Ldc)
	default:
		gemm.SgemmStridedBatched(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, g.Lda, g.StrideA, bb, g.Ldb, g.StrideB, g.Beta, c, g.Ldc, g.StrideC, batch)
	}
}

// copyJob copies rows (or, for a single row, column ranges). When either
// side is BF16 (mixed set) the elements move through move instead.
type copyJob struct {
	d, s                 []float32
	dStride, sStride, nc int
	oneRow               bool

	mixed  bool
	do, so operand
}

func (j *copyJob) run(_, lo, hi int) {
	if j.mixed {
		j.runMixed(lo, hi)
		return
	}
	if j.oneRow {
		copy(j.d[lo:hi], j.s[lo:hi])
		return
	}
	for r := lo; r < hi; r++ {
		copy(j.d[r*j.dStride:r*j.dStride+j.nc], j.s[r*j.sStride:r*j.sStride+j.nc])
	}
}

// Copy2D implements engine.Backend. Either side may be BF16
// (engine.BF16Activations): bf16 to float32 widens, float32 to bf16
// rounds, bf16 to bf16 copies the bits.
func (b *Backend) Copy2D(dst engine.Buf, dstStride int, src engine.Buf, srcStride int, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	if !b.needAny("Copy2D", req{"dst", dst, (rows-1)*dstStride + cols}, req{"src", src, (rows-1)*srcStride + cols}) {
		return
	}
	j := &b.jobs.copy
	if isBF16(dst) || isBF16(src) {
		*j = copyJob{dStride: dstStride, sStride: srcStride, nc: cols, oneRow: rows == 1, mixed: true, do: operandOf(dst), so: operandOf(src)}
	} else {
		*j = copyJob{d: f32s(dst), s: f32s(src), dStride: dstStride, sStride: srcStride, nc: cols, oneRow: rows == 1}
	}
	if rows == 1 {
		b.pool.run(j, cols, grainElems)
	} else {
		b.pool.run(j, rows, rowGrain(cols))
	}
	*j = copyJob{}
}

// transposeJob transposes batch matrices in tiles of 32 x 32; a unit is a
// band of 32 source rows of one matrix. When either side is BF16 (mixed
// set) the tiles go through runMixed.
type transposeJob struct {
	d, s              []float32
	rows, cols, bands int

	mixed  bool
	do, so operand
	ws     []workerScratch
}

// transposeTileSize is the side of Transpose's tiles.
const transposeTileSize = 32

func (j *transposeJob) run(w, lo, hi int) {
	if j.mixed {
		j.runMixed(w, lo, hi)
		return
	}
	const tile = transposeTileSize
	rows, cols := j.rows, j.cols
	for t := lo; t < hi; t++ {
		bi, r0 := t/j.bands, (t%j.bands)*tile
		sb, db := j.s[bi*rows*cols:(bi+1)*rows*cols], j.d[bi*rows*cols:(bi+1)*rows*cols]
		r1 := min(r0+tile, rows)
		for c0 := 0; c0 < cols; c0 += tile {
			c1 := min(c0+tile, cols)
			transposeTile(db[c0*rows+r0:], rows, sb[r0*cols+c0:], cols, r1-r0, c1-c0)
		}
	}
}

// Transpose implements engine.Backend. Either side may be BF16
// (engine.BF16Activations): bf16 to float32 widens, float32 to bf16
// rounds, bf16 to bf16 gives the same bits.
func (b *Backend) Transpose(dst, src engine.Buf, batch, rows, cols int) {
	n := batch * rows * cols
	if !b.needAny("Transpose", req{"dst", dst, n}, req{"src", src, n}) {
		return
	}
	const tile = transposeTileSize
	bands := (rows + tile - 1) / tile
	j := &b.jobs.transpose
	if isBF16(dst) || isBF16(src) {
		b.growRowScratch(tile*transposeChunk + tile*tile)
		*j = transposeJob{rows: rows, cols: cols, bands: bands, mixed: true, do: operandOf(dst), so: operandOf(src), ws: b.ws}
	} else {
		*j = transposeJob{d: f32s(dst), s: f32s(src), rows: rows, cols: cols, bands: bands}
	}
	b.pool.run(j, batch*bands, rowGrain(tile*cols))
	*j = transposeJob{}
}

// addJob is the elementwise sum. When an operand is BF16 (mixed set) it
// runs block by block through the operand views (runMixed).
type addJob struct {
	d, p, q []float32

	mixed      bool
	do, po, qo operand
	ws         []workerScratch
}

func (j *addJob) run(w, lo, hi int) {
	if j.mixed {
		j.runMixed(w, lo, hi)
		return
	}
	add(j.d[lo:hi], j.p[lo:hi], j.q[lo:hi])
}

// Add implements engine.Backend. Any operand may be BF16
// (engine.BF16Activations); dst may alias a or b.
func (b *Backend) Add(dst, x, y engine.Buf) {
	n := dst.Len()
	if !b.needAny("Add", req{"a", x, n}, req{"b", y, n}) {
		return
	}
	j := &b.jobs.add
	if isBF16(dst) || isBF16(x) || isBF16(y) {
		b.growRowScratch(3 * bf16Block)
		*j = addJob{mixed: true, do: operandOf(dst), po: operandOf(x), qo: operandOf(y), ws: b.ws}
	} else {
		*j = addJob{d: f32s(dst), p: f32s(x), q: f32s(y)}
	}
	b.pool.run(j, n, grainElems)
	*j = addJob{}
}

// add3Job is the elementwise (p + q) + r. When an operand is BF16 (mixed
// set) it runs block by block through the operand views (runMixed).
type add3Job struct {
	d, p, q, r []float32

	mixed          bool
	do, po, qo, ro operand
	ws             []workerScratch
}

// add3Block is the run of elements add3Job sums with both vector adds
// before moving on: 3 x 16 KB of operands, resident in L1 for the second.
const add3Block = 4096

func (j *add3Job) run(w, lo, hi int) {
	if j.mixed {
		j.runMixed(w, lo, hi)
		return
	}
	for s := lo; s < hi; s += add3Block {
		e := min(s+add3Block, hi)
		d := j.d[s:e]
		add(d, j.p[s:e], j.q[s:e])
		add(d, d, j.r[s:e])
	}
}

// Add3 implements engine.FusedAdd3: one pass over the operands, each block
// summed by the same vector adds as Add then Add, so the bits are theirs.
// Any operand may be BF16 (engine.BF16Activations); dst may alias a or b.
func (b *Backend) Add3(dst, x, y, z engine.Buf) {
	n := dst.Len()
	if !b.needAny("Add3", req{"a", x, n}, req{"b", y, n}, req{"c", z, n}) {
		return
	}
	j := &b.jobs.add3
	if isBF16(dst) || isBF16(x) || isBF16(y) || isBF16(z) {
		b.growRowScratch(4 * bf16Block)
		*j = add3Job{mixed: true, do: operandOf(dst), po: operandOf(x), qo: operandOf(y), ro: operandOf(z), ws: b.ws}
	} else {
		*j = add3Job{d: f32s(dst), p: f32s(x), q: f32s(y), r: f32s(z)}
	}
	b.pool.run(j, n, grainElems)
	*j = add3Job{}
}

// axpbyJob is the elementwise linear combination alpha*p + beta*q.
type axpbyJob struct {
	d, p, q     []float32
	alpha, beta float32
}

func (j *axpbyJob) run(_, lo, hi int) {
	d, p, q := j.d[lo:hi], j.p[lo:hi], j.q[lo:hi]
	al, be := j.alpha, j.beta
	for i := range d {
		// The conversions round each product, so the compiler cannot fuse
		// one into the sum (Go allows fusing x*y + z otherwise).
		d[i] = float32(al*p[i]) + float32(be*q[i])
	}
}

// Axpby implements engine.Backend.
func (b *Backend) Axpby(dst, x, y engine.Buf, alpha, beta float32) {
	n := dst.Len()
	if !b.need("Axpby", req{"a", x, n}, req{"b", y, n}) {
		return
	}
	j := &b.jobs.axpby
	*j = axpbyJob{f32s(dst), f32s(x), f32s(y), alpha, beta}
	b.pool.run(j, n, grainElems)
	*j = axpbyJob{}
}

// fillJob sets float32 elements to v.
type fillJob struct {
	d []float32
	v float32
}

func (j *fillJob) run(_, lo, hi int) {
	d := j.d[lo:hi]
	if j.v == 0 {
		clear(d)
		return
	}
	for i := range d {
		d[i] = j.v
	}
}

// Fill implements engine.Backend.
func (b *Backend) Fill(dst engine.Buf, v float32) {
	x := dst.(*buf)
	switch x.dt {
	case engine.F32:
		j := &b.jobs.fill
		*j = fillJob{x.f32, v}
		b.pool.run(j, len(x.f32), grainElems)
		*j = fillJob{}
	case engine.F64:
		for i := range x.f64 {
			x.f64[i] = float64(v)
		}
	case engine.I32:
		for i := range x.i32 {
			x.i32[i] = int32(v)
		}
	case engine.BF16:
		h := roundBF16(v)
		for i := range x.bf {
			x.bf[i] = h
		}
	}
}
