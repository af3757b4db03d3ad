package gemm

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// splitK returns the depth of the K blocks for a given kernel. The blocks
// are balanced (k=1552 with kc=256 gives 6 blocks of 224 and one of 208,
// not 6 of 256 and one of 16) so that no block is too shallow to amortise
// loading and storing the C tile, and rounded up to a multiple of 16, the
// width of the vector transpose used when packing, so that only a k that is
// not itself a multiple of 16 leaves a scalar packing tail. The partition
// depends only on k and the kernel, never on the thread count: this is what
// keeps results deterministic.
func splitK(k, kc int) int {
	nb := ceilDiv(k, kc)
	return min(k, (ceilDiv(k, nb)+15)&^15)
}

// blockWidth returns the N block width: the kernel's nc, or less for narrow C.
func blockWidth(n int, kern *kernel) int {
	return min(kern.nc, ceilDiv(n, kern.nr)*kern.nr)
}

// Panels are packed in groups of this many, so that the contiguous cases
// read runs of several panels per source row (see packCopyTiles).
const (
	// packGroupA is the A chunk of an M slab with a single N block (see
	// plan.setup).
	packGroupA = 8
	// packGroupB is the shared group of B panels of an M cut.
	packGroupB = 4
	// fusedGroup is the shared group of A panels of an N cut: smaller
	// than packGroupA so that threads starting at different groups of a
	// 512-row product (37 panels) rarely meet.
	fusedGroup = 4
)

// packATiles packs A micro-panels t0..t1-1 of the K block at pc; panel t
// goes to ap[(t-t0)*ms*kcb:].
func (p *problem) packATiles(kern *kernel, ap []float32, t0, t1, pc, kcb int) {
	if p.a16 != nil {
		p.packATiles16(kern, ap, t0, t1, pc, kcb)
		return
	}
	if kern.bf16 {
		p.packATilesBF16(kern, ap, t0, t1, pc, kcb)
		return
	}
	p.packATilesFP32(kern, ap, t0, t1, pc, kcb)
}

// packATilesFP32 is packATiles in the fp32 layout, or in bf16FMAKernel's
// (rounded to bf16 values, rows exchanged in pairs: see roundSwapRows).
func (p *problem) packATilesFP32(kern *kernel, ap []float32, t0, t1, pc, kcb int) {
	ms, mr := kern.ms, kern.mr
	first := t0
	if p.transA && kern.vecPack && ms == 16 {
		// Full panels (all mr rows valid) row by row across the group.
		full := min(t1, p.m/mr)
		if full > t0 {
			_ = p.a[(pc+kcb-1)*p.lda+full*mr-1]
			_ = ap[(full-first)*ms*kcb-1]
			copyTiles(kern)(&ap[0], &p.a[pc*p.lda+t0*mr], p.lda, kcb, full-t0, mr, ms*kcb, 1, 1<<mr-1, ms*4)
			t0 = full
		}
	}
	for t := t0; t < t1; t++ {
		p.packA(kern, ap[(t-first)*ms*kcb:], t*mr, pc, kcb)
	}
}

// packBPanels packs B micro-panels t0..t1-1 of the N block at jc and the K
// block at pc into bp.
func (p *problem) packBPanels(kern *kernel, bp []float32, jc, t0, t1, pc, kcb int) {
	if p.b16 != nil {
		p.packBPanels16(kern, bp, jc, t0, t1, pc, kcb)
		return
	}
	if kern.bf16 {
		p.packBPanelsBF16(kern, bp, jc, t0, t1, pc, kcb)
		return
	}
	p.packBPanelsFP32(kern, bp, jc, t0, t1, pc, kcb)
}

// packBPanelsFP32 is packBPanels in the fp32 layout, or in
// bf16FMAKernel's (see packATilesFP32).
func (p *problem) packBPanelsFP32(kern *kernel, bp []float32, jc, t0, t1, pc, kcb int) {
	nr := kern.nr
	if !p.transB && kern.vecPack && nr == 32 {
		full := min(t1, (p.n-jc)/nr)
		if full > t0 {
			_ = p.b[(pc+kcb-1)*p.ldb+jc+full*nr-1]
			_ = bp[full*nr*kcb-1]
			copyTiles(kern)(&bp[t0*nr*kcb], &p.b[pc*p.ldb+jc+t0*nr], p.ldb, kcb, full-t0, nr, nr*kcb, 2, 0xffff, nr*4)
			t0 = full
		}
	}
	for t := t0; t < t1; t++ {
		p.packB(kern, bp[t*nr*kcb:], jc+t*nr, pc, kcb)
	}
}

// packA copies rows i0..i0+mr of op(A), columns pc..pc+kcb, into dst as a
// micro-panel laid out k-major ([q][i], ms >= mr values per k step) so that the
// kernel reads it sequentially. Rows past m are zero so edge tiles can use
// the full-size kernel.
func (p *problem) packA(kern *kernel, dst []float32, i0, pc, kcb int) {
	ms := kern.ms
	mv := min(kern.mr, p.m-i0)
	dst = dst[:ms*kcb]
	if p.transA {
		// op(A)[i][q] = A[pc+q][i0+i]: each k step is a contiguous run.
		packCopy(kern, dst, p.a[pc*p.lda+i0:], p.lda, mv, ms, kcb, ms)
		if kern.bf16FMA {
			roundSwapRows(kern, dst, kcb, ms, ms)
		}
		return
	}
	// op(A)[i][q] = A[i0+i][pc+q]: a transpose of mv source rows.
	packTrans(kern, dst, p.a[i0*p.lda+pc:], p.lda, mv, ms, kcb, ms)
}

// packB copies columns j0..j0+nr of op(B), rows pc..pc+kcb, into dst as a
// micro-panel laid out [q][j] (nr values per k step, one or more vector
// loads in the kernel). Columns past n are zero. The work is done in slices
// of at most 16 columns, the width of the vector packing routines.
func (p *problem) packB(kern *kernel, dst []float32, j0, pc, kcb int) {
	nr := kern.nr
	nv := min(nr, p.n-j0)
	dst = dst[:nr*kcb]
	for h := 0; h < nr; h += 16 {
		w := min(16, nr-h)
		cnt := min(max(nv-h, 0), w)
		if cnt == 0 {
			for q := 0; q < kcb; q++ {
				clear(dst[q*nr+h : q*nr+h+w])
			}
			continue
		}
		if p.transB {
			// op(B)[q][j] = B[j0+j][pc+q]: a transpose of cnt source rows.
			packTrans(kern, dst[h:], p.b[(j0+h)*p.ldb+pc:], p.ldb, cnt, w, kcb, nr)
		} else {
			// op(B)[q][j] = B[pc+q][j0+j]: each k step is a contiguous run.
			packCopy(kern, dst[h:], p.b[pc*p.ldb+j0+h:], p.ldb, cnt, w, kcb, nr)
		}
	}
	if kern.bf16FMA && !p.transB {
		roundSwapRows(kern, dst, kcb, nr, nr)
	}
}

// packCopy writes dst[q*ds+j] = src[q*ld+j] for q < kc, j < cols, and zero
// for cols <= j < width.
func packCopy(kern *kernel, dst, src []float32, ld, cols, width, kc, ds int) {
	_ = src[(kc-1)*ld+cols-1]
	_ = dst[(kc-1)*ds+width-1]
	if kern.vecPack && width <= 16 {
		packCopyAVX512(&dst[0], &src[0], ld, cols, width, kc, ds)
		return
	}
	for q := 0; q < kc; q++ {
		d := dst[q*ds : q*ds+width]
		copy(d, src[q*ld:q*ld+cols])
		clear(d[cols:])
	}
}

// copyTiles returns the routine that packs full panels of the contiguous
// case in kern's format: packCopyTiles, or packCopyTilesRS for
// bf16FMAKernel.
func copyTiles(kern *kernel) func(dst, src *float32, ld, kc, tiles, srcAdv, dstAdv, vecs, mask, step int) {
	if kern.bf16FMA {
		return packCopyTilesRS
	}
	return packCopyTiles
}

// packTrans writes dst[q*ds+i] = src[i*ld+q] for q < kc, i < rows, and zero
// for rows <= i < width; for bf16FMAKernel, then rounded and its rows
// exchanged in pairs (roundSwapRows), in the same pass where vector.
func packTrans(kern *kernel, dst, src []float32, ld, rows, width, kc, ds int) {
	_ = src[(rows-1)*ld+kc-1]
	_ = dst[(kc-1)*ds+width-1]
	if kern.vecPack && width <= 16 {
		rs := 0
		if kern.bf16FMA {
			rs = 1
		}
		packTransAVX512(&dst[0], &src[0], ld, rows, width, kc, ds, rs)
		return
	}
	for i := 0; i < rows; i++ {
		s := src[i*ld : i*ld+kc]
		d := dst[i:]
		for q, v := range s {
			d[q*ds] = v
		}
	}
	if rows < width {
		for q := 0; q < kc; q++ {
			clear(dst[q*ds+rows : q*ds+width])
		}
	}
	if kern.bf16FMA {
		roundSwapRows(kern, dst, kc, width, ds)
	}
}

// computeRow runs the micro-kernel for the A micro-panel ir, whose k steps
// start at a and are sa bytes apart (a packed panel: sa = ms*4), against
// B micro-panels jr0..jr1 of the current N block starting at column jc:
// packed panel jr at bp[jr*nr*kcb:], or, with directB, every full panel
// read in place from op(B) = B (see plan.direct).
// The first K block applies beta; later ones accumulate (beta = 1).
// Partial tiles are computed into the scratch tile with beta = 0 and merged
// with exactly the rounding steps the kernel uses for full tiles
// (t = alpha*acc; C = beta*C + t), so tile position never changes results.
// A transposed problem (transC) stores every tile through the scratch tile
// (computeTileT).
func (p *problem) computeRow(kern *kernel, a *float32, sa int, bp []float32, directB bool, tile []float32, ir, jr0, jr1, jc, pc, kcb int) {
	if p.c16 != nil {
		p.computeRow16(kern, a, sa, bp, directB, tile, ir, jr0, jr1, jc, pc, kcb)
		return
	}
	p.computeRowF32(kern, a, sa, bp, directB, tile, ir, jr0, jr1, jc, pc, kcb)
}

// bPanel returns tile column jr's B panel and the bytes between its k
// steps: B itself, read in place, when directB and the panel is full
// (columns j0 to j0+nr of K block pc), else its packed copy in bp.
func (p *problem) bPanel(bp []float32, directB bool, jr, nr, j0, nv, pc, kcb int) (*float32, int) {
	if directB && nv == nr {
		return &p.b[pc*p.ldb+j0], p.ldb * 4
	}
	return &bp[jr*nr*kcb], nr * 4
}

// computeRowF32 is computeRow into the float32 C.
func (p *problem) computeRowF32(kern *kernel, a *float32, sa int, bp []float32, directB bool, tile []float32, ir, jr0, jr1, jc, pc, kcb int) {
	mr, nr := kern.mr, kern.nr
	i0 := ir * mr
	mv := min(mr, p.m-i0)
	beta := p.beta
	if pc > 0 {
		beta = 1
	}
	packedA := sa == kern.ms*4
	for jr := jr0; jr < jr1; jr++ {
		j0 := jc + jr*nr
		nv := min(nr, p.n-j0)
		b, sb := p.bPanel(bp, directB, jr, nr, j0, nv, pc, kcb)
		if p.transC {
			p.computeTileT(kern, a, sa, b, sb, tile, i0, j0, mv, nv, kcb, beta)
			continue
		}
		if !packedA || sb != nr*4 {
			if mv == mr && nv == nr {
				kern.strided(kcb, a, b, &p.c[i0*p.ldc+j0], p.ldc, p.alpha, beta, sa, sb)
				continue
			}
			kern.strided(kcb, a, b, &tile[0], nr, p.alpha, 0, sa, sb)
			p.mergeTile(tile, nr, i0, j0, mv, nv, beta)
			continue
		}
		fn, w := kern.fn, nr
		if nv <= kern.edgeN {
			fn, w = kern.edge, kern.edgeN
		}
		if mv == mr && nv == w {
			fn(kcb, a, b, &p.c[i0*p.ldc+j0], p.ldc, p.alpha, beta)
			continue
		}
		fn(kcb, a, b, &tile[0], nr, p.alpha, 0)
		p.mergeTile(tile, nr, i0, j0, mv, nv, beta)
	}
}

// mergeTile stores the mv x nv corner of a scratch tile whose rows are nr
// apart (alpha already applied) into C at (i0, j0): C = t, or
// C = beta*C + t.
func (p *problem) mergeTile(tile []float32, nr, i0, j0, mv, nv int, beta float32) {
	for i := 0; i < mv; i++ {
		row := p.c[(i0+i)*p.ldc+j0:][:nv]
		t := tile[i*nr:][:nv]
		if beta == 0 {
			copy(row, t)
			continue
		}
		for j, v := range t {
			row[j] = float32(beta*row[j]) + v
		}
	}
}
