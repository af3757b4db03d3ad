package gemm

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// splitK returns the depth of the K blocks for a given kernel. The blocks
// are balanced (k=1552 with kc=256 gives 7 blocks of 222, not 6 of 256 and
// one of 16) so that no block is too shallow to amortise loading and
// storing the C tile. The partition depends only on k and the kernel, never
// on the thread count: this is what keeps results deterministic.
func splitK(k, kc int) int {
	nb := ceilDiv(k, kc)
	return ceilDiv(k, nb)
}

// blockWidth returns the N block width: the kernel's nc, or less for narrow C.
func blockWidth(n int, kern *kernel) int {
	return min(kern.nc, ceilDiv(n, kern.nr)*kern.nr)
}

// gemmSerial computes the whole problem on the calling goroutine.
func gemmSerial(p *problem, kern *kernel, ws *workspace) {
	mr, nr := kern.mr, kern.nr
	mTiles := ceilDiv(p.m, mr)
	kcs := splitK(p.k, kern.kc)
	nc := blockWidth(p.n, kern)
	ws.ap = grow(ws.ap, mTiles*mr*kcs)
	ws.bp = grow(ws.bp, nc*kcs)
	ws.tile = grow(ws.tile, mr*nr)
	for pc := 0; pc < p.k; pc += kcs {
		kcb := min(kcs, p.k-pc)
		for ir := 0; ir < mTiles; ir++ {
			p.packA(kern, ws.ap[ir*mr*kcb:], ir*mr, pc, kcb)
		}
		for jc := 0; jc < p.n; jc += nc {
			nTiles := ceilDiv(min(nc, p.n-jc), nr)
			for jr := 0; jr < nTiles; jr++ {
				p.packB(kern, ws.bp[jr*nr*kcb:], jc+jr*nr, pc, kcb)
			}
			for ir := 0; ir < mTiles; ir++ {
				p.computeRow(kern, ws.ap, ws.bp, ws.tile, ir, 0, nTiles, jc, pc, kcb)
			}
		}
	}
}

// maxGatherLd bounds leading dimensions for the gather-based packing, whose
// row offsets (up to 15*ld) are 32-bit indices.
const maxGatherLd = (1<<31 - 1) / 16

// packA copies rows i0..i0+mr of op(A), columns pc..pc+kcb, into dst as a
// micro-panel laid out k-major ([q][i], mr values per k step) so that the
// kernel reads it sequentially. Rows past m are zero so edge tiles can use
// the full-size kernel.
func (p *problem) packA(kern *kernel, dst []float32, i0, pc, kcb int) {
	mr := kern.mr
	mv := min(mr, p.m-i0)
	dst = dst[:mr*kcb]
	if kern.vecPack && p.lda <= maxGatherLd {
		if p.transA {
			packCopyAVX512(&dst[0], &p.a[pc*p.lda+i0], p.lda, mv, mr, kcb, mr)
		} else {
			packGatherAVX512(&dst[0], &p.a[i0*p.lda+pc], p.lda, mv, mr, kcb, mr)
		}
		return
	}
	if p.transA {
		// op(A)[i][q] = A[pc+q][i0+i]: each k step is a contiguous run.
		for q := 0; q < kcb; q++ {
			d := dst[q*mr : q*mr+mr]
			copy(d, p.a[(pc+q)*p.lda+i0:][:mv])
			clear(d[mv:])
		}
		return
	}
	// op(A)[i][q] = A[i0+i][pc+q]: read rows, scatter with stride mr.
	for i := 0; i < mv; i++ {
		src := p.a[(i0+i)*p.lda+pc:][:kcb]
		d := dst[i:]
		for q, v := range src {
			d[q*mr] = v
		}
	}
	if mv < mr {
		for q := 0; q < kcb; q++ {
			clear(dst[q*mr+mv : q*mr+mr])
		}
	}
}

// packB copies columns j0..j0+nr of op(B), rows pc..pc+kcb, into dst as a
// micro-panel laid out [q][j] (nr values per k step, one or more vector
// loads in the kernel). Columns past n are zero.
func (p *problem) packB(kern *kernel, dst []float32, j0, pc, kcb int) {
	nr := kern.nr
	nv := min(nr, p.n-j0)
	dst = dst[:nr*kcb]
	if kern.vecPack && p.ldb <= maxGatherLd {
		// The AVX-512 routines handle at most 16 lanes: pack in halves.
		for h := 0; h < nr; h += 16 {
			w := min(16, nr-h)
			cnt := min(max(nv-h, 0), w)
			src := &p.b[0] // not read when cnt == 0
			if cnt > 0 {
				if p.transB {
					src = &p.b[(j0+h)*p.ldb+pc]
				} else {
					src = &p.b[pc*p.ldb+j0+h]
				}
			}
			if p.transB {
				packGatherAVX512(&dst[h], src, p.ldb, cnt, w, kcb, nr)
			} else {
				packCopyAVX512(&dst[h], src, p.ldb, cnt, w, kcb, nr)
			}
		}
		return
	}
	if !p.transB {
		// op(B)[q][j] = B[pc+q][j0+j]: each k step is a contiguous run.
		for q := 0; q < kcb; q++ {
			d := dst[q*nr : q*nr+nr]
			copy(d, p.b[(pc+q)*p.ldb+j0:][:nv])
			clear(d[nv:])
		}
		return
	}
	// op(B)[q][j] = B[j0+j][pc+q]: read rows of B, scatter with stride nr.
	for j := 0; j < nv; j++ {
		src := p.b[(j0+j)*p.ldb+pc:][:kcb]
		d := dst[j:]
		for q, v := range src {
			d[q*nr] = v
		}
	}
	if nv < nr {
		for q := 0; q < kcb; q++ {
			clear(dst[q*nr+nv : q*nr+nr])
		}
	}
}

// computeRow runs the micro-kernel for A micro-panel ir against B
// micro-panels jr0..jr1 of the current N block starting at column jc.
// The first K block applies beta; later ones accumulate (beta = 1).
// Partial tiles are computed into the scratch tile with beta = 0 and merged
// with exactly the rounding steps the kernel uses for full tiles
// (t = alpha*acc; C = beta*C + t), so tile position never changes results.
func (p *problem) computeRow(kern *kernel, ap, bp, tile []float32, ir, jr0, jr1, jc, pc, kcb int) {
	mr, nr := kern.mr, kern.nr
	i0 := ir * mr
	mv := min(mr, p.m-i0)
	beta := p.beta
	if pc > 0 {
		beta = 1
	}
	a := &ap[ir*mr*kcb]
	for jr := jr0; jr < jr1; jr++ {
		j0 := jc + jr*nr
		nv := min(nr, p.n-j0)
		b := &bp[jr*nr*kcb]
		if mv == mr && nv == nr {
			kern.fn(kcb, a, b, &p.c[i0*p.ldc+j0], p.ldc, p.alpha, beta)
			continue
		}
		kern.fn(kcb, a, b, &tile[0], nr, p.alpha, 0)
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
}
