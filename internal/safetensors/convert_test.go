package safetensors

import (
	"math"
	"reflect"
	"testing"
)

// TestBF16ToFloat32 checks hand-picked bit patterns against values worked
// out from the bfloat16 layout (1 sign, 8 exponent, 7 mantissa bits).
func TestBF16ToFloat32(t *testing.T) {
	cases := []struct {
		bits uint16
		want float32
	}{
		{0x3F80, 1},
		{0xBF80, -1},
		{0x4000, 2},
		{0x3FC0, 1.5},
		{0x4049, 3.140625},
		{0x0000, 0},
		{0x0001, math.Float32frombits(0x00010000)}, // smallest subnormal
		{0x7F7F, math.Float32frombits(0x7F7F0000)}, // largest finite
		{0x7F80, float32(math.Inf(1))},
		{0xFF80, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		if got := BF16ToFloat32(c.bits); got != c.want {
			t.Errorf("BF16ToFloat32(%#04x) = %v, want %v", c.bits, got, c.want)
		}
	}
	if got := BF16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("BF16ToFloat32(0x8000) = %v, want -0", got)
	}
	if got := BF16ToFloat32(0x7FC0); !math.IsNaN(float64(got)) {
		t.Errorf("BF16ToFloat32(0x7FC0) = %v, want NaN", got)
	}
}

// TestF16ToFloat32 covers normals, the subnormal range, signed zero,
// infinities and NaN of IEEE binary16.
func TestF16ToFloat32(t *testing.T) {
	cases := []struct {
		bits uint16
		want float32
	}{
		{0x3C00, 1},
		{0xBC00, -1},
		{0x4000, 2},
		{0x3555, 0x555p-12},         // (1024+341)/1024 * 2^-2 = 0.333251953125
		{0x7BFF, 65504},             // largest finite
		{0x0400, 1.0 / 16384},       // smallest normal 2^-14
		{0x0001, 1.0 / 16777216},    // smallest subnormal 2^-24
		{0x03FF, 1023.0 / 16777216}, // largest subnormal
		{0x8001, -1.0 / 16777216},
		{0x0000, 0},
		{0x7C00, float32(math.Inf(1))},
		{0xFC00, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		if got := F16ToFloat32(c.bits); got != c.want {
			t.Errorf("F16ToFloat32(%#04x) = %v, want %v", c.bits, got, c.want)
		}
	}
	if got := F16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("F16ToFloat32(0x8000) = %v, want -0", got)
	}
	for _, nan := range []uint16{0x7E00, 0x7C01, 0xFE00} {
		if got := F16ToFloat32(nan); !math.IsNaN(float64(got)) {
			t.Errorf("F16ToFloat32(%#04x) = %v, want NaN", nan, got)
		}
	}
	// Every finite half value must survive the trip through float32 and
	// back through an independent formula: sign * mant * 2^(e-25) with the
	// implicit bit for normals.
	for h := 0; h < 1<<16; h++ {
		e := (h >> 10) & 0x1F
		if e == 0x1F {
			continue
		}
		m := float64(h & 0x3FF)
		var v float64
		if e == 0 {
			v = m * math.Pow(2, -24)
		} else {
			v = (1024 + m) * math.Pow(2, float64(e-25))
		}
		if h&0x8000 != 0 {
			v = -v
		}
		if got := F16ToFloat32(uint16(h)); float64(got) != v {
			t.Fatalf("F16ToFloat32(%#04x) = %v, want %v", h, got, v)
		}
	}
}

// TestFloat32ToBF16 checks round-to-nearest-even on exact ties and on
// values just off them, plus overflow to infinity and NaN.
func TestFloat32ToBF16(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3F800000, 0x3F80}, // 1.0 exact
		{0x3F808000, 0x3F80}, // tie, even neighbour is 0x3F80 (down)
		{0x3F818000, 0x3F82}, // tie, even neighbour is 0x3F82 (up)
		{0x3F808001, 0x3F81}, // just above the tie: up
		{0x3F807FFF, 0x3F80}, // just below the tie: down
		{0xBF808001, 0xBF81}, // negative, magnitude rounds up
		{0x7F7FFFFF, 0x7F80}, // largest float32 rounds to +inf
		{0x7F800000, 0x7F80}, // +inf stays
		{0x00000001, 0x0000}, // tiny subnormal rounds to zero
	}
	for _, c := range cases {
		if got := Float32ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("Float32ToBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	if got := Float32ToBF16(math.Float32frombits(0x7F800001)); !math.IsNaN(float64(BF16ToFloat32(got))) {
		t.Errorf("a NaN whose payload lies in the dropped bits became %#04x, not NaN", got)
	}
}

// TestAccessors converts every dtype through Float32, Float64 and Int64.
func TestAccessors(t *testing.T) {
	f32 := FromFloat32([]int{2, 2}, []float32{1.5, -2, 0, 3.25})
	if v, err := f32.Float64(); err != nil || !reflect.DeepEqual(v, []float64{1.5, -2, 0, 3.25}) {
		t.Errorf("F32.Float64 = %v, %v", v, err)
	}
	if _, err := f32.Int64(); err == nil {
		t.Errorf("F32.Int64 succeeded, want an error")
	}

	f64 := FromFloat64([]int{3}, []float64{0.1, 1e300, -1})
	v32, err := f64.Float32()
	if err != nil || v32[0] != float32(0.1) || !math.IsInf(float64(v32[1]), 1) || v32[2] != -1 {
		t.Errorf("F64.Float32 = %v, %v (want rounding and overflow to +Inf)", v32, err)
	}

	bf := FromBF16([]int{3}, []uint16{0x3F80, 0xC040, 0x7F80})
	if v, err := bf.Float32(); err != nil || v[0] != 1 || v[1] != -3 || !math.IsInf(float64(v[2]), 1) {
		t.Errorf("BF16.Float32 = %v, %v", v, err)
	}
	f16 := Tensor{DType: F16, Shape: []int{2}, Data: []byte{0x00, 0x3C, 0x01, 0x00}}
	if v, err := f16.Float64(); err != nil || v[0] != 1 || v[1] != math.Pow(2, -24) {
		t.Errorf("F16.Float64 = %v, %v", v, err)
	}

	i32 := FromInt32([]int{3}, []int32{-100, 0, math.MaxInt32})
	if v, err := i32.Int64(); err != nil || !reflect.DeepEqual(v, []int64{-100, 0, math.MaxInt32}) {
		t.Errorf("I32.Int64 = %v, %v", v, err)
	}
	if v, err := i32.Float32(); err != nil || v[0] != -100 {
		t.Errorf("I32.Float32 = %v, %v", v, err)
	}
	i64 := FromInt64(nil, []int64{math.MinInt64})
	if v, err := i64.Int64(); err != nil || v[0] != math.MinInt64 || i64.NumElements() != 1 {
		t.Errorf("I64 scalar Int64 = %v, %v", v, err)
	}
	small := []struct {
		dt   DType
		data []byte
		want []int64
	}{
		{I16, []byte{0xFF, 0xFF, 0x02, 0x00}, []int64{-1, 2}},
		{I8, []byte{0xFF, 0x7F}, []int64{-1, 127}},
		{U8, []byte{0xFF, 0x7F}, []int64{255, 127}},
		{BOOL, []byte{0x01, 0x00}, []int64{1, 0}},
	}
	for _, s := range small {
		tn := Tensor{DType: s.dt, Shape: []int{2}, Data: s.data}
		if v, err := tn.Int64(); err != nil || !reflect.DeepEqual(v, s.want) {
			t.Errorf("%s.Int64 = %v, %v, want %v", s.dt, v, err, s.want)
		}
		f, err := tn.Float64()
		if err != nil || f[0] != float64(s.want[0]) || f[1] != float64(s.want[1]) {
			t.Errorf("%s.Float64 = %v, %v", s.dt, f, err)
		}
	}

	bad := FromFloat32([]int{3}, []float32{1, 2})
	if _, err := bad.Float32(); err == nil {
		t.Errorf("Float32 on a tensor whose data is shorter than its shape succeeded")
	}
	if err := (Tensor{DType: "C64", Shape: []int{1}, Data: make([]byte, 8)}).Validate(); err == nil {
		t.Errorf("Validate accepted an unknown dtype")
	}
	if err := (Tensor{DType: F32, Shape: []int{-1}, Data: nil}).Validate(); err == nil {
		t.Errorf("Validate accepted a negative dimension")
	}
	shape := []int{2}
	c := FromFloat32(shape, []float32{1, 2})
	shape[0] = 7
	if c.Shape[0] != 2 {
		t.Errorf("constructor aliased the caller's shape slice")
	}
}

func TestDTypeSize(t *testing.T) {
	want := map[DType]int{F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, "U64": 0, "": 0}
	for dt, n := range want {
		if got := dt.Size(); got != n {
			t.Errorf("%q.Size() = %d, want %d", dt, got, n)
		}
	}
}
