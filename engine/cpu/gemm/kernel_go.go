package gemm

import "unsafe"

// goKernel is the portable micro-kernel, a 4x4 tile. The tile is computed
// as two 2x4 halves, each with its own pass over k: eight accumulators plus
// two A values and one B value at a time stay within the 15 floating-point
// registers Go's amd64 back end allocates (a single 4x4 pass needs over 20
// and spills in the inner loop), and the second pass re-reads the small B
// panel from L1. The panels are read through unsafe offsets because the
// packed layout guarantees the bounds and the checks would double the loop.
var goKernel = &kernel{name: "go", mr: 4, nr: 4, ms: 4, kc: 256, nc: 1024, fn: kernelGo4x4}

func kernelGo4x4(kc int, a, b, c *float32, ldc int, alpha, beta float32) {
	cs := unsafe.Slice(c, 3*ldc+4)
	pb := unsafe.Pointer(b)
	for h := 0; h < 4; h += 2 {
		pa := unsafe.Add(unsafe.Pointer(a), 4*h)
		var c00, c01, c02, c03 float32
		var c10, c11, c12, c13 float32
		for q := 0; q < kc; q++ {
			a0 := *(*float32)(unsafe.Add(pa, 16*q))
			a1 := *(*float32)(unsafe.Add(pa, 16*q+4))
			b := *(*float32)(unsafe.Add(pb, 16*q))
			c00 += a0 * b
			c10 += a1 * b
			b = *(*float32)(unsafe.Add(pb, 16*q+4))
			c01 += a0 * b
			c11 += a1 * b
			b = *(*float32)(unsafe.Add(pb, 16*q+8))
			c02 += a0 * b
			c12 += a1 * b
			b = *(*float32)(unsafe.Add(pb, 16*q+12))
			c03 += a0 * b
			c13 += a1 * b
		}
		storeRow4(cs[h*ldc:h*ldc+4], c00, c01, c02, c03, alpha, beta)
		storeRow4(cs[(h+1)*ldc:(h+1)*ldc+4], c10, c11, c12, c13, alpha, beta)
	}
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
