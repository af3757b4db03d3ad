package cpu

// The elementwise kernels of the ops, each in pure Go here and, where the
// CPU has them, in AVX-512 or AVX2+FMA assembly (simd_amd64.s). The vector
// code runs on the longest prefix that is a multiple of its width and the
// pure-Go loop finishes the tail, so every length is valid. The variant is
// chosen once from the CPU's features; tests force each in turn with
// setSIMD. Vector results differ from the pure-Go ones in the last bits
// (fused multiply-adds, float64 sums in lanes) but, for one variant, depend
// only on the inputs, never on the thread count.

// SIMD levels, in increasing order of width.
const (
	simdGo     = iota // pure Go
	simdAVX2          // AVX2 + FMA, 8 floats
	simdAVX512        // AVX-512F, 16 floats
)

// simdLevel is the variant the kernels use: the best the CPU supports.
var simdLevel = bestSIMD()

// setSIMD forces a variant (tests) and returns the previous one; a level
// the CPU lacks falls back to the best one below it.
func setSIMD(level int) int {
	old := simdLevel
	simdLevel = min(level, bestSIMD())
	return old
}

// expShiftSum sets x[i] = e^(x[i] - shift) and returns the sum of the
// results, accumulated in float64.
func expShiftSum(x []float32, shift float32) float64 {
	k, s := archExpShiftSum(x, shift)
	for i := k; i < len(x); i++ {
		e := exp32(x[i] - shift)
		x[i] = e
		s += float64(e)
	}
	return s
}

// maxOf returns the largest element of x (len(x) > 0).
func maxOf(x []float32) float32 {
	k, m := archMax(x)
	if k == 0 {
		m, k = x[0], 1
	}
	for _, v := range x[k:] {
		m = max(m, v)
	}
	return m
}

// scale multiplies x by s in place.
func scale(x []float32, s float32) {
	for i := archScale(x, s); i < len(x); i++ {
		x[i] *= s
	}
}

// add writes d = a + b (d may alias a or b).
func add(d, a, b []float32) {
	a, b = a[:len(d)], b[:len(d)]
	for i := archAdd(d, a, b); i < len(d); i++ {
		d[i] = a[i] + b[i]
	}
}

// dot64 returns sum a[i] b[i] accumulated in float64 (each product of two
// float32 is exact in float64).
func dot64(a, b []float32) float64 {
	b = b[:len(a)]
	k, s := archDot64(a, b)
	for i := k; i < len(a); i++ {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// addSumSq writes d = a + b and returns sum d[i]^2 in float64: the residual
// add and the RMS statistics in one pass over memory.
func addSumSq(d, a, b []float32) float64 {
	a, b = a[:len(d)], b[:len(d)]
	k, s := archAddSumSq(d, a, b)
	for i := k; i < len(d); i++ {
		v := a[i] + b[i]
		d[i] = v
		s += float64(v) * float64(v)
	}
	return s
}

// rmsBack writes d = rs * (g - o*mean) (d may alias g).
func rmsBack(d, g, o []float32, rs, mean float32) {
	g, o = g[:len(d)], o[:len(d)]
	for i := archRMSBack(d, g, o, rs, mean); i < len(d); i++ {
		d[i] = rs * (g[i] - o[i]*mean)
	}
}

// pdsub writes g = p * (g - d), the softmax backward of one row.
func pdsub(g, p []float32, d float32) {
	p = p[:len(g)]
	for i := archPdsub(g, p, d); i < len(g); i++ {
		g[i] = p[i] * (g[i] - d)
	}
}

// swiglu writes o = silu(g) * u.
func swiglu(o, g, u []float32) {
	g, u = g[:len(o)], u[:len(o)]
	for i := archSwiglu(o, g, u); i < len(o); i++ {
		o[i] = g[i] * sigmoid32(g[i]) * u[i]
	}
}

// swigluBack writes dg = a u s (1 + g (1 - s)) and du = a g s with
// s = sigmoid(g), the gradients of o = silu(g) * u given a = do.
func swigluBack(dg, du, a, g, u []float32) {
	dg, du, g, u = dg[:len(a)], du[:len(a)], g[:len(a)], u[:len(a)]
	for i := archSwigluBack(dg, du, a, g, u); i < len(a); i++ {
		s := sigmoid32(g[i])
		dg[i] = a[i] * u[i] * s * (1 + g[i]*(1-s))
		du[i] = a[i] * g[i] * s
	}
}

// transposeTile writes dst[c*ldd+r] = src[r*lds+c] for r < rows, c < cols:
// 8 x 8 blocks in registers where the CPU allows, then the edges.
func transposeTile(dst []float32, ldd int, src []float32, lds, rows, cols int) {
	r8, c8 := archTranspose(dst, ldd, src, lds, rows, cols)
	for r := 0; r < rows; r++ {
		c0 := 0
		if r < r8 {
			c0 = c8 // the block already covered columns [0, c8) of these rows
		}
		row := src[r*lds+c0 : r*lds+cols]
		for c, v := range row {
			dst[(c0+c)*ldd+r] = v
		}
	}
}

// rope rotates the pairs (a[j], b[j]) by the angles with cosines c and
// sines s: a, b = a c - b s, b c + a s; inverse rotates the other way
// (the transpose, for the backward pass).
func rope(a, b, c, s []float32, inverse bool) {
	b, c, s = b[:len(a)], c[:len(a)], s[:len(a)]
	sgn := float32(1)
	if inverse {
		sgn = -1
	}
	for k := archRope(a, b, c, s, sgn); k < len(a); k++ {
		x, y := a[k], b[k]
		if inverse {
			a[k], b[k] = x*c[k]+y*s[k], y*c[k]-x*s[k]
		} else {
			a[k], b[k] = x*c[k]-y*s[k], y*c[k]+x*s[k]
		}
	}
}
