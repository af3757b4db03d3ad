package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Tensor is one named array of a safetensors file: its dtype, its shape
// (empty for a scalar) and its elements as raw little-endian bytes in C
// (row-major) order, exactly as they lie in the file.
//
// Keeping the raw bytes (rather than a []float32) lets a file round-trip
// any dtype bit for bit, bfloat16 included; the accessors convert on demand.
type Tensor struct {
	DType DType
	Shape []int
	Data  []byte
}

// NumElements returns the product of the shape: 1 for a scalar (empty
// shape), 0 when any dimension is 0. A negative dimension yields a
// negative count, which Validate rejects.
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Validate checks that the dtype is known, no dimension is negative, and
// Data holds exactly NumElements elements. Constructors never fail, so this
// is where a shape/data disagreement surfaces (Encode and the accessors
// call it).
func (t Tensor) Validate() error {
	size := t.DType.Size()
	if size == 0 {
		return fmt.Errorf("unknown dtype %q", string(t.DType))
	}
	n, err := checkedNumel(t.Shape, size)
	if err != nil {
		return err
	}
	if want := n * size; len(t.Data) != want {
		return fmt.Errorf("%s shape %v needs %d bytes, data has %d", t.DType, t.Shape, want, len(t.Data))
	}
	return nil
}

// checkedNumel multiplies the dimensions, rejecting negative ones and
// products whose byte size would overflow an int (a hostile header could
// otherwise wrap around to a small, plausible length).
func checkedNumel(shape []int, elemSize int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt/elemSize/d {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}

// cloneShape copies a shape so that a Tensor never aliases the caller's
// slice (a later edit of that slice would silently reshape the tensor).
func cloneShape(shape []int) []int {
	out := make([]int, len(shape))
	copy(out, shape)
	return out
}

// FromFloat32 builds an F32 tensor holding v with the given shape. The
// values are copied. If len(v) disagrees with the shape the tensor is still
// built; Validate, Encode and WriteFile then report the mismatch.
func FromFloat32(shape []int, v []float32) Tensor {
	data := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
	}
	return Tensor{DType: F32, Shape: cloneShape(shape), Data: data}
}

// FromFloat64 builds an F64 tensor holding v (copied) with the given shape.
func FromFloat64(shape []int, v []float64) Tensor {
	data := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(data[8*i:], math.Float64bits(x))
	}
	return Tensor{DType: F64, Shape: cloneShape(shape), Data: data}
}

// FromInt32 builds an I32 tensor holding v (copied) with the given shape.
func FromInt32(shape []int, v []int32) Tensor {
	data := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(data[4*i:], uint32(x))
	}
	return Tensor{DType: I32, Shape: cloneShape(shape), Data: data}
}

// FromInt64 builds an I64 tensor holding v (copied) with the given shape.
func FromInt64(shape []int, v []int64) Tensor {
	data := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(data[8*i:], uint64(x))
	}
	return Tensor{DType: I64, Shape: cloneShape(shape), Data: data}
}

// FromBF16 builds a BF16 tensor from raw bfloat16 bit patterns (copied),
// for example produced by Float32ToBF16.
func FromBF16(shape []int, v []uint16) Tensor {
	data := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(data[2*i:], x)
	}
	return Tensor{DType: BF16, Shape: cloneShape(shape), Data: data}
}

// Float64 returns the elements converted to float64. Every dtype converts
// exactly (float64 holds all float32/float16/bfloat16 values and all
// integers up to 2^53; larger int64 values are rounded).
func (t Tensor) Float64() ([]float64, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	n := t.NumElements()
	out := make([]float64, n)
	d := t.Data
	switch t.DType {
	case F64:
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:]))
		}
	case F32:
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:])))
		}
	case BF16:
		for i := range out {
			out[i] = float64(BF16ToFloat32(binary.LittleEndian.Uint16(d[2*i:])))
		}
	case F16:
		for i := range out {
			out[i] = float64(F16ToFloat32(binary.LittleEndian.Uint16(d[2*i:])))
		}
	default:
		ints, err := t.Int64()
		if err != nil {
			return nil, err
		}
		for i, v := range ints {
			out[i] = float64(v)
		}
	}
	return out, nil
}

// Float32 returns the elements converted to float32: F32 as is, BF16 and
// F16 widened exactly, F64 rounded to nearest, integers and bools
// converted (rounded beyond 2^24 in magnitude).
func (t Tensor) Float32() ([]float32, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	n := t.NumElements()
	d := t.Data
	out := make([]float32, n)
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = BF16ToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case F16:
		for i := range out {
			out[i] = F16ToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])))
		}
	default:
		ints, err := t.Int64()
		if err != nil {
			return nil, err
		}
		for i, v := range ints {
			out[i] = float32(v)
		}
	}
	return out, nil
}

// Int64 returns the elements of an integer or BOOL tensor as int64 (bools
// as 0/1, U8 zero-extended, signed types sign-extended). Floating-point
// tensors are refused rather than truncated, because a float where an
// index or label was expected is a caller bug worth reporting.
func (t Tensor) Int64() ([]int64, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	n := t.NumElements()
	d := t.Data
	out := make([]int64, n)
	switch t.DType {
	case I64:
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(d[8*i:]))
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(d[4*i:])))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(d[2*i:])))
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(d[i]))
		}
	case U8:
		for i := range out {
			out[i] = int64(d[i])
		}
	case BOOL:
		for i := range out {
			if d[i] != 0 {
				out[i] = 1
			}
		}
	default:
		return nil, fmt.Errorf("%s tensor is not an integer tensor", t.DType)
	}
	return out, nil
}
