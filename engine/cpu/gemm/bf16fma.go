package gemm

import (
	"sync"
	"time"
)

// The bf16 GEMM on the fp32 FMA. VDPBF16PS does two multiply-adds per
// lane, but cores differ in how often they issue it: where it runs at
// twice the fp32 FMA's flop rate the bf16 kernel (kernelBF16x14x32) is the
// fast path, while a core that issues one VDPBF16PS every other cycle
// against two VFMADD231PS per cycle (measured: 110 against 214 GFLOP/s on
// one core of an Intel Xeon, family 6 model 207) computes the same
// products twice as fast with FMAs. bf16FMAKernel does that: it runs the
// fp32 kernel's loop over panels of bf16 values in the fp32 layout, with
// each pair's odd k step first and DAZ/FTZ set, which reproduces every
// rounding and flush of VDPBF16PS (kernel_bf16fma_amd64.s), so SgemmBF16
// returns the same bits whichever kernel runs; the K blocks are the bf16
// kernel's (same kc) for the same reason. The choice is made once per
// process by timing the two instructions on the calling thread
// (chooseBF16Kernel), and, the results being identical, does not make
// anything depend on the machine's load. For the same reason the bf16
// GEMM's efficiency is reported against the bf16 peak, the higher of the
// two instructions' peaks (BF16GEMMPeak in fmapeak.go): on such a core,
// the FMA's.

var bf16Choice struct {
	once sync.Once
	k    *kernel
}

// bf16Active returns the kernel SgemmBF16 runs: bf16Kernel, or
// bf16FMAKernel where the fp32 FMA is clearly the faster instruction.
func bf16Active() *kernel {
	bf16Choice.once.Do(func() { bf16Choice.k = chooseBF16Kernel() })
	return bf16Choice.k
}

// chooseBF16Kernel times the VDPBF16PS and VFMADD231PS peak loops
// alternately (about half a millisecond in all) and picks bf16FMAKernel
// when the FMA's multiply-add rate beats VDPBF16PS's by more than 25%, a
// margin far outside timing noise on cores where the two differ twofold,
// and bf16Kernel otherwise.
func chooseBF16Kernel() *kernel {
	if bf16FMAKernel == nil || !haveFMAPeak() || !haveBF16Peak() {
		return bf16Kernel
	}
	var a, b [16]uint32
	var out [bf16PeakChains * 16]float32
	const iters = 1 << 10
	bestFMA, bestBF16 := 0.0, 0.0
	for range 5 {
		t := time.Now()
		fmaPeakZMM(iters * 4)
		bestFMA = max(bestFMA, 4*iters*fmaPeakFlopsPerIter/time.Since(t).Seconds())
		t = time.Now()
		bf16PeakZMM(iters, &a, &b, &out)
		bestBF16 = max(bestBF16, iters*bf16PeakFlopsPerIter/time.Since(t).Seconds())
	}
	if bestFMA > 1.25*bestBF16 {
		return bf16FMAKernel
	}
	return bf16Kernel
}

// roundSwapRows turns rows rows of width floats, ds apart, from the fp32
// packed format into bf16FMAKernel's: every value rounded to bf16 (as
// roundBF16), kept as its fp32 value, and rows 2q and 2q+1 exchanged, an
// odd last row staying in place. The packing routines that copy or
// transpose whole panels do the same in the pass that packs them
// (packCopyTilesRS, packTransAVX512); this serves the others, a panel's
// partial last one of the contiguous case, and the Go loops.
func roundSwapRows(kern *kernel, d []float32, rows, width, ds int) {
	if rows == 0 {
		return
	}
	_ = d[(rows-1)*ds+width-1]
	if kern.vecPack && ds == width && (width == 16 || width == 32) {
		roundSwapPairsAVX512(&d[0], rows, width)
		return
	}
	round := func(x float32) float32 { return bf16Float(roundBF16(x)) }
	for q := 0; q < rows; q += 2 {
		r0 := d[q*ds : q*ds+width]
		if q+1 == rows {
			for i, v := range r0 {
				r0[i] = round(v)
			}
			break
		}
		r1 := d[(q+1)*ds : (q+1)*ds+width]
		for i, v := range r0 {
			r0[i], r1[i] = round(r1[i]), round(v)
		}
	}
}
