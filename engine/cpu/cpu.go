// Package cpu is the engine's CPU backend: pure Go over all cores, the
// reference every other backend is checked against.
//
// Every op splits its work into fixed contiguous ranges and reduces in a
// fixed order, so the same inputs and thread count give the same bits;
// most ops (all but none today) give the same bits for any thread count.
package cpu

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// Backend runs the engine's ops on the CPU.
type Backend struct {
	threads int
	err     error        // first error since the last Sync
	scr     [2][]float32 // op scratch (attention scores), grown on demand and kept
}

// scratch returns scratch buffer i with at least n elements. Ops run one
// at a time on a backend, so one set serves every op.
func (b *Backend) scratch(i, n int) []float32 {
	if cap(b.scr[i]) < n {
		b.scr[i] = make([]float32, n)
	}
	return b.scr[i][:n]
}

var _ engine.Backend = (*Backend)(nil)

// New returns a CPU backend using threads worker goroutines (0: all cores).
func New(threads int) *Backend {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	gemm.SetThreads(threads)
	return &Backend{threads: threads}
}

// Name implements engine.Backend.
func (b *Backend) Name() string { return fmt.Sprintf("cpu(%d threads)", b.threads) }

// Threads returns the number of worker goroutines.
func (b *Backend) Threads() int { return b.threads }

// buf is a CPU buffer or a view into one: exactly one slice is set.
type buf struct {
	dt  engine.DType
	f32 []float32
	f64 []float64
	i32 []int32
}

func (x *buf) Len() int {
	switch x.dt {
	case engine.F32:
		return len(x.f32)
	case engine.F64:
		return len(x.f64)
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
	v := &buf{dt: s.dt}
	switch s.dt {
	case engine.F32:
		v.f32 = s.f32[off : off+n : off+n]
	case engine.F64:
		v.f64 = s.f64[off : off+n : off+n]
	default:
		v.i32 = s.i32[off : off+n : off+n]
	}
	return v
}

// Upload implements engine.Backend.
func (b *Backend) Upload(dst engine.Buf, src any) {
	d := dst.(*buf)
	n := 0
	switch s := src.(type) {
	case []float32:
		if d.dt == engine.F32 {
			n = copy(d.f32, s)
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

// Download implements engine.Backend.
func (b *Backend) Download(dst any, src engine.Buf) {
	s := src.(*buf)
	n := 0
	switch d := dst.(type) {
	case []float32:
		if s.dt == engine.F32 {
			n = copy(d, s.f32)
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

func f32s(x engine.Buf) []float32 {
	if x == nil {
		return nil
	}
	return x.(*buf).f32
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

// parallel runs fn over [0, n) split into at most b.threads contiguous
// chunks. The split depends only on n and the thread count, and callers
// make each index's result independent of the chunking, so results do not
// depend on scheduling.
func (b *Backend) parallel(n int, fn func(lo, hi int)) {
	t := min(b.threads, n)
	if t <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	for i := range t {
		lo, hi := n*i/t, n*(i+1)/t
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// need checks that each named buffer holds at least n elements; args come
// in (name string, buffer, n int) triples.
func (b *Backend) need(op string, args ...any) bool {
	for i := 0; i+2 < len(args); i += 3 {
		name := args[i].(string)
		n := args[i+2].(int)
		x, _ := args[i+1].(engine.Buf)
		if x == nil || (x.(*buf) == nil) {
			b.fail("%s: %s is missing", op, name)
			return false
		}
		if x.Len() < n {
			b.fail("%s: %s has %d elements, needs %d", op, name, x.Len(), n)
			return false
		}
	}
	return true
}

// Gemm implements engine.Backend with the gemm package.
func (b *Backend) Gemm(g engine.Gemm) {
	batch := max(g.Batch, 1)
	ar, ac := g.M, g.K
	if g.TransA {
		ar, ac = g.K, g.M
	}
	br, bc := g.K, g.N
	if g.TransB {
		br, bc = g.N, g.K
	}
	span := func(rows, cols, ld, stride int) int {
		if rows == 0 || cols == 0 {
			return 0
		}
		return (batch-1)*stride + (rows-1)*ld + cols
	}
	if g.Lda < ac || g.Ldb < bc || g.Ldc < g.N {
		b.fail("Gemm %dx%dx%d: leading dimensions lda %d ldb %d ldc %d too small", g.M, g.N, g.K, g.Lda, g.Ldb, g.Ldc)
		return
	}
	if !b.need(fmt.Sprintf("Gemm %dx%dx%d (transA %v, transB %v, batch %d)", g.M, g.N, g.K, g.TransA, g.TransB, batch),
		"A", g.A, span(ar, ac, g.Lda, g.StrideA), "B", g.B, span(br, bc, g.Ldb, g.StrideB), "C", g.C, span(g.M, g.N, g.Ldc, g.StrideC)) {
		return
	}
	if g.M == 0 || g.N == 0 {
		return
	}
	a, bb, c := f32s(g.A), f32s(g.B), f32s(g.C)
	if batch == 1 {
		gemm.Sgemm(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, g.Lda, bb, g.Ldb, g.Beta, c, g.Ldc)
		return
	}
	gemm.SgemmStridedBatched(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, g.Lda, g.StrideA, bb, g.Ldb, g.StrideB, g.Beta, c, g.Ldc, g.StrideC, batch)
}

// Copy2D implements engine.Backend.
func (b *Backend) Copy2D(dst engine.Buf, dstStride int, src engine.Buf, srcStride int, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	if !b.need("Copy2D", "dst", dst, (rows-1)*dstStride+cols, "src", src, (rows-1)*srcStride+cols) {
		return
	}
	d, s := f32s(dst), f32s(src)
	if rows == 1 {
		b.parallel(cols, func(lo, hi int) { copy(d[lo:hi], s[lo:hi]) })
		return
	}
	b.parallel(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(d[r*dstStride:r*dstStride+cols], s[r*srcStride:r*srcStride+cols])
		}
	})
}

// Transpose implements engine.Backend.
func (b *Backend) Transpose(dst, src engine.Buf, batch, rows, cols int) {
	n := batch * rows * cols
	if !b.need("Transpose", "dst", dst, n, "src", src, n) {
		return
	}
	d, s := f32s(dst), f32s(src)
	const tile = 32
	tilesR := (rows + tile - 1) / tile
	b.parallel(batch*tilesR, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			bi, r0 := t/tilesR, (t%tilesR)*tile
			sb, db := s[bi*rows*cols:], d[bi*rows*cols:]
			r1 := min(r0+tile, rows)
			for c0 := 0; c0 < cols; c0 += tile {
				c1 := min(c0+tile, cols)
				for r := r0; r < r1; r++ {
					for c := c0; c < c1; c++ {
						db[c*rows+r] = sb[r*cols+c]
					}
				}
			}
		}
	})
}

// Add implements engine.Backend.
func (b *Backend) Add(dst, x, y engine.Buf) {
	n := dst.Len()
	if !b.need("Add", "a", x, n, "b", y, n) {
		return
	}
	d, p, q := f32s(dst), f32s(x), f32s(y)
	b.parallel(n, func(lo, hi int) {
		add(d[lo:hi], p[lo:hi], q[lo:hi])
	})
}

// Fill implements engine.Backend.
func (b *Backend) Fill(dst engine.Buf, v float32) {
	x := dst.(*buf)
	switch x.dt {
	case engine.F32:
		d := x.f32
		b.parallel(len(d), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				d[i] = v
			}
		})
	case engine.F64:
		for i := range x.f64 {
			x.f64[i] = float64(v)
		}
	case engine.I32:
		for i := range x.i32 {
			x.i32[i] = int32(v)
		}
	}
}
