package cpu

// archNarrowBF16 and archWidenBF16 convert the longest prefix that is a
// multiple of 16 under the AVX-512 variant (0 elements otherwise; the Go
// loops in bf16store.go finish). The conversions are exact integer
// arithmetic on the bits, so every variant gives the same result.

func archNarrowBF16(d []uint16, s []float32) int {
	if simdLevel != simdAVX512 {
		return 0
	}
	k := len(d) &^ 15
	if k == 0 {
		return 0
	}
	_ = s[k-1]
	narrowBF16x512(&d[0], &s[0], k)
	return k
}

func archWidenBF16(d []float32, s []uint16) int {
	if simdLevel != simdAVX512 {
		return 0
	}
	k := len(d) &^ 15
	if k == 0 {
		return 0
	}
	_ = s[k-1]
	widenBF16x512(&d[0], &s[0], k)
	return k
}

//go:noescape
func narrowBF16x512(d *uint16, s *float32, n int)

//go:noescape
func widenBF16x512(d *float32, s *uint16, n int)
