// Package gemm is the single-precision matrix multiply used by the CPU
// backend for every matmul.
//
// The implementation follows the usual packed, cache-blocked scheme:
//
//	for each K block (kc deep)
//	  for each chunk of op(A) rows              -> packed into micro-panels (mr rows)
//	    for each N block (nc wide)              -> op(B) block packed once per K block (sized for L2)
//	      for each A micro-panel (mr rows)      -> stays in L1 for the whole sweep
//	        for each B micro-panel (nr columns) -> streamed from L2
//	          micro-kernel: mr x nr tile of C held in registers
//
// With several threads, C is cut into slabs along M or N (slab.go): the
// operand along the cut is packed privately by the slab's thread, the
// other is packed once, by whichever thread first needs each group of its
// panels, and shared; there is no barrier between K blocks. The cut only
// changes who computes a tile, never how: every element of C is produced
// by exactly one micro-kernel call per K block, the K blocks are visited
// in a fixed order, and the K partition depends only on k and the kernel
// variant. Results are therefore bit-identical for any thread count or
// scheduling.
//
// A product with a short, ragged N against a long M is computed
// transposed, C^T = op(B)^T op(A)^T, so that the short side runs along
// the kernel's rows, where it wastes fewer lanes (swap.go).
package gemm

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Sgemm computes C = alpha * op(A) * op(B) + beta * C for row-major matrices.
// op(A) is m x k (A is m x k with row stride lda, or k x m when transA);
// op(B) is k x n (B is k x n with row stride ldb, or n x k when transB);
// C is m x n with row stride ldc. beta == 0 means C is overwritten (NaNs in C ignored).
//
// Sgemm is safe for concurrent use; a call that finds the worker pool busy
// runs on the calling goroutine alone (with identical results).
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(activeKernel(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// sgemm is Sgemm with the given micro-kernel (SgemmBF16 passes the bf16 one).
func sgemm(kern *kernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	pr := problem{
		transA: transA, transB: transB,
		m: m, n: n, k: k,
		alpha: alpha, beta: beta,
		a: a, b: b, c: c,
		lda: lda, ldb: ldb, ldc: ldc,
	}
	solve(kern, &pr)
}

// solve validates and computes one problem (sgemm, SgemmBF16Mixed).
func solve(kern *kernel, pr *problem) {
	pr.validate(0, 0, 0, 1)
	m, n, k := pr.m, pr.n, pr.k
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || pr.alpha == 0 {
		pr.scaleC()
		return
	}
	if sw, ok := pr.swapped(kern); ok {
		pr = &sw
	}
	nt := int(threads.Load())
	if nt > 1 && m*n*k >= minParallelWork && thePool.mu.TryLock() {
		thePool.ensure(nt)
		thePool.gemmParallel(pr, kern, nt)
		thePool.mu.Unlock()
		return
	}
	ws := getSpare()
	ws.serial.runSerial(pr, kern, ws)
	putSpare(ws)
}

// SgemmStridedBatched runs batch independent Sgemms; matrix i of A starts at a[i*strideA:], likewise B and C.
//
// Small matrices are distributed whole over the workers (each computed
// serially); large ones are run one after another, each using all workers.
// Either way every matrix is computed exactly as Sgemm would.
func SgemmStridedBatched(transA, transB bool, m, n, k int, alpha float32, a []float32, lda, strideA int, b []float32, ldb, strideB int, beta float32, c []float32, ldc, strideC int, batch int) {
	sgemmStridedBatched(activeKernel(), transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, batch)
}

// sgemmStridedBatched is SgemmStridedBatched with the given micro-kernel.
func sgemmStridedBatched(kern *kernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda, strideA int, b []float32, ldb, strideB int, beta float32, c []float32, ldc, strideC int, batch int) {
	pr := problem{
		transA: transA, transB: transB,
		m: m, n: n, k: k,
		alpha: alpha, beta: beta,
		a: a, b: b, c: c,
		lda: lda, ldb: ldb, ldc: ldc,
	}
	solveBatched(kern, &pr, strideA, strideB, strideC, batch)
}

// solveBatched computes batch problems like pr, operand i offset by i
// strides (sgemmStridedBatched, SgemmStridedBatchedBF16Mixed).
func solveBatched(kern *kernel, pr *problem, strideA, strideB, strideC, batch int) {
	if batch < 0 {
		panic(fmt.Sprintf("gemm: batch = %d < 0", batch))
	}
	m, n, k := pr.m, pr.n, pr.k
	pr.validate(strideA, strideB, strideC, batch)
	if batch == 0 || m == 0 || n == 0 {
		return
	}
	bt := batched{pr: *pr, strideA: strideA, strideB: strideB, strideC: strideC, batch: batch}
	if sw, ok := pr.swapped(kern); ok {
		bt.pr, bt.strideA, bt.strideB = sw, strideB, strideA
	}
	nt := int(threads.Load())
	if nt > 1 && batch*m*n*k >= minParallelWork && thePool.mu.TryLock() {
		thePool.ensure(nt)
		thePool.batchedParallel(&bt, kern, nt)
		thePool.mu.Unlock()
		return
	}
	ws := getSpare()
	for i := 0; i < batch; i++ {
		sub := bt.item(i)
		sub.run(kern, ws)
	}
	putSpare(ws)
}

// SetThreads sets the number of worker goroutines (default runtime.GOMAXPROCS(0)).
// Values below 1 are treated as 1. The thread count never changes results.
func SetThreads(n int) {
	if n < 1 {
		n = 1
	}
	threads.Store(int64(n))
}

// minParallelWork is the m*n*k below which waking workers costs more than
// it saves: 128^3 multiply-adds are about 20 microseconds on one core,
// while a wake-up and the final hand-back cost several microseconds each,
// and far more when the cores are oversubscribed.
const minParallelWork = 128 * 128 * 128

var threads atomic.Int64

func init() {
	threads.Store(int64(runtime.GOMAXPROCS(0)))
}

// problem is one GEMM call's arguments.
type problem struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	// a16 and b16, when not nil, hold A and B as bf16 bit patterns in
	// place of a and b (SgemmBF16Mixed); the packing reads them (mixed.go).
	a16, b16 []uint16
	// c16, when not nil, is C stored as bf16 (SgemmBF16MixedC16): c is
	// then float32 scratch in C's layout, and each tile of the result is
	// rounded into c16 once its last K block is done (c16.go).
	c16 []uint16
	// transC marks a problem computed with the roles of A and B
	// exchanged (see swapped): element (i, j) of its product is stored at
	// c[j*ldc+i] (and c16[j*ldc+i]), in the caller's C.
	transC bool
}

// lenA and lenB are the lengths of the operands in whichever form they
// are given.
func (p *problem) lenA() int {
	if p.a16 != nil {
		return len(p.a16)
	}
	return len(p.a)
}

func (p *problem) lenB() int {
	if p.b16 != nil {
		return len(p.b16)
	}
	return len(p.b)
}

// need returns the number of elements a rows x cols row-major matrix with
// row stride ld spans.
func need(rows, cols, ld int) int {
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}

// validate panics with a message naming the offending argument when the
// slices cannot hold batch matrices at the given strides.
func (p *problem) validate(strideA, strideB, strideC, batch int) {
	if p.m < 0 || p.n < 0 || p.k < 0 {
		panic(fmt.Sprintf("gemm: negative dimension m=%d n=%d k=%d", p.m, p.n, p.k))
	}
	ar, ac := p.m, p.k
	if p.transA {
		ar, ac = p.k, p.m
	}
	br, bc := p.k, p.n
	if p.transB {
		br, bc = p.n, p.k
	}
	check := func(name string, rows, cols, ld, stride, have int) {
		if ld < max(cols, 1) {
			panic(fmt.Sprintf("gemm: ld%s = %d < %d", name, ld, max(cols, 1)))
		}
		n := need(rows, cols, ld)
		if n > 0 && batch > 1 {
			if stride < 0 {
				panic(fmt.Sprintf("gemm: stride%s = %d < 0", name, stride))
			}
			n += (batch - 1) * stride
		}
		if have < n {
			panic(fmt.Sprintf("gemm: len(%s) = %d, need %d", name, have, n))
		}
	}
	if p.k > 0 && p.alpha != 0 {
		check("a", ar, ac, p.lda, strideA, p.lenA())
		check("b", br, bc, p.ldb, strideB, p.lenB())
	}
	if p.c16 == nil {
		check("c", p.m, p.n, p.ldc, strideC, len(p.c))
		return
	}
	check("c16", p.m, p.n, p.ldc, strideC, len(p.c16))
	if p.c != nil {
		check("c", p.m, p.n, p.ldc, strideC, len(p.c))
	}
}

// scaleC performs C = beta*C, the whole operation when k == 0 or alpha == 0.
func (p *problem) scaleC() {
	if p.c16 != nil {
		p.scaleC16()
		return
	}
	for i := 0; i < p.m; i++ {
		row := p.c[i*p.ldc : i*p.ldc+p.n]
		if p.beta == 0 {
			clear(row)
			continue
		}
		if p.beta == 1 {
			continue
		}
		for j := range row {
			row[j] *= p.beta
		}
	}
}

// run computes one problem serially with the given workspace.
func (p *problem) run(kern *kernel, ws *workspace) {
	if p.k == 0 || p.alpha == 0 {
		p.scaleC()
		return
	}
	ws.serial.runSerial(p, kern, ws)
}

// batched is a strided batch of problems.
type batched struct {
	pr                        problem
	strideA, strideB, strideC int
	batch                     int
}

// item returns matrix i of the batch as a standalone problem.
func (bt *batched) item(i int) problem {
	p := bt.pr
	if p.k > 0 && p.alpha != 0 {
		if p.a16 != nil {
			p.a16 = p.a16[i*bt.strideA:]
		} else {
			p.a = p.a[i*bt.strideA:]
		}
		if p.b16 != nil {
			p.b16 = p.b16[i*bt.strideB:]
		} else {
			p.b = p.b[i*bt.strideB:]
		}
	}
	if p.c != nil { // nil only as the unneeded scratch of a bf16 C
		p.c = p.c[i*bt.strideC:]
	}
	if p.c16 != nil {
		p.c16 = p.c16[i*bt.strideC:]
	}
	return p
}

// workspace holds one goroutine's packing buffers. They only grow, so a
// steady stream of calls allocates nothing.
type workspace struct {
	ap      []float32 // private packed A panels (a chunk of an M slab)
	bp      []float32 // private packed B: one kc x nc block of an N slab
	tile    []float32 // mr x nr scratch tile for partial edge tiles, then room for a transposed one (tileTSize)
	pending []int     // shared groups another thread is still packing
	serial  plan      // the plan of calls computed on this workspace alone
}

func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// spare workspaces for serial calls, kept on a plain free list (not a
// sync.Pool, which the GC may empty and force a fresh allocation).
var spare struct {
	mu   sync.Mutex
	list []*workspace
}

func getSpare() *workspace {
	spare.mu.Lock()
	defer spare.mu.Unlock()
	if n := len(spare.list); n > 0 {
		ws := spare.list[n-1]
		spare.list = spare.list[:n-1]
		return ws
	}
	return new(workspace)
}

func putSpare(ws *workspace) {
	spare.mu.Lock()
	spare.list = append(spare.list, ws)
	spare.mu.Unlock()
}
