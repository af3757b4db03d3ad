package cpu

import (
	"fmt"
	"math"

	"github.com/tinyrecursive/trm/engine"
)

// bf16 storage (engine.BF16Storage). A BF16 buffer holds the top 16 bits
// of float32 values, rounded to nearest even exactly as the bf16 GEMM
// rounds its operands while packing them (engine/cpu/gemm/bf16.go,
// roundBF16): denormals round to bf16 denormals, values past the largest
// bf16 become infinite, a NaN is quieted and stays a NaN. That rounding is
// idempotent (a bf16 value widened to float32 rounds back to itself, NaNs
// included), so a GEMM operand stored in bf16 packs to the same bits as
// the float32 it was rounded from: in the bf16 GEMM mode, storing the
// buffers only GEMMs read in bf16 changes no result.
//
// Only the operands engine.BF16Activations lists may be BF16 (GEMM
// operands and C, and the operands of the elementwise ops bf16act.go
// names); any other op or operand handed a BF16 buffer panics naming the
// op and the buffer, since that is a programming error in the engine, not
// a data error.

var _ engine.BF16Storage = (*Backend)(nil)

// StoresBF16 implements engine.BF16Storage: true in the bf16 GEMM mode,
// whose GEMMs round both operands to bf16 (so bf16 storage of an operand
// gives the same bits); false in fp32, where it would change them.
func (b *Backend) StoresBF16() bool { return b.gemm == GemmBF16 }

// PacksBF16 implements engine.BF16Storage: true, Gemm hands a BF16
// operand to the bf16 GEMM as it is stored (gemm.SgemmBF16Mixed), whose
// packing reads the bf16 values, so a BF16 operand costs no pass of its
// own and the product reads half the bytes.
func (b *Backend) PacksBF16() bool { return true }

// gemmBF16Operand returns a bf16-mode GEMM operand in the form
// gemm.SgemmBF16Mixed takes: its float32 elements, or its bf16 ones for
// a BF16 buffer (the other nil).
func gemmBF16Operand(x engine.Buf) ([]float32, []uint16) {
	if isBF16(x) {
		return nil, bf16s(x)
	}
	return f32s(x), nil
}

// roundBF16 rounds x to bf16, round to nearest even on the bit pattern,
// a NaN quieted (the bf16 GEMM's packing rounding).
func roundBF16(x float32) uint16 {
	u := math.Float32bits(x)
	if x != x {
		return uint16((u | 0x00400000) >> 16)
	}
	return uint16((u + 0x7fff + (u >> 16 & 1)) >> 16)
}

// widenBF16 returns the float32 value of a bf16 (exact).
func widenBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// narrowBF16 writes d[i] = roundBF16(s[i]).
func narrowBF16(d []uint16, s []float32) {
	s = s[:len(d)]
	for i := archNarrowBF16(d, s); i < len(d); i++ {
		d[i] = roundBF16(s[i])
	}
}

// widenBF16s writes d[i] = widenBF16(s[i]).
func widenBF16s(d []float32, s []uint16) {
	s = s[:len(d)]
	for i := archWidenBF16(d, s); i < len(d); i++ {
		d[i] = widenBF16(s[i])
	}
}

// bf16s returns a BF16 buffer's elements.
func bf16s(x engine.Buf) []uint16 {
	if x == nil {
		return nil
	}
	return x.(*buf).bf
}

// isBF16 reports whether x is a BF16 buffer.
func isBF16(x engine.Buf) bool {
	if x == nil {
		return false
	}
	bx, ok := x.(*buf)
	return ok && bx != nil && bx.dt == engine.BF16
}

// bf16Misuse panics: op was handed a BF16 buffer where it reads or writes
// float32. Formatting happens only here, so callers stay allocation-free.
func bf16Misuse(op, name string) {
	panic(fmt.Sprintf("cpu backend: %s: %s is a bf16 buffer; this operand takes float32 only (engine.BF16Activations lists the operands that may be bf16)", op, name))
}

// widenJob widens a BF16 buffer into float32 scratch.
type widenJob struct {
	d []float32
	s []uint16
}

func (j *widenJob) run(_, lo, hi int) { widenBF16s(j.d[lo:hi], j.s[lo:hi]) }

// gemmOperand returns a GEMM operand as float32: x itself, or for a BF16
// buffer its first n elements widened into *scr (grown on demand and
// kept, so a step allocates nothing once warm). Widening is exact and the
// bf16 GEMM's rounding of a widened bf16 is the bf16 itself, so the
// product has the bits it would have had with the float32 the buffer was
// rounded from.
func (b *Backend) gemmOperand(x engine.Buf, n int, scr *[]float32) []float32 {
	if !isBF16(x) {
		return f32s(x)
	}
	if cap(*scr) < n {
		*scr = make([]float32, n)
	}
	d := (*scr)[:n]
	j := &b.jobs.widen
	*j = widenJob{d: d, s: bf16s(x)[:n]}
	b.pool.run(j, n, grainElems)
	*j = widenJob{}
	return d
}

// uploadBF16 rounds host float32 values into a BF16 buffer.
func uploadBF16(d []uint16, s []float32) int {
	n := min(len(d), len(s))
	narrowBF16(d[:n], s[:n])
	return n
}

// downloadBF16 widens a BF16 buffer into host float32 values.
func downloadBF16(d []float32, s []uint16) int {
	n := min(len(d), len(s))
	widenBF16s(d[:n], s[:n])
	return n
}

// growRowScratch gives every worker a float32 row scratch of at least n
// elements (workerScratch.f32), kept for later calls; ops call it before
// starting their workers, which then slice it without allocating.
func (b *Backend) growRowScratch(n int) {
	for w := range b.ws {
		if cap(b.ws[w].f32) < n {
			b.ws[w].f32 = make([]float32, n)
		}
	}
}
