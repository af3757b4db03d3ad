#include "textflag.h"
#include "tile14_amd64.h"

// Vector micro-kernels. Both follow the same contract as kernelGo4x4 (see
// the kernel type): accumulate a packed mr x kc A micro-panel against a
// packed kc x nr B micro-panel in registers, then store alpha*acc (beta == 0)
// or beta*C + alpha*acc with one rounding per operation.
//
// Register tiling: C's rows are contiguous, so one k step loads nr/16 (or
// nr/8) vectors of a B row and, for each of the mr rows, broadcasts one A
// value and issues one FMA per B vector. Every broadcast and B load feeds
// several FMAs, and there are far more independent accumulators than the
// FMA latency (4 cycles) times throughput requires.

// AVX-512, 14 x 32 (A panel padded to 16 floats per k step): Z0..Z27 hold the tile (row i in Z(2i), Z(2i+1)), Z28/Z29
// the B row, Z30/Z31 alternate as broadcast registers so consecutive rows do
// not wait on each other. Per k step: 2 loads + 14 broadcasts for 28 FMAs,
// well inside Zen 4's load bandwidth, and 31 of 32 registers in use, so no
// larger tile fits.
#define ROW512(off, bc, r0, r1) \
	VBROADCASTSS off(SI), bc; \
	VFMADD231PS  Z28, bc, r0; \
	VFMADD231PS  Z29, bc, r1

// func kernelAVX512x14x32(kc int, a *float32, b *float32, c *float32, ldc int, alpha float32, beta float32)
TEXT ·kernelAVX512x14x32(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	// Pull the C tile toward L1 while the K loop runs; it is only touched
	// at the end, and its rows are ldc apart, a pattern the hardware
	// prefetchers do not follow across tiles.
	MOVQ DI, R9
	MOVQ $14, R10

prefetch512:
	PREFETCHT0 (R9)
	PREFETCHT0 64(R9)
	ADDQ       R8, R9
	DECQ       R10
	JNZ        prefetch512

	ZERO_14x32

	TESTQ CX, CX
	JLE   store512

loop512:
	VMOVUPS (DX), Z28
	VMOVUPS 64(DX), Z29
	ROW512(0, Z30, Z0, Z1)
	ROW512(4, Z31, Z2, Z3)
	ROW512(8, Z30, Z4, Z5)
	ROW512(12, Z31, Z6, Z7)
	ROW512(16, Z30, Z8, Z9)
	ROW512(20, Z31, Z10, Z11)
	ROW512(24, Z30, Z12, Z13)
	ROW512(28, Z31, Z14, Z15)
	ROW512(32, Z30, Z16, Z17)
	ROW512(36, Z31, Z18, Z19)
	ROW512(40, Z30, Z20, Z21)
	ROW512(44, Z31, Z22, Z23)
	ROW512(48, Z30, Z24, Z25)
	ROW512(52, Z31, Z26, Z27)
	ADDQ $64, SI
	ADDQ $128, DX
	DECQ CX
	JNZ  loop512

store512:
	VBROADCASTSS alpha+40(FP), Z30
	MOVL         beta+44(FP), AX
	TESTL        $0x7fffffff, AX // beta == 0, either sign
	JNZ          storebeta512
	STORE_14x32_0
	VZEROUPPER
	RET

storebeta512:
	VBROADCASTSS beta+44(FP), Z31
	STORE_14x32_B
	VZEROUPPER
	RET

// AVX2/FMA, 6 x 16: only 16 ymm registers exist without AVX-512, so the
// classic 6 x 16 tile is the largest that fits: Y0..Y11 accumulate (row i in
// Y(2i), Y(2i+1)), Y12/Y13 hold the B row, Y14/Y15 alternate as broadcasts.
// 12 accumulators cover two FMA pipes of latency 4 with room to spare.
#define ROW256(off, bc, r0, r1) \
	VBROADCASTSS off(SI), bc; \
	VFMADD231PS  Y12, bc, r0; \
	VFMADD231PS  Y13, bc, r1

#define STORE256_0(r0, r1) \
	VMULPS  Y14, r0, r0; \
	VMULPS  Y14, r1, r1; \
	VMOVUPS r0, (DI); \
	VMOVUPS r1, 32(DI); \
	ADDQ    R8, DI

#define STORE256_B(r0, r1) \
	VMULPS  Y14, r0, r0; \
	VMULPS  Y14, r1, r1; \
	VMULPS  (DI), Y15, Y12; \
	VMULPS  32(DI), Y15, Y13; \
	VADDPS  Y12, r0, r0; \
	VADDPS  Y13, r1, r1; \
	VMOVUPS r0, (DI); \
	VMOVUPS r1, 32(DI); \
	ADDQ    R8, DI

// func kernelAVX2x6x16(kc int, a *float32, b *float32, c *float32, ldc int, alpha float32, beta float32)
TEXT ·kernelAVX2x6x16(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	MOVQ DI, R9
	MOVQ $6, R10

prefetch256:
	PREFETCHT0 (R9)
	PREFETCHT0 63(R9) // last byte of the 64-byte row, which may straddle a line
	ADDQ       R8, R9
	DECQ       R10
	JNZ        prefetch256

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	TESTQ CX, CX
	JLE   store256

loop256:
	VMOVUPS (DX), Y12
	VMOVUPS 32(DX), Y13
	ROW256(0, Y14, Y0, Y1)
	ROW256(4, Y15, Y2, Y3)
	ROW256(8, Y14, Y4, Y5)
	ROW256(12, Y15, Y6, Y7)
	ROW256(16, Y14, Y8, Y9)
	ROW256(20, Y15, Y10, Y11)
	ADDQ $24, SI
	ADDQ $64, DX
	DECQ CX
	JNZ  loop256

store256:
	VBROADCASTSS alpha+40(FP), Y14
	MOVL         beta+44(FP), AX
	TESTL        $0x7fffffff, AX
	JNZ          storebeta256
	STORE256_0(Y0, Y1)
	STORE256_0(Y2, Y3)
	STORE256_0(Y4, Y5)
	STORE256_0(Y6, Y7)
	STORE256_0(Y8, Y9)
	STORE256_0(Y10, Y11)
	VZEROUPPER
	RET

storebeta256:
	VBROADCASTSS beta+44(FP), Y15
	STORE256_B(Y0, Y1)
	STORE256_B(Y2, Y3)
	STORE256_B(Y4, Y5)
	STORE256_B(Y6, Y7)
	STORE256_B(Y8, Y9)
	STORE256_B(Y10, Y11)
	VZEROUPPER
	RET

// AVX-512, 14 x 16, the N-edge companion of the 14 x 32 kernel: it reads
// the first 16 columns of a packed 32-wide B micro-panel (k steps 128 bytes
// apart) and is used when at most 16 columns of a panel are valid, halving
// the wasted work there. One zmm accumulator per row, Z0..Z13; with a single
// FMA per broadcast value, the broadcast is folded into the FMA's memory
// operand ({1to16}).
#define ROW16(off, r) VFMADD231PS.BCST off(SI), Z28, r

// func kernelAVX512x14x16(kc int, a *float32, b *float32, c *float32, ldc int, alpha float32, beta float32)
TEXT ·kernelAVX512x14x16(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	ZERO_14x16

	TESTQ CX, CX
	JLE   store16

loop16:
	VMOVUPS (DX), Z28
	ROW16(0, Z0)
	ROW16(4, Z1)
	ROW16(8, Z2)
	ROW16(12, Z3)
	ROW16(16, Z4)
	ROW16(20, Z5)
	ROW16(24, Z6)
	ROW16(28, Z7)
	ROW16(32, Z8)
	ROW16(36, Z9)
	ROW16(40, Z10)
	ROW16(44, Z11)
	ROW16(48, Z12)
	ROW16(52, Z13)
	ADDQ $64, SI
	ADDQ $128, DX
	DECQ CX
	JNZ  loop16

store16:
	VBROADCASTSS alpha+40(FP), Z30
	MOVL         beta+44(FP), AX
	TESTL        $0x7fffffff, AX
	JNZ          storebeta16
	STORE_14x16_0
	VZEROUPPER
	RET

storebeta16:
	VBROADCASTSS beta+44(FP), Z31
	STORE_14x16_B
	VZEROUPPER
	RET

// func kernelAVX512x14x32S(kc int, a *float32, b *float32, c *float32, ldc int, alpha float32, beta float32, sa int, sb int)
//
// kernelAVX512x14x32 with the k steps of A and B sa and sb bytes apart
// instead of 64 and 128, so that an operand already laid out as a panel
// in the caller's matrix (op(A) = A^T: 14 consecutive floats of a row of A
// per k step; op(B) = B: 32 consecutive floats of a row of B) is read in
// place instead of packed. The arithmetic is the packed kernel's, operation
// for operation, so where a panel comes from never changes the result.
// Strided rows defeat the L1 streamer less than the packed sequence would
// suggest, but still get a software prefetch 8 k steps ahead.
TEXT ·kernelAVX512x14x32S(SB), NOSPLIT, $0-64
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8
	MOVQ sa+48(FP), R11
	MOVQ sb+56(FP), R12

	MOVQ DI, R9
	MOVQ $14, R10

prefetchS512:
	PREFETCHT0 (R9)
	PREFETCHT0 64(R9)
	ADDQ       R8, R9
	DECQ       R10
	JNZ        prefetchS512

	ZERO_14x32

	TESTQ CX, CX
	JLE   storeS512

loopS512:
	PREFETCHT0 (SI)(R11*8)
	PREFETCHT0 (DX)(R12*8)
	PREFETCHT0 64(DX)(R12*8)
	VMOVUPS    (DX), Z28
	VMOVUPS    64(DX), Z29
	ROW512(0, Z30, Z0, Z1)
	ROW512(4, Z31, Z2, Z3)
	ROW512(8, Z30, Z4, Z5)
	ROW512(12, Z31, Z6, Z7)
	ROW512(16, Z30, Z8, Z9)
	ROW512(20, Z31, Z10, Z11)
	ROW512(24, Z30, Z12, Z13)
	ROW512(28, Z31, Z14, Z15)
	ROW512(32, Z30, Z16, Z17)
	ROW512(36, Z31, Z18, Z19)
	ROW512(40, Z30, Z20, Z21)
	ROW512(44, Z31, Z22, Z23)
	ROW512(48, Z30, Z24, Z25)
	ROW512(52, Z31, Z26, Z27)
	ADDQ       R11, SI
	ADDQ       R12, DX
	DECQ       CX
	JNZ        loopS512

storeS512:
	VBROADCASTSS alpha+40(FP), Z30
	MOVL         beta+44(FP), AX
	TESTL        $0x7fffffff, AX // beta == 0, either sign
	JNZ          storebetaS512
	STORE_14x32_0
	VZEROUPPER
	RET

storebetaS512:
	VBROADCASTSS beta+44(FP), Z31
	STORE_14x32_B
	VZEROUPPER
	RET
