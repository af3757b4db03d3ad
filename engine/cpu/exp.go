package cpu

import "math"

// exp32 is e^x in float32 to about 2 ulp, several times faster than
// float64 math.Exp: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two
// parts so the reduction is exact), e^r by a degree-6 Taylor/minimax
// polynomial, and 2^n put into the exponent bits. Inputs below -87.3
// give 0 and above 88.7 give +Inf, as float32 exp does.
func exp32(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	if x != x {
		return x
	}
	if x > 88.72283 {
		return float32(math.Inf(1))
	}
	if x < -87.33654 {
		return 0
	}
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2hi
	r -= n * ln2lo
	// e^r on [-0.35, 0.35]: Horner form of sum r^k / k!, k <= 6 (error < 3e-8).
	p := float32(1.0 / 720)
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	if n > 127 { // 2^128 is not a float32: scale in two steps
		return p * 2 * math.Float32frombits(uint32(int32(n)+126)<<23)
	}
	if n < -126 { // below the normal range: likewise
		return p * 0.5 * math.Float32frombits(uint32(int32(n)+128)<<23)
	}
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// sigmoid32 is the logistic function in float32.
func sigmoid32(x float32) float32 {
	return 1 / (1 + exp32(-x))
}
