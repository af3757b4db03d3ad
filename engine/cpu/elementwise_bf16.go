package cpu

import (
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// The bf16 paths of Copy2D, Transpose, Add, Add3 and Gemm
// (engine.BF16Activations; bf16act.go). Each runs only when an operand is
// BF16, chosen once per call, so the float32 paths are the ones they were.

// bf16Block is the run of elements Add and Add3 widen, sum and round at
// a time when an operand is BF16: four 4 KB scratch slots per worker,
// resident in L1. Elementwise sums do not depend on how they are cut.
const bf16Block = 1024

// runMixed is Add with BF16 operands: each block of a and b is read
// (widened into scratch when BF16) before dst's block is written, so dst
// may alias a or b; the sum is add's, a BF16 dst rounded from it.
func (j *addJob) runMixed(w, lo, hi int) {
	s := &j.ws[w]
	sp, sq, sd := s.slot(0, bf16Block), s.slot(1, bf16Block), s.slot(2, bf16Block)
	for i := lo; i < hi; i += bf16Block {
		e := min(i+bf16Block, hi)
		p, q := j.po.load(sp, i, e), j.qo.load(sq, i, e)
		d := j.do.dst(sd, i, e)
		add(d, p, q)
		j.do.store(d, i)
	}
}

// runMixed is Add3 with BF16 operands, block by block as addJob.runMixed:
// (a + b) + c by the same two vector adds, a BF16 dst rounded once.
func (j *add3Job) runMixed(w, lo, hi int) {
	s := &j.ws[w]
	sp, sq, sr, sd := s.slot(0, bf16Block), s.slot(1, bf16Block), s.slot(2, bf16Block), s.slot(3, bf16Block)
	for i := lo; i < hi; i += bf16Block {
		e := min(i+bf16Block, hi)
		p, q, r := j.po.load(sp, i, e), j.qo.load(sq, i, e), j.ro.load(sr, i, e)
		d := j.do.dst(sd, i, e)
		add(d, p, q)
		add(d, d, r)
		j.do.store(d, i)
	}
}

// runMixed is Copy2D with a BF16 side.
func (j *copyJob) runMixed(lo, hi int) {
	if j.oneRow {
		j.move(lo, lo, hi-lo)
		return
	}
	for r := lo; r < hi; r++ {
		j.move(r*j.dStride, r*j.sStride, j.nc)
	}
}

// move copies n elements from j.so at so to j.do at do: the bits from
// bf16 to bf16, widened from bf16 to float32, rounded from float32 to
// bf16 (a bf16 widened and rounded is the same bf16, so the first is the
// contract's widen-then-round).
func (j *copyJob) move(do, so, n int) {
	switch {
	case j.do.is16 && j.so.is16:
		copy(j.do.h[do:do+n], j.so.h[so:so+n])
	case j.do.is16:
		narrowBF16(j.do.h[do:do+n], j.so.f[so:so+n])
	case j.so.is16:
		widenBF16s(j.do.f[do:do+n], j.so.h[so:so+n])
	default:
		copy(j.do.f[do:do+n], j.so.f[so:so+n])
	}
}

// transposeChunk is how many columns of a band of BF16 source rows
// Transpose widens at a time: 32 rows of 256 floats (32 KB), so that each
// widening call converts a run long enough to amortise it.
const transposeChunk = 8 * transposeTileSize

// runMixed is Transpose with a BF16 side, a band of source rows at a
// time: a BF16 source is widened, transposeChunk columns at a time, into
// the worker's scratch; each tile is transposed by transposeTile, into
// the float32 destination, or for a BF16 one into a scratch tile rounded
// row by row into place. Values move exactly: widening is exact, and the
// rounding of a widened bf16 is that bf16 (every stored bf16 comes out of
// roundBF16, so it is no signalling NaN).
func (j *transposeJob) runMixed(w, lo, hi int) {
	const tile, chunk = transposeTileSize, transposeChunk
	rows, cols := j.rows, j.cols
	s := &j.ws[w]
	in, out := s.slot(0, tile*chunk), s.f32[tile*chunk:tile*chunk+tile*tile]
	for t := lo; t < hi; t++ {
		bi, r0 := t/j.bands, (t%j.bands)*tile
		base := bi * rows * cols
		nr := min(r0+tile, rows) - r0
		for k0 := 0; k0 < cols; k0 += chunk {
			kn := min(k0+chunk, cols) - k0
			var src []float32
			lds := cols
			if j.so.is16 {
				for r := range nr {
					o := base + (r0+r)*cols + k0
					widenBF16s(in[r*chunk:r*chunk+kn], j.so.h[o:o+kn])
				}
				src, lds = in, chunk
			} else {
				src = j.so.f[base+r0*cols+k0:]
			}
			for c0 := 0; c0 < kn; c0 += tile {
				nc := min(c0+tile, kn) - c0
				do := base + (k0+c0)*rows + r0
				if !j.do.is16 {
					transposeTile(j.do.f[do:], rows, src[c0:], lds, nr, nc)
					continue
				}
				transposeTile(out, tile, src[c0:], lds, nr, nc)
				for c := range nc {
					narrowBF16(j.do.h[do+c*rows:do+c*rows+nr], out[c*tile:c*tile+nr])
				}
			}
		}
	}
}

// gemmCJob moves the M x N matrices of a Gemm's C (rows of n elements at
// row stride ldc, matrices strideC apart, m rows each) between a BF16
// buffer and its float32 scratch of the same layout: widening the stored
// C into the scratch (widen set) or rounding the product into C.
type gemmCJob struct {
	f                  []float32
	h                  []uint16
	m, n, ldc, strideC int
	widen              bool
}

func (j *gemmCJob) run(_, lo, hi int) {
	for r := lo; r < hi; r++ {
		o := r/j.m*j.strideC + r%j.m*j.ldc
		if j.widen {
			widenBF16s(j.f[o:o+j.n], j.h[o:o+j.n])
		} else {
			narrowBF16(j.h[o:o+j.n], j.f[o:o+j.n])
		}
	}
}

// gemmIntoBF16 runs a Gemm whose C is BF16 (engine.BF16Activations):
// the float32 product (with Beta != 0 from the stored C widened) rounded
// into C once. In the bf16 GEMM mode the GEMM rounds each tile as soon as
// its last K block is done (gemm.SgemmBF16MixedC16), so only a product
// whose K spans several K blocks needs float32 scratch, for its partial
// sums; in fp32 the product goes to the scratch, which is then rounded
// into C in parallel. The scratch, b.gemmC, is laid out as C (nc
// elements, C's leading dimension and stride, so the GEMM is the one a
// float32 C would get), grown on demand and kept. Only the M x N elements
// of each matrix are read and written; C's other elements are left as
// they are.
func (b *Backend) gemmIntoBF16(g engine.Gemm, batch, na, nb, nc int) {
	c16 := bf16s(g.C)
	if b.gemm == GemmBF16 {
		var c []float32
		if gemm.C16NeedsScratch(g.K) {
			c = b.gemmScratchC(nc)
		}
		a, a16 := gemmBF16Operand(g.A)
		bb, b16 := gemmBF16Operand(g.B)
		if batch == 1 {
			gemm.SgemmBF16MixedC16(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, a16, g.Lda, bb, b16, g.Ldb, g.Beta, c16, c, g.Ldc)
		} else {
			gemm.SgemmStridedBatchedBF16MixedC16(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, a16, g.Lda, g.StrideA, bb, b16, g.Ldb, g.StrideB, g.Beta, c16, c, g.Ldc, g.StrideC, batch)
		}
		return
	}
	c := b.gemmScratchC(nc)
	j := &b.jobs.gemmC
	*j = gemmCJob{f: c, h: c16, m: g.M, n: g.N, ldc: g.Ldc, strideC: g.StrideC, widen: true}
	rows, grain := batch*g.M, rowGrain(g.N)
	if g.Beta != 0 {
		b.pool.run(j, rows, grain)
	}
	b.gemmF32(g, batch, na, nb, c)
	j.widen = false
	b.pool.run(j, rows, grain)
	*j = gemmCJob{}
}

// gemmScratchC returns n elements of b.gemmC, grown on demand and kept.
func (b *Backend) gemmScratchC(n int) []float32 {
	if cap(b.gemmC) < n {
		b.gemmC = make([]float32, n)
	}
	return b.gemmC[:n]
}
