//go:build !amd64

package cpu

// Off amd64 only the pure-Go kernels exist: every arch* function handles
// an empty prefix and leaves the whole slice to the Go loop.

func bestSIMD() int { return simdGo }

// vecLen is 0: no vector prefix.
func vecLen(n int) int { return 0 }

func archExpShiftSum(x []float32, shift float32) (int, float64) { return 0, 0 }
func archMax(x []float32) (int, float32)                        { return 0, 0 }
func archScale(x []float32, s float32) int                      { return 0 }
func archAdd(d, a, b []float32) int                             { return 0 }
func archDot64(a, b []float32) (int, float64)                   { return 0, 0 }
func archAddSumSq(d, a, b []float32) (int, float64)             { return 0, 0 }
func archRMSBack(d, g, o []float32, rs, mean float32) int       { return 0 }
func archPdsub(g, p []float32, d float32) int                   { return 0 }
func archSwiglu(o, g, u []float32) int                          { return 0 }
func archSwigluBack(dg, du, a, g, u []float32) int              { return 0 }
func archTranspose(dst []float32, ldd int, src []float32, lds, rows, cols int) (int, int) {
	return 0, 0
}
func archRope(a, b, c, s []float32, sgn float32) int { return 0 }
func archNarrowBF16(d []uint16, s []float32) int     { return 0 }
func archWidenBF16(d []float32, s []uint16) int      { return 0 }
