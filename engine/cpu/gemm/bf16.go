package gemm

import "math"

// The bf16 GEMM (SgemmBF16) is the fp32 GEMM with both operands rounded to
// bf16 while they are packed and products summed in fp32 by VDPBF16PS,
// the precision of the reference's bf16 training (torch autocast rounds
// the fp32 operands of every matmul to bf16 and accumulates in fp32) and
// of the CUDA backend's default GEMM mode. On cores that issue VDPBF16PS
// at a lower rate than the fp32 FMA, the same sums, bit for bit, are
// computed with FMAs instead (bf16fma.go); what follows describes the
// VDPBF16PS kernel's format.
//
// Packed format: a lane of a packed micro-panel holds one operand row or
// column along k; in a bf16 panel each 32-bit slot holds a pair of k steps,
// pairBF16(x[2p], x[2p+1]), so a K block of kcb steps takes (kcb+1)/2
// slots per lane and an odd kcb pads the last pair with a zero (in both
// operands, so the pad product is 0*0, never inf*0 = NaN). Panels keep the fp32 strides in the
// packing buffers (an A panel starts every ms*kcb slots, a B panel every
// nr*kcb) and fill the first half of them, so the driver's offsets and
// buffer sizes serve both formats unchanged; the untouched halves cost
// address space, not cache.
//
// Determinism: the K partition (splitK) depends only on k and the kernel,
// every K block but the last has an even depth (a multiple of 16), so the
// pairing of k steps, and with it every bit of the result, is independent
// of the thread count, as for the fp32 GEMM.
//
// Denormals: VDPBF16PS reads bf16 denormal inputs as zero and flushes
// denormal results to zero (see kernel_bf16_amd64.s), so operands below
// 2^-126 in magnitude contribute nothing, and a partial sum below 2^-126
// becomes zero; the fp32 epilogue (alpha, beta) is ordinary IEEE
// arithmetic.

// BF16Supported reports whether SgemmBF16 and SgemmStridedBatchedBF16 can
// run on this CPU (AVX512_BF16 and AVX-512F, with OS support).
func BF16Supported() bool { return bf16Kernel != nil && bf16Available() }

// SgemmBF16 computes C = alpha * op(A) * op(B) + beta * C like Sgemm, with
// every element of A and B rounded to bf16 (round to nearest even, NaN
// kept NaN) and the products accumulated in fp32. The result is
// deterministic: bit-identical for any thread count. It panics when
// BF16Supported reports false.
func SgemmBF16(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(bf16KernelOrPanic(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SgemmStridedBatchedBF16 is SgemmStridedBatched with bf16 operands: batch
// independent SgemmBF16s, matrix i of A starting at a[i*strideA:],
// likewise B and C, each computed exactly as SgemmBF16 would.
func SgemmStridedBatchedBF16(transA, transB bool, m, n, k int, alpha float32, a []float32, lda, strideA int, b []float32, ldb, strideB int, beta float32, c []float32, ldc, strideC int, batch int) {
	sgemmStridedBatched(bf16KernelOrPanic(), transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, batch)
}

// bf16KernelOrPanic returns the bf16 kernel to run (bf16Active), or panics where it cannot
// run: computing in fp32 instead would silently change the precision the
// caller asked for (the CPU backend checks BF16Supported up front).
func bf16KernelOrPanic() *kernel {
	if !BF16Supported() {
		panic("gemm: the bf16 GEMM needs a CPU with AVX512_BF16 (check BF16Supported first)")
	}
	return bf16Active()
}

// roundBF16 rounds x to bf16 as torch's round_to_nearest_even does: round
// to nearest, ties to even, on the bit pattern, so denormals round to bf16
// denormals and values past the largest bf16 become infinite; a NaN is
// quieted and stays a NaN (torch returns its canonical 0x7fc0 there; the
// payload does not matter to any consumer).
func roundBF16(x float32) uint16 {
	u := math.Float32bits(x)
	if x != x {
		return uint16((u | 0x00400000) >> 16)
	}
	return uint16((u + 0x7fff + (u >> 16 & 1)) >> 16)
}

// pairBF16 is one packed slot: the bf16 of the even k step in the low
// half, that of the odd one in the high half (VDPBF16PS's word order).
func pairBF16(even, odd float32) uint32 {
	return uint32(roundBF16(even)) | uint32(roundBF16(odd))<<16
}

// bf16Float returns the fp32 value of a bf16 bit pattern (exact).
func bf16Float(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// pairSteps is the number of packed slots per lane for kcb k steps in the
// kernel's format.
func (k *kernel) pairSteps(kcb int) int {
	if k.bf16 {
		return (kcb + 1) / 2
	}
	return kcb
}

// packATilesBF16 is packATiles for a bf16 kernel: A micro-panels t0..t1-1
// of the K block at pc, panel t at ap[(t-t0)*ms*kcb:].
func (p *problem) packATilesBF16(kern *kernel, ap []float32, t0, t1, pc, kcb int) {
	ms, mr := kern.ms, kern.mr
	first := t0
	if p.transA && kern.vecPack && ms == 16 {
		// Full panels (all mr rows valid) pair of rows by pair of rows
		// across the group, as packATiles does for fp32.
		full := min(t1, p.m/mr)
		if full > t0 {
			_ = p.a[(pc+kcb-1)*p.lda+full*mr-1]
			_ = ap[(full-first-1)*ms*kcb+ms*kern.pairSteps(kcb)-1]
			packPairsTiles(&ap[0], &p.a[pc*p.lda+t0*mr], p.lda, kcb, full-t0, mr, ms*kcb, 1, 1<<mr-1, ms*4)
			t0 = full
		}
	}
	for t := t0; t < t1; t++ {
		dst := ap[(t-first)*ms*kcb:][:ms*kern.pairSteps(kcb)]
		i0 := t * mr
		mv := min(mr, p.m-i0)
		if p.transA {
			// op(A)[i][q] = A[pc+q][i0+i]: a k step is a run of rows.
			packPairs(kern, dst, p.a[pc*p.lda+i0:], p.lda, mv, ms, kcb, ms)
			continue
		}
		// op(A)[i][q] = A[i0+i][pc+q]: a source row runs along k.
		packTransPairs(kern, dst, p.a[i0*p.lda+pc:], p.lda, mv, ms, kcb, ms)
	}
}

// packBPanelsBF16 is packBPanels for a bf16 kernel: B micro-panels
// t0..t1-1 of the N block at jc and the K block at pc, panel t at
// bp[t*nr*kcb:], in slices of at most 16 columns.
func (p *problem) packBPanelsBF16(kern *kernel, bp []float32, jc, t0, t1, pc, kcb int) {
	nr := kern.nr
	kp := kern.pairSteps(kcb)
	if !p.transB && kern.vecPack && nr == 32 {
		full := min(t1, (p.n-jc)/nr)
		if full > t0 {
			_ = p.b[(pc+kcb-1)*p.ldb+jc+full*nr-1]
			_ = bp[(full-1)*nr*kcb+nr*kp-1]
			packPairsTiles(&bp[t0*nr*kcb], &p.b[pc*p.ldb+jc+t0*nr], p.ldb, kcb, full-t0, nr, nr*kcb, 2, 0xffff, nr*4)
			t0 = full
		}
	}
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
				packTransPairs(kern, dst[h:], p.b[(j0+h)*p.ldb+pc:], p.ldb, cnt, w, kcb, nr)
			default:
				// op(B)[q][j] = B[pc+q][j0+j]: a k step is a run of columns.
				packPairs(kern, dst[h:], p.b[pc*p.ldb+j0+h:], p.ldb, cnt, w, kcb, nr)
			}
		}
	}
}

// packPairs writes dst[p*ds+j] = pairBF16(src[2p*ld+j], src[(2p+1)*ld+j])
// for p < (kc+1)/2 and j < cols (the odd element 0 past kc), and zero for
// cols <= j < width.
func packPairs(kern *kernel, dst, src []float32, ld, cols, width, kc, ds int) {
	kp := (kc + 1) / 2
	_ = src[(kc-1)*ld+cols-1]
	_ = dst[(kp-1)*ds+width-1]
	if kern.vecPack && width <= 16 {
		packPairsAVX512(&dst[0], &src[0], ld, cols, width, kc, ds)
		return
	}
	for q := 0; q < kp; q++ {
		d := dst[q*ds : q*ds+width]
		e := src[2*q*ld : 2*q*ld+cols]
		var o []float32
		if 2*q+1 < kc {
			o = src[(2*q+1)*ld : (2*q+1)*ld+cols]
		}
		for j, v := range e {
			var w float32
			if o != nil {
				w = o[j]
			}
			d[j] = math.Float32frombits(pairBF16(v, w))
		}
		clear(d[cols:])
	}
}

// transChunk is the number of k steps packTransPairs converts per round:
// 16 rows of 32 pairs, a 2 KB scratch block on the stack.
const transChunk = 64

// packTransPairs writes dst[p*ds+i] = pairBF16(src[i*ld+2p], src[i*ld+2p+1])
// for p < (kc+1)/2 and i < rows (the odd element 0 past kc), and zero for
// rows <= i < width (1 <= rows <= width). The vector path converts a chunk
// of the source rows into pair rows in a scratch block and transposes that
// with the fp32 routine, which moves 32-bit slots without looking at them.
func packTransPairs(kern *kernel, dst, src []float32, ld, rows, width, kc, ds int) {
	kp := (kc + 1) / 2
	_ = src[(rows-1)*ld+kc-1]
	_ = dst[(kp-1)*ds+width-1]
	if kern.vecPack && width <= 16 {
		var scratch [16 * transChunk / 2]float32
		for q0 := 0; q0 < kc; q0 += transChunk {
			cnt := min(transChunk, kc-q0)
			cvtRowsPairsAVX512(&scratch[0], &src[q0], ld, rows, cnt, transChunk/2)
			packTransAVX512(&dst[q0/2*ds], &scratch[0], transChunk/2, rows, width, (cnt+1)/2, ds, 0)
		}
		return
	}
	for i := 0; i < rows; i++ {
		s := src[i*ld : i*ld+kc]
		for q := 0; q < kp; q++ {
			var w float32
			if 2*q+1 < kc {
				w = s[2*q+1]
			}
			dst[q*ds+i] = math.Float32frombits(pairBF16(s[2*q], w))
		}
	}
	if rows < width {
		for q := 0; q < kp; q++ {
			clear(dst[q*ds+rows : q*ds+width])
		}
	}
}
