package cpu

import "github.com/tinyrecursive/trm/engine"

// bf16 activations (engine.BF16Activations). The ops that the contract
// lists take BF16 buffers as well as float32 ones, in any mix, whatever
// the options say (Options.Activations only makes a model allocate its
// activations in bf16): every BF16 input is
// widened exactly, the op computes in float32 exactly as it does on
// float32 operands, and a BF16 output is the float32 result rounded to
// nearest even (roundBF16). So an op on bf16 inputs gives the bits of the
// same op on their widened values, then rounded: the property the tests
// check op by op.
//
// The widening and rounding happen a row (or a block) at a time in each
// worker's scratch, which stays in L1, so the op's memory traffic is the
// bf16 bytes: that, and half the memory for the saved activations, is
// what bf16 storage buys on a CPU.

var _ engine.BF16Activations = (*Backend)(nil)

// StoresBF16Activations implements engine.BF16Activations: true when the
// backend was built with bf16 activations (which needs the bf16 GEMM
// mode, NewWithOptions).
func (b *Backend) StoresBF16Activations() bool { return b.act == engine.BF16 }

// operand is an elementwise op's view of a buffer stored as float32 or
// bf16: f for float32, h for bf16 (is16 says which, since an empty
// buffer's slice may be nil either way).
type operand struct {
	f    []float32
	h    []uint16
	is16 bool
}

// operandOf views x (nil gives the zero operand).
func operandOf(x engine.Buf) operand {
	if isBF16(x) {
		return operand{h: bf16s(x), is16: true}
	}
	return operand{f: f32s(x)}
}

// load returns elements [lo, hi) as float32: a subslice of a float32
// buffer, or a bf16 buffer's elements widened into scr (which must hold
// hi-lo elements).
func (o operand) load(scr []float32, lo, hi int) []float32 {
	if !o.is16 {
		return o.f[lo:hi]
	}
	d := scr[:hi-lo]
	widenBF16s(d, o.h[lo:hi])
	return d
}

// dst returns where an op writes elements [lo, hi): the float32 buffer
// itself, or scr for a bf16 buffer, which store then rounds into place.
func (o operand) dst(scr []float32, lo, hi int) []float32 {
	if !o.is16 {
		return o.f[lo:hi]
	}
	return scr[:hi-lo]
}

// store finishes a write obtained from dst at element lo: it rounds row
// into a bf16 buffer, and does nothing for a float32 one (the op wrote in
// place).
func (o operand) store(row []float32, lo int) {
	if o.is16 {
		narrowBF16(o.h[lo:lo+len(row)], row)
	}
}

// slot returns scratch row i of n elements from a worker's float32
// scratch, grown beforehand to at least (i+1)*n (growRowScratch).
func (s *workerScratch) slot(i, n int) []float32 { return s.f32[i*n : (i+1)*n : (i+1)*n] }
