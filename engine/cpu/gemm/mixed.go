package gemm

// The bf16 GEMM with operands stored as bf16. A caller that keeps an
// operand as bf16 bit patterns (the CPU backend's bf16 storage) would
// otherwise widen it into an fp32 copy for SgemmBF16, which rounds it
// straight back to the same bf16 while packing: a pass over the whole
// operand through memory. SgemmBF16Mixed packs such an operand from its
// bf16 form instead. Each micro-panel is built a K chunk at a time
// (chunk16 steps): the chunk's bf16 values are widened into a small
// buffer on the stack, in the source's own orientation, and the fp32
// packing routines of SgemmBF16 turn that buffer into the panel, so the
// panels, and with them every bit of the result, are those of widening
// the whole operand first and calling SgemmBF16 (the rounding of a
// widened bf16 value is that value, a signalling NaN quieted as it would
// be there). Where the panel's layout is the source's (a k step is a run
// of a row: op(A) = A^T, op(B) = B) the fp32-FMA kernel's panel is widened
// straight into place, each pair of k steps in exchanged order, with no
// buffer and no second pass.

// chunk16 is the number of k steps of a bf16 operand widened per round
// when packing: 16 rows of 64 floats, a 4 KB buffer that stays in L1.
const chunk16 = 64

// SgemmBF16Mixed is SgemmBF16 with each operand given either as float32
// values (a, b) or as bf16 bit patterns (a16, b16: the top 16 bits of a
// float32, the value exactly): an operand's bf16 form is used when it is
// not nil, and its float32 slice must then be nil. The result is
// bit-identical to widening the bf16 operands to float32 and calling
// SgemmBF16, for any thread count. It panics when BF16Supported reports
// false.
func SgemmBF16Mixed(transA, transB bool, m, n, k int, alpha float32, a []float32, a16 []uint16, lda int, b []float32, b16 []uint16, ldb int, beta float32, c []float32, ldc int) {
	pr := mixedProblem(transA, transB, m, n, k, alpha, a, a16, lda, b, b16, ldb, beta, c, ldc)
	solve(bf16KernelOrPanic(), &pr)
}

// SgemmStridedBatchedBF16Mixed is SgemmStridedBatchedBF16 with operands
// given as in SgemmBF16Mixed: matrix i of A starts at a[i*strideA:] or
// a16[i*strideA:], likewise B and C, each computed exactly as
// SgemmBF16Mixed would.
func SgemmStridedBatchedBF16Mixed(transA, transB bool, m, n, k int, alpha float32, a []float32, a16 []uint16, lda, strideA int, b []float32, b16 []uint16, ldb, strideB int, beta float32, c []float32, ldc, strideC int, batch int) {
	pr := mixedProblem(transA, transB, m, n, k, alpha, a, a16, lda, b, b16, ldb, beta, c, ldc)
	solveBatched(bf16KernelOrPanic(), &pr, strideA, strideB, strideC, batch)
}

// mixedProblem builds the problem of SgemmBF16Mixed, panicking when an
// operand is given in both forms (which one to read would be a guess).
func mixedProblem(transA, transB bool, m, n, k int, alpha float32, a []float32, a16 []uint16, lda int, b []float32, b16 []uint16, ldb int, beta float32, c []float32, ldc int) problem {
	if a != nil && a16 != nil {
		panic("gemm: A given both as float32 and as bf16")
	}
	if b != nil && b16 != nil {
		panic("gemm: B given both as float32 and as bf16")
	}
	return problem{
		transA: transA, transB: transB,
		m: m, n: n, k: k,
		alpha: alpha, beta: beta,
		a: a, b: b, c: c, a16: a16, b16: b16,
		lda: lda, ldb: ldb, ldc: ldc,
	}
}

// packATiles16 is packATiles for an A given as bf16 (p.a16): the panels
// packATiles would build from its widened values.
func (p *problem) packATiles16(kern *kernel, ap []float32, t0, t1, pc, kcb int) {
	ms, mr := kern.ms, kern.mr
	kp := kern.pairSteps(kcb)
	for t := t0; t < t1; t++ {
		dst := ap[(t-t0)*ms*kcb:][:ms*kp]
		i0 := t * mr
		mv := min(mr, p.m-i0)
		if p.transA {
			// op(A)[i][q] = A[pc+q][i0+i]: a k step is a run of a row.
			packCopy16(kern, dst, p.a16[pc*p.lda+i0:], p.lda, mv, ms, kcb, ms)
			continue
		}
		// op(A)[i][q] = A[i0+i][pc+q]: a source row runs along k.
		packTrans16(kern, dst, p.a16[i0*p.lda+pc:], p.lda, mv, ms, kcb, ms)
	}
}

// packBPanels16 is packBPanels for a B given as bf16 (p.b16): panel t of
// the N block at jc and the K block at pc at bp[t*nr*kcb:], in slices of
// at most 16 columns.
func (p *problem) packBPanels16(kern *kernel, bp []float32, jc, t0, t1, pc, kcb int) {
	nr := kern.nr
	kp := kern.pairSteps(kcb)
	for t := t0; t < t1; t++ {
		dst := bp[t*nr*kcb:][:nr*kp]
		j0 := jc + t*nr
		nv := min(nr, p.n-j0)
		for h := 0; h < nr; h += 16 {
			w := min(16, nr-h)
			cnt := min(max(nv-h, 0), w)
			switch {
			case cnt == 0:
				for q := 0; q < kp; q++ {
					clear(dst[q*nr+h : q*nr+h+w])
				}
			case p.transB:
				// op(B)[q][j] = B[j0+j][pc+q]: a source row runs along k.
				packTrans16(kern, dst[h:], p.b16[(j0+h)*p.ldb+pc:], p.ldb, cnt, w, kcb, nr)
			default:
				// op(B)[q][j] = B[pc+q][j0+j]: a k step is a run of a row.
				packCopy16(kern, dst[h:], p.b16[pc*p.ldb+j0+h:], p.ldb, cnt, w, kcb, nr)
			}
		}
	}
}

// packCopy16 packs the contiguous case from bf16: k step q of the panel
// is src[q*ld : q*ld+cols], cols <= width <= 16, padded with zeros to
// width. It writes what packPairs (bf16 kernel) or packCopy writes from
// the widened values, for bf16FMAKernel followed by roundSwapRows (what
// packA and packB do): at width 16 widening straight into the panel,
// each pair of k steps read in exchanged order.
func packCopy16(kern *kernel, dst []float32, src []uint16, ld, cols, width, kc, ds int) {
	switch {
	case kern.bf16FMA && width == 16:
		pairs := kc / 2
		if pairs > 0 {
			widenRows(kern, dst, src[ld:], 2*ld, pairs, cols, 2*ds)
			widenRows(kern, dst[ds:], src, 2*ld, pairs, cols, 2*ds)
		}
		if kc%2 == 1 {
			widenRows(kern, dst[(kc-1)*ds:], src[(kc-1)*ld:], ld, 1, cols, ds)
		}
		return
	case !kern.bf16 && !kern.bf16FMA && width == 16:
		widenRows(kern, dst, src, ld, kc, cols, ds)
		return
	}
	var scr [chunk16 * 16]float32
	for q0 := 0; q0 < kc; q0 += chunk16 {
		cnt := min(chunk16, kc-q0)
		widenRows(kern, scr[:], src[q0*ld:], ld, cnt, cols, 16)
		switch {
		case kern.bf16:
			packPairs(kern, dst[q0/2*ds:], scr[:], 16, cols, width, cnt, ds)
		default:
			packCopy(kern, dst[q0*ds:], scr[:], 16, cols, width, cnt, ds)
			if kern.bf16FMA {
				roundSwapRows(kern, dst[q0*ds:], cnt, width, ds)
			}
		}
	}
}

// packTrans16 packs the transposed case from bf16: row i < rows of the
// panel runs along k at src[i*ld:], rows <= width <= 16, padded with zero
// rows to width. It writes what packTransPairs (bf16 kernel) or packTrans
// (otherwise, rounding and exchanging for bf16FMAKernel) writes from the
// widened values. Chunks start at even k steps, so the pairs of k steps
// are those of the whole block.
func packTrans16(kern *kernel, dst []float32, src []uint16, ld, rows, width, kc, ds int) {
	var scr [16 * chunk16]float32
	for q0 := 0; q0 < kc; q0 += chunk16 {
		cnt := min(chunk16, kc-q0)
		widenRows(kern, scr[:], src[q0:], ld, rows, cnt, chunk16)
		if kern.bf16 {
			packTransPairs(kern, dst[q0/2*ds:], scr[:], chunk16, rows, width, cnt, ds)
		} else {
			packTrans(kern, dst[q0*ds:], scr[:], chunk16, rows, width, cnt, ds)
		}
	}
}

// widenRows writes dst[i*ds+j] = the float32 of src[i*ld+j] for i < rows
// and j < cols (cols >= 1), and zero for cols <= j up to the next
// multiple of 16. A signalling NaN is quieted, as roundBF16 quiets it:
// then widening is what packing the widened value does (round to bf16,
// keep its float32), and the panels packed here without rounding
// (packCopy16) are those packed from the widened operand.
func widenRows(kern *kernel, dst []float32, src []uint16, ld, rows, cols, ds int) {
	if rows == 0 {
		return
	}
	w := (cols + 15) &^ 15
	_ = src[(rows-1)*ld+cols-1]
	_ = dst[(rows-1)*ds+w-1]
	if kern.vecPack {
		widenRowsAVX512(&dst[0], &src[0], ld, rows, cols, ds)
		return
	}
	for i := 0; i < rows; i++ {
		d := dst[i*ds : i*ds+w]
		for j, h := range src[i*ld : i*ld+cols] {
			if h&0x7fff > 0x7f80 {
				h |= 0x0040 // a NaN, quieted
			}
			d[j] = bf16Float(h)
		}
		clear(d[cols:])
	}
}
