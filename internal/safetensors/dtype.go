// Package safetensors reads and writes the safetensors file format used for
// model weights, golden fixtures and checkpoints.
//
// A file is an 8-byte little-endian unsigned header length N, N bytes of
// JSON header, then one data blob. The header maps every tensor name to its
// dtype, shape and [begin, end) byte range inside the blob, and may carry a
// "__metadata__" object of string pairs. Tensor data is raw little-endian
// C-order bytes.
//
// Decoding validates everything a hostile or truncated file can get wrong
// (lengths, offsets, dtypes, overlaps) and every error names the file, so a
// bad checkpoint is reported instead of silently misread. Writing is atomic
// so a crash mid-checkpoint never destroys the previous checkpoint.
package safetensors

import "math"

// DType is a safetensors element type, spelled as in the file header.
type DType string

// The element types this package understands. Other dtypes of the format
// (U16, U32, U64, the F8 variants, complex) are rejected when decoding,
// because nothing in this project produces or consumes them.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	BOOL DType = "BOOL"
)

// Size returns the number of bytes of one element, or 0 for a dtype this
// package does not know (which is how callers can test validity).
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, BOOL:
		return 1
	}
	return 0
}

// IsFloat reports whether d is a floating-point dtype.
func (d DType) IsFloat() bool {
	return d == F64 || d == F32 || d == F16 || d == BF16
}

// BF16ToFloat32 widens a bfloat16 bit pattern to float32. bfloat16 is the
// top half of a float32, so the conversion is exact for every value,
// including subnormals, infinities and NaN payloads.
func BF16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// Float32ToBF16 rounds a float32 to the nearest bfloat16 bit pattern, ties
// to even, as PyTorch's .to(torch.bfloat16) does. NaN stays NaN (made quiet
// so that dropping low payload bits cannot turn it into an infinity).
func Float32ToBF16(f float32) uint16 {
	bits := math.Float32bits(f)
	if math.IsNaN(float64(f)) {
		return uint16(bits>>16) | 0x0040
	}
	// Adding 0x7FFF plus the lowest kept bit rounds half-way cases toward
	// the even neighbour; a carry out of the mantissa correctly bumps the
	// exponent (up to infinity for the largest finite values).
	lsb := (bits >> 16) & 1
	return uint16((bits + 0x7FFF + lsb) >> 16)
}

// F16ToFloat32 widens an IEEE 754 binary16 bit pattern to float32 exactly:
// every half-precision value, subnormals included, is representable in
// float32. Infinities stay infinite and NaN payloads are kept.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1F
	mant := uint32(h) & 0x3FF
	switch exp {
	case 0:
		// Zero or subnormal: mant * 2^-24. Both factors are exact in
		// float32 and so is their product (at least 2^-24, a normal float32).
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	case 0x1F:
		return math.Float32frombits(sign | 0x7F800000 | mant<<13)
	}
	// Normal: rebias the exponent from 15 to 127 and widen the mantissa.
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
