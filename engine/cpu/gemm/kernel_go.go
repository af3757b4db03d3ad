package gemm

import "unsafe"

// goKernel is the portable micro-kernel. A 4x4 tile keeps the sixteen
// accumulators plus eight operands within the sixteen floating-point
// registers Go's amd64 and arm64 back ends allocate, so the inner loop does
// not spill.
var goKernel = &kernel{name: "go", mr: 4, nr: 4, ms: 4, kc: 256, nc: 1024, fn: kernelGo4x4}

func kernelGo4x4(kc int, a, b, c *float32, ldc int, alpha, beta float32) {
	ap := unsafe.Slice(a, 4*kc)
	bp := unsafe.Slice(b, 4*kc)
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	for q := 0; q < kc; q++ {
		av := ap[4*q : 4*q+4 : 4*q+4]
		bv := bp[4*q : 4*q+4 : 4*q+4]
		a0, a1, a2, a3 := av[0], av[1], av[2], av[3]
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	cs := unsafe.Slice(c, 3*ldc+4)
	storeRow4(cs[0:4], c00, c01, c02, c03, alpha, beta)
	storeRow4(cs[ldc:ldc+4], c10, c11, c12, c13, alpha, beta)
	storeRow4(cs[2*ldc:2*ldc+4], c20, c21, c22, c23, alpha, beta)
	storeRow4(cs[3*ldc:3*ldc+4], c30, c31, c32, c33, alpha, beta)
}

// storeRow4 applies the epilogue to one tile row. The explicit float32
// conversions forbid the compiler from fusing the multiply and add, so the
// rounding matches the vector kernels' separate VMULPS/VADDPS.
func storeRow4(row []float32, v0, v1, v2, v3, alpha, beta float32) {
	row = row[:4]
	t0, t1, t2, t3 := float32(alpha*v0), float32(alpha*v1), float32(alpha*v2), float32(alpha*v3)
	if beta == 0 {
		row[0], row[1], row[2], row[3] = t0, t1, t2, t3
		return
	}
	row[0] = float32(beta*row[0]) + t0
	row[1] = float32(beta*row[1]) + t1
	row[2] = float32(beta*row[2]) + t2
	row[3] = float32(beta*row[3]) + t3
}
