package gemm

// The bf16 GEMM with C stored as bf16. A caller that keeps its
// activations in bf16 (the CPU backend's bf16 activations) wants
// round(alpha * op(A) * op(B) + beta * C) in bf16: computing into a
// float32 C and rounding it afterwards is a second pass over the whole
// result through memory. SgemmBF16MixedC16 rounds each tile of C instead
// as soon as its last K block is done, while it is in L1:
//
//   - a product whose k is one K block computes each tile into the
//     worker's scratch tile (beta 0) and merges it into c16 with the
//     steps the kernel takes (t = alpha*acc; C = beta*C + t, C the
//     widened c16), then rounds: no float32 C is touched at all;
//   - a product of several K blocks keeps its partial sums in the float32
//     scratch c as SgemmBF16Mixed keeps them in C (the first block
//     starting, with beta != 0, from the widened c16 of its tiles), and
//     rounds each row of tiles into c16 after the last block.
//
// Computing a tile into the scratch tile and merging it gives the bits of
// the kernel storing it (driver.go, mergeTile), so the result is, bit for
// bit, SgemmBF16Mixed into a float32 C holding the widened c16, rounded
// to nearest even (a NaN quieted), for any thread count.

// SgemmBF16MixedC16 is SgemmBF16Mixed with C stored as bf16 bit patterns
// in c16 (row stride ldc): c16 receives the bf16 rounding (to nearest
// even on the bits, a NaN quieted) of the float32 C that SgemmBF16Mixed
// would compute from the widened c16. c is float32 scratch in C's layout
// (as long as c16 needs), where a product whose k spans several K blocks
// keeps its partial sums; its contents are unspecified afterwards. It may
// be nil when C16NeedsScratch(k) is false. Only the m x n elements of C
// are read and written. It panics when BF16Supported reports false.
func SgemmBF16MixedC16(transA, transB bool, m, n, k int, alpha float32, a []float32, a16 []uint16, lda int, b []float32, b16 []uint16, ldb int, beta float32, c16 []uint16, c []float32, ldc int) {
	kern := bf16KernelOrPanic()
	pr := c16Problem(kern, transA, transB, m, n, k, alpha, a, a16, lda, b, b16, ldb, beta, c16, c, ldc)
	solve(kern, &pr)
}

// SgemmStridedBatchedBF16MixedC16 is SgemmStridedBatchedBF16Mixed with C
// stored as bf16 as in SgemmBF16MixedC16: matrix i of C is at
// c16[i*strideC:], its scratch at c[i*strideC:].
func SgemmStridedBatchedBF16MixedC16(transA, transB bool, m, n, k int, alpha float32, a []float32, a16 []uint16, lda, strideA int, b []float32, b16 []uint16, ldb, strideB int, beta float32, c16 []uint16, c []float32, ldc, strideC int, batch int) {
	kern := bf16KernelOrPanic()
	pr := c16Problem(kern, transA, transB, m, n, k, alpha, a, a16, lda, b, b16, ldb, beta, c16, c, ldc)
	solveBatched(kern, &pr, strideA, strideB, strideC, batch)
}

// C16NeedsScratch reports whether SgemmBF16MixedC16 of depth k needs its
// float32 scratch: whether k spans several K blocks of the bf16 GEMM (a
// product of one block rounds each tile straight from the kernel's). It
// is false where BF16Supported is false.
func C16NeedsScratch(k int) bool {
	return BF16Supported() && k > bf16Active().kc
}

// c16Problem builds the problem of SgemmBF16MixedC16 for kern, panicking
// when the scratch it needs is missing.
func c16Problem(kern *kernel, transA, transB bool, m, n, k int, alpha float32, a []float32, a16 []uint16, lda int, b []float32, b16 []uint16, ldb int, beta float32, c16 []uint16, c []float32, ldc int) problem {
	pr := mixedProblem(transA, transB, m, n, k, alpha, a, a16, lda, b, b16, ldb, beta, c, ldc)
	pr.c16 = c16
	if c16 == nil {
		pr.c16 = []uint16{} // validated as an empty C
	}
	if c == nil && k > kern.kc && alpha != 0 && m > 0 && n > 0 {
		panic("gemm: a bf16 C of depth k > one K block needs its float32 scratch (C16NeedsScratch)")
	}
	return pr
}

// computeRow16 is computeRow for a C stored as bf16 (p.c16).
func (p *problem) computeRow16(kern *kernel, a *float32, sa int, bp []float32, directB bool, tile []float32, ir, jr0, jr1, jc, pc, kcb int) {
	mr, nr := kern.mr, kern.nr
	i0 := ir * mr
	mv := min(mr, p.m-i0)
	j0, j1 := jc+jr0*nr, min(jc+jr1*nr, p.n)
	first, last := pc == 0, pc+kcb == p.k
	if !last {
		if first && p.beta != 0 {
			// The partial sums start from C's values.
			if p.transC {
				for j := j0; j < j1; j++ {
					o := j*p.ldc + i0
					widenBF16Row(p.c[o:o+mv], p.c16[o:o+mv])
				}
			} else {
				for i := range mv {
					o := (i0+i)*p.ldc + j0
					widenBF16Row(p.c[o:o+j1-j0], p.c16[o:o+j1-j0])
				}
			}
		}
		p.computeRowF32(kern, a, sa, bp, directB, tile, ir, jr0, jr1, jc, pc, kcb)
		return
	}
	if !first {
		p.computeRowF32(kern, a, sa, bp, directB, tile, ir, jr0, jr1, jc, pc, kcb)
		if p.transC {
			o := j0*p.ldc + i0
			roundTile(p.c16[o:], p.ldc, p.c[o:], p.ldc, j1-j0, mv, 0)
			return
		}
		o := i0*p.ldc + j0
		roundTile(p.c16[o:], p.ldc, p.c[o:], p.ldc, mv, j1-j0, 0)
		return
	}
	// One K block: each tile into the scratch tile, then merged and
	// rounded (as computeRowF32 does for partial tiles).
	for jr := jr0; jr < jr1; jr++ {
		j0 := jc + jr*nr
		nv := min(nr, p.n-j0)
		b, sb := p.bPanel(bp, directB, jr, nr, j0, nv, pc, kcb)
		p.tileKernel(kern, a, sa, b, sb, tile, nv, kcb, 0)
		if p.transC {
			p.storeTileT16(kern, tile, i0, j0, mv, nv)
			continue
		}
		roundTile(p.c16[i0*p.ldc+j0:], p.ldc, tile, nr, mv, nv, p.beta)
	}
}

// scaleC16 is scaleC for a C stored as bf16: C = beta*C, rounded.
func (p *problem) scaleC16() {
	for i := 0; i < p.m; i++ {
		row := p.c16[i*p.ldc : i*p.ldc+p.n]
		switch p.beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j, h := range row {
				row[j] = roundBF16(p.beta * bf16Float(h))
			}
		}
	}
}

// roundTile writes d[i*ldd+j] = the bf16 rounding of t[i*ldt+j], or with
// beta != 0 of float32(beta * widened d[i*ldd+j]) + t[i*ldt+j] (the
// kernel's merge: two roundings, no fused multiply-add), for i < rows and
// j < cols.
func roundTile(d []uint16, ldd int, t []float32, ldt, rows, cols int, beta float32) {
	if rows <= 0 || cols <= 0 {
		return
	}
	_ = d[(rows-1)*ldd+cols-1]
	_ = t[(rows-1)*ldt+cols-1]
	if vecPackUsable() {
		roundTileAVX512(&d[0], ldd, &t[0], ldt, rows, cols, beta)
		return
	}
	roundTileGo(d, ldd, t, ldt, rows, cols, beta)
}

// roundTileGo is roundTile in Go (CPUs without AVX-512).
func roundTileGo(d []uint16, ldd int, t []float32, ldt, rows, cols int, beta float32) {
	for i := range rows {
		dr, tr := d[i*ldd:][:cols], t[i*ldt:][:cols]
		for j, v := range tr {
			if beta != 0 {
				v = float32(beta*bf16Float(dr[j])) + v
			}
			dr[j] = roundBF16(v)
		}
	}
}

// widenBF16Row writes d[j] = the float32 of s[j] (exact).
func widenBF16Row(d []float32, s []uint16) {
	s = s[:len(d)]
	for j, h := range s {
		d[j] = bf16Float(h)
	}
}
