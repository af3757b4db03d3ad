#include "textflag.h"
#include "tile14_amd64.h"

// bf16 micro-kernels on the fp32 FMA, for cores that issue VDPBF16PS at
// a lower rate than VFMADD231PS (see bf16fma.go). They compute exactly
// what kernelBF16x14x32 and kernelBF16x14x16 compute, bit for bit, from
// panels in the fp32 layout holding bf16 values (roundSwapPairsAVX512):
// row 2q of a panel holds the odd k step 2q+1 of pair q and row 2q+1 the
// even step 2q, so that running the fp32 kernel's loop over the rows
// performs, per lane, the two fused multiply-adds of one VDPBF16PS in its
// order (the odd product first), each rounded once to nearest even.
// VDPBF16PS also reads denormal inputs as zero and flushes denormal
// results to zero, so the K loop runs with MXCSR's DAZ and FTZ bits set
// (and rounding to nearest); the caller's MXCSR is restored before the
// epilogue, which is ordinary IEEE arithmetic as in the other kernels. An
// odd kc leaves the last pair without its odd step, where VDPBF16PS adds
// the padding product 0*0 = +0 first: that addition is done explicitly
// (it turns an accumulator of -0 into +0) before the last row.
//
// A Go assembly function is never preempted asynchronously, so no other
// goroutine can run on this thread with the modified MXCSR.

// MXCSR_BF16 saves MXCSR at 4(SP) and loads it with DAZ (bit 6) and FTZ
// (bit 15) set and the rounding control (bits 13-14) at nearest.
#define MXCSR_BF16 \
	STMXCSR 0(SP); \
	MOVL    0(SP), AX; \
	MOVL    AX, 4(SP); \
	ANDL    $0xffff9fff, AX; \
	ORL     $0x8040, AX; \
	MOVL    AX, 0(SP); \
	LDMXCSR 0(SP)

#define MXCSR_RESTORE \
	LDMXCSR 4(SP)

// One k row of the 14x32 tile, the fp32 AVX-512 kernel's (kernel_amd64.s).
#define ROW512(off, bc, r0, r1) \
	VBROADCASTSS off(SI), bc; \
	VFMADD231PS  Z28, bc, r0; \
	VFMADD231PS  Z29, bc, r1

#define STEP14x32 \
	VMOVUPS (DX), Z28; \
	VMOVUPS 64(DX), Z29; \
	ROW512(0, Z30, Z0, Z1); \
	ROW512(4, Z31, Z2, Z3); \
	ROW512(8, Z30, Z4, Z5); \
	ROW512(12, Z31, Z6, Z7); \
	ROW512(16, Z30, Z8, Z9); \
	ROW512(20, Z31, Z10, Z11); \
	ROW512(24, Z30, Z12, Z13); \
	ROW512(28, Z31, Z14, Z15); \
	ROW512(32, Z30, Z16, Z17); \
	ROW512(36, Z31, Z18, Z19); \
	ROW512(40, Z30, Z20, Z21); \
	ROW512(44, Z31, Z22, Z23); \
	ROW512(48, Z30, Z24, Z25); \
	ROW512(52, Z31, Z26, Z27); \
	ADDQ $64, SI; \
	ADDQ $128, DX

// func kernelBF16FMA14x32(kc int, a *float32, b *float32, c *float32, ldc int, alpha float32, beta float32)
TEXT ·kernelBF16FMA14x32(SB), NOSPLIT, $8-48
	MOVQ kc+0(FP), CX
	MOVQ CX, R11
	ANDQ $1, R11 // odd kc: the last row is a lone even step
	SUBQ R11, CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	// Pull the C tile toward L1 while the K loop runs (see kernelAVX512x14x32).
	MOVQ DI, R9
	MOVQ $14, R10

prefetchfma:
	PREFETCHT0 (R9)
	PREFETCHT0 64(R9)
	ADDQ       R8, R9
	DECQ       R10
	JNZ        prefetchfma

	MXCSR_BF16
	ZERO_14x32

	TESTQ CX, CX
	JLE   tailfma

loopfma:
	STEP14x32
	DECQ CX
	JNZ  loopfma

tailfma:
	TESTQ  R11, R11
	JZ     storefma
	VPXORD Z28, Z28, Z28
	VADDPS Z28, Z0, Z0
	VADDPS Z28, Z1, Z1
	VADDPS Z28, Z2, Z2
	VADDPS Z28, Z3, Z3
	VADDPS Z28, Z4, Z4
	VADDPS Z28, Z5, Z5
	VADDPS Z28, Z6, Z6
	VADDPS Z28, Z7, Z7
	VADDPS Z28, Z8, Z8
	VADDPS Z28, Z9, Z9
	VADDPS Z28, Z10, Z10
	VADDPS Z28, Z11, Z11
	VADDPS Z28, Z12, Z12
	VADDPS Z28, Z13, Z13
	VADDPS Z28, Z14, Z14
	VADDPS Z28, Z15, Z15
	VADDPS Z28, Z16, Z16
	VADDPS Z28, Z17, Z17
	VADDPS Z28, Z18, Z18
	VADDPS Z28, Z19, Z19
	VADDPS Z28, Z20, Z20
	VADDPS Z28, Z21, Z21
	VADDPS Z28, Z22, Z22
	VADDPS Z28, Z23, Z23
	VADDPS Z28, Z24, Z24
	VADDPS Z28, Z25, Z25
	VADDPS Z28, Z26, Z26
	VADDPS Z28, Z27, Z27
	STEP14x32

storefma:
	MXCSR_RESTORE
	VBROADCASTSS alpha+40(FP), Z30
	MOVL         beta+44(FP), AX
	TESTL        $0x7fffffff, AX // beta == 0, either sign
	JNZ          storebetafma
	STORE_14x32_0
	VZEROUPPER
	RET

storebetafma:
	VBROADCASTSS beta+44(FP), Z31
	STORE_14x32_B
	VZEROUPPER
	RET

// 14 x 16, the N-edge companion: the left 16 columns of a 32-wide panel.
#define ROWFMA16(off, bc, r) \
	VBROADCASTSS off(SI), bc; \
	VFMADD231PS  Z28, bc, r

#define STEP14x16 \
	VMOVUPS (DX), Z28; \
	ROWFMA16(0, Z30, Z0); \
	ROWFMA16(4, Z31, Z1); \
	ROWFMA16(8, Z30, Z2); \
	ROWFMA16(12, Z31, Z3); \
	ROWFMA16(16, Z30, Z4); \
	ROWFMA16(20, Z31, Z5); \
	ROWFMA16(24, Z30, Z6); \
	ROWFMA16(28, Z31, Z7); \
	ROWFMA16(32, Z30, Z8); \
	ROWFMA16(36, Z31, Z9); \
	ROWFMA16(40, Z30, Z10); \
	ROWFMA16(44, Z31, Z11); \
	ROWFMA16(48, Z30, Z12); \
	ROWFMA16(52, Z31, Z13); \
	ADDQ $64, SI; \
	ADDQ $128, DX

// func kernelBF16FMA14x16(kc int, a *float32, b *float32, c *float32, ldc int, alpha float32, beta float32)
TEXT ·kernelBF16FMA14x16(SB), NOSPLIT, $8-48
	MOVQ kc+0(FP), CX
	MOVQ CX, R11
	ANDQ $1, R11
	SUBQ R11, CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	MXCSR_BF16
	ZERO_14x16

	TESTQ CX, CX
	JLE   tailfma16

loopfma16:
	STEP14x16
	DECQ CX
	JNZ  loopfma16

tailfma16:
	TESTQ  R11, R11
	JZ     storefma16
	VPXORD Z28, Z28, Z28
	VADDPS Z28, Z0, Z0
	VADDPS Z28, Z1, Z1
	VADDPS Z28, Z2, Z2
	VADDPS Z28, Z3, Z3
	VADDPS Z28, Z4, Z4
	VADDPS Z28, Z5, Z5
	VADDPS Z28, Z6, Z6
	VADDPS Z28, Z7, Z7
	VADDPS Z28, Z8, Z8
	VADDPS Z28, Z9, Z9
	VADDPS Z28, Z10, Z10
	VADDPS Z28, Z11, Z11
	VADDPS Z28, Z12, Z12
	VADDPS Z28, Z13, Z13
	STEP14x16

storefma16:
	MXCSR_RESTORE
	VBROADCASTSS alpha+40(FP), Z30
	MOVL         beta+44(FP), AX
	TESTL        $0x7fffffff, AX
	JNZ          storebetafma16
	STORE_14x16_0
	VZEROUPPER
	RET

storebetafma16:
	VBROADCASTSS beta+44(FP), Z31
	STORE_14x16_B
	VZEROUPPER
	RET
