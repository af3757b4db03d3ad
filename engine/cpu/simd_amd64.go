package cpu

import "golang.org/x/sys/cpu"

// bestSIMD is the widest variant this CPU (and OS: x/sys/cpu checks that
// the wide registers are saved) supports. The AVX-512 code uses AVX512F
// instructions only.
func bestSIMD() int {
	switch {
	case cpu.X86.HasAVX512F:
		return simdAVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return simdAVX2
	}
	return simdGo
}

// vecLen is the part of n the current variant handles: the largest
// multiple of its width.
func vecLen(n int) int {
	switch simdLevel {
	case simdAVX512:
		return n &^ 15
	case simdAVX2:
		return n &^ 7
	}
	return 0
}

// The arch* functions run the vector variant on a prefix of their
// slices and return its length (0 under the pure-Go variant), plus any
// partial result; the callers in simd.go finish the tail.

func archExpShiftSum(x []float32, shift float32) (int, float64) {
	k := vecLen(len(x))
	if k == 0 {
		return 0, 0
	}
	if simdLevel == simdAVX512 {
		return k, expShiftSum512(&x[0], k, shift)
	}
	return k, expShiftSum256(&x[0], k, shift)
}

func archMax(x []float32) (int, float32) {
	k := vecLen(len(x))
	if k == 0 {
		return 0, 0
	}
	if simdLevel == simdAVX512 {
		return k, max512(&x[0], k)
	}
	return k, max256(&x[0], k)
}

func archScale(x []float32, s float32) int {
	k := vecLen(len(x))
	if k == 0 {
		return 0
	}
	if simdLevel == simdAVX512 {
		scale512(&x[0], k, s)
	} else {
		scale256(&x[0], k, s)
	}
	return k
}

func archAdd(d, a, b []float32) int {
	k := vecLen(len(d))
	if k == 0 {
		return 0
	}
	if simdLevel == simdAVX512 {
		add512(&d[0], &a[0], &b[0], k)
	} else {
		add256(&d[0], &a[0], &b[0], k)
	}
	return k
}

func archDot64(a, b []float32) (int, float64) {
	k := vecLen(len(a))
	if k == 0 {
		return 0, 0
	}
	if simdLevel == simdAVX512 {
		return k, dot64x512(&a[0], &b[0], k)
	}
	return k, dot64x256(&a[0], &b[0], k)
}

func archAddSumSq(d, a, b []float32) (int, float64) {
	k := vecLen(len(d))
	if k == 0 {
		return 0, 0
	}
	if simdLevel == simdAVX512 {
		return k, addSumSq512(&d[0], &a[0], &b[0], k)
	}
	return k, addSumSq256(&d[0], &a[0], &b[0], k)
}

func archRMSBack(d, g, o []float32, rs, mean float32) int {
	k := vecLen(len(d))
	if k == 0 {
		return 0
	}
	if simdLevel == simdAVX512 {
		rmsBack512(&d[0], &g[0], &o[0], k, rs, mean)
	} else {
		rmsBack256(&d[0], &g[0], &o[0], k, rs, mean)
	}
	return k
}

func archPdsub(g, p []float32, d float32) int {
	k := vecLen(len(g))
	if k == 0 {
		return 0
	}
	if simdLevel == simdAVX512 {
		pdsub512(&g[0], &p[0], k, d)
	} else {
		pdsub256(&g[0], &p[0], k, d)
	}
	return k
}

func archSwiglu(o, g, u []float32) int {
	k := vecLen(len(o))
	if k == 0 {
		return 0
	}
	if simdLevel == simdAVX512 {
		swiglu512(&o[0], &g[0], &u[0], k)
	} else {
		swiglu256(&o[0], &g[0], &u[0], k)
	}
	return k
}

func archSwigluBack(dg, du, a, g, u []float32) int {
	k := vecLen(len(a))
	if k == 0 {
		return 0
	}
	if simdLevel == simdAVX512 {
		swigluBack512(&dg[0], &du[0], &a[0], &g[0], &u[0], k)
	} else {
		swigluBack256(&dg[0], &du[0], &a[0], &g[0], &u[0], k)
	}
	return k
}

// Assembly kernels (simd_amd64.s): n is a positive multiple of 16 (512)
// or 8 (256); the semantics are those of the Go function of the same stem.

//go:noescape
func expShiftSum512(x *float32, n int, shift float32) float64

//go:noescape
func max512(x *float32, n int) float32

//go:noescape
func scale512(x *float32, n int, s float32)

//go:noescape
func add512(d, a, b *float32, n int)

//go:noescape
func dot64x512(a, b *float32, n int) float64

//go:noescape
func addSumSq512(d, a, b *float32, n int) float64

//go:noescape
func rmsBack512(d, gv, o *float32, n int, rs, mean float32)

//go:noescape
func pdsub512(gv, p *float32, n int, d float32)

//go:noescape
func swiglu512(o, gv, u *float32, n int)

//go:noescape
func swigluBack512(dg, du, a, gv, u *float32, n int)

//go:noescape
func expShiftSum256(x *float32, n int, shift float32) float64

//go:noescape
func max256(x *float32, n int) float32

//go:noescape
func scale256(x *float32, n int, s float32)

//go:noescape
func add256(d, a, b *float32, n int)

//go:noescape
func dot64x256(a, b *float32, n int) float64

//go:noescape
func addSumSq256(d, a, b *float32, n int) float64

//go:noescape
func rmsBack256(d, gv, o *float32, n int, rs, mean float32)

//go:noescape
func pdsub256(gv, p *float32, n int, d float32)

//go:noescape
func swiglu256(o, gv, u *float32, n int)

//go:noescape
func swigluBack256(dg, du, a, gv, u *float32, n int)

// transpose8x8 writes dst[c*ldd+r] = src[r*lds+c] for r, c < 8 (AVX).
//
//go:noescape
func transpose8x8(dst *float32, ldd int, src *float32, lds int)

// archTranspose transposes the largest 8-aligned block of a tile with
// transpose8x8 (AVX2 level and up) and returns its size in rows and
// columns; the caller transposes the rest. src is rows x cols of stride
// lds, dst receives cols x rows of stride ldd.
func archTranspose(dst []float32, ldd int, src []float32, lds, rows, cols int) (int, int) {
	if simdLevel < simdAVX2 {
		return 0, 0
	}
	r8, c8 := rows&^7, cols&^7
	if r8 == 0 || c8 == 0 {
		return 0, 0
	}
	// Bounds: the last block reads src[(r8-1)*lds+c8-1] and writes
	// dst[(c8-1)*ldd+r8-1]; the slices must reach them.
	_ = src[(r8-1)*lds+c8-1]
	_ = dst[(c8-1)*ldd+r8-1]
	for r := 0; r < r8; r += 8 {
		for c := 0; c < c8; c += 8 {
			transpose8x8(&dst[c*ldd+r], ldd, &src[r*lds+c], lds)
		}
	}
	return r8, c8
}

func archRope(a, b, c, s []float32, sgn float32) int {
	k := vecLen(len(a))
	if k == 0 {
		return 0
	}
	if simdLevel == simdAVX512 {
		rope512(&a[0], &b[0], &c[0], &s[0], k, sgn)
	} else {
		rope256(&a[0], &b[0], &c[0], &s[0], k, sgn)
	}
	return k
}

//go:noescape
func rope512(a, b, c, s *float32, n int, sgn float32)

//go:noescape
func rope256(a, b, c, s *float32, n int, sgn float32)
