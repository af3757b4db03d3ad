#include "textflag.h"
#include "tile14_amd64.h"
#include "dpbf16_amd64.h"

// bf16 micro-kernels (AVX512_BF16). Same contract as the fp32 kernels (see
// the kernel type), except that the packed panels hold bf16 pairs: word p
// of a panel lane is bf16(x[2p]) | bf16(x[2p+1])<<16 for the lane's
// operand x along k, and kc (the number of k steps) makes (kc+1)/2 pair
// steps. A pair step of the A panel is 16 words (14 rows used, 64 bytes),
// of the B panel 32 words (128 bytes), exactly the fp32 layout with one
// pair in place of one float.
//
// VDPBF16PS and the DPBF16 macro that emits it are described in
// dpbf16_amd64.h.

// func dpbf16ps(out *[32]float32, acc *[16]float32, a *[16]uint32, b *[16]uint32)
// out[0:16] and out[16:32] both get VDPBF16PS(acc, a, b), computed once in
// Z9 (sources Z17, Z26) and once in Z26 (sources Z9, Z17): one instruction
// at a time for the model test, with every extension bit of the encoding
// (R, R', X, B, V') set to 1 in one of the two and 0 in the other.
TEXT ·dpbf16ps(SB), NOSPLIT, $0-32
	MOVQ    out+0(FP), R8
	MOVQ    acc+8(FP), DI
	MOVQ    a+16(FP), SI
	MOVQ    b+24(FP), DX
	VMOVUPS (DI), Z9
	VMOVUPS (SI), Z17
	VMOVUPS (DX), Z26
	DPBF16(9, 17, 26)
	VMOVUPS Z9, (R8)
	VMOVUPS (DI), Z26
	VMOVUPS (SI), Z9
	VMOVUPS (DX), Z17
	DPBF16(26, 9, 17)
	VMOVUPS Z26, 64(R8)
	VZEROUPPER
	RET

// 14 x 32 tile, the layout of kernelAVX512x14x32: Z0..Z27 accumulate (row
// i in Z(2i), Z(2i+1)), Z28/Z29 hold a pair step of the B panel (32
// columns), Z30/Z31 alternate as the broadcast A pair of a row. One pair
// step is 2 loads, 14 broadcasts and 28 VDPBF16PS: 64 k-step
// multiply-adds per column pair in the time the fp32 kernel does 32.
#define ROWBF(off, bc, bn, r0, r1) \
	VPBROADCASTD off(SI), bc; \
	DPBF16(r0, 28, bn); \
	DPBF16(r1, 29, bn)

// func kernelBF16x14x32(kc int, a *float32, b *float32, c *float32, ldc int, alpha float32, beta float32)
TEXT ·kernelBF16x14x32(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	INCQ CX
	SHRQ $1, CX // pair steps
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	// Pull the C tile toward L1 while the K loop runs (see kernelAVX512x14x32).
	MOVQ DI, R9
	MOVQ $14, R10

prefetchbf:
	PREFETCHT0 (R9)
	PREFETCHT0 64(R9)
	ADDQ       R8, R9
	DECQ       R10
	JNZ        prefetchbf

	ZERO_14x32

	TESTQ CX, CX
	JLE   storebf

loopbf:
	VMOVUPS (DX), Z28
	VMOVUPS 64(DX), Z29
	ROWBF(0, Z30, 30, 0, 1)
	ROWBF(4, Z31, 31, 2, 3)
	ROWBF(8, Z30, 30, 4, 5)
	ROWBF(12, Z31, 31, 6, 7)
	ROWBF(16, Z30, 30, 8, 9)
	ROWBF(20, Z31, 31, 10, 11)
	ROWBF(24, Z30, 30, 12, 13)
	ROWBF(28, Z31, 31, 14, 15)
	ROWBF(32, Z30, 30, 16, 17)
	ROWBF(36, Z31, 31, 18, 19)
	ROWBF(40, Z30, 30, 20, 21)
	ROWBF(44, Z31, 31, 22, 23)
	ROWBF(48, Z30, 30, 24, 25)
	ROWBF(52, Z31, 31, 26, 27)
	ADDQ $64, SI
	ADDQ $128, DX
	DECQ CX
	JNZ  loopbf

storebf:
	VBROADCASTSS alpha+40(FP), Z30
	MOVL         beta+44(FP), AX
	TESTL        $0x7fffffff, AX // beta == 0, either sign
	JNZ          storebetabf
	STORE_14x32_0
	VZEROUPPER
	RET

storebetabf:
	VBROADCASTSS beta+44(FP), Z31
	STORE_14x32_B
	VZEROUPPER
	RET

// 14 x 16, the N-edge companion (see kernelAVX512x14x16): the left 16
// columns of a 32-wide packed B panel, one accumulator per row in Z0..Z13,
// broadcasts alternating between Z30 and Z31.
#define ROWBF16(off, bc, bn, r) \
	VPBROADCASTD off(SI), bc; \
	DPBF16(r, 28, bn)

// func kernelBF16x14x16(kc int, a *float32, b *float32, c *float32, ldc int, alpha float32, beta float32)
TEXT ·kernelBF16x14x16(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	INCQ CX
	SHRQ $1, CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	ZERO_14x16

	TESTQ CX, CX
	JLE   storebf16

loopbf16:
	VMOVUPS (DX), Z28
	ROWBF16(0, Z30, 30, 0)
	ROWBF16(4, Z31, 31, 1)
	ROWBF16(8, Z30, 30, 2)
	ROWBF16(12, Z31, 31, 3)
	ROWBF16(16, Z30, 30, 4)
	ROWBF16(20, Z31, 31, 5)
	ROWBF16(24, Z30, 30, 6)
	ROWBF16(28, Z31, 31, 7)
	ROWBF16(32, Z30, 30, 8)
	ROWBF16(36, Z31, 31, 9)
	ROWBF16(40, Z30, 30, 10)
	ROWBF16(44, Z31, 31, 11)
	ROWBF16(48, Z30, 30, 12)
	ROWBF16(52, Z31, 31, 13)
	ADDQ $64, SI
	ADDQ $128, DX
	DECQ CX
	JNZ  loopbf16

storebf16:
	VBROADCASTSS alpha+40(FP), Z30
	MOVL         beta+44(FP), AX
	TESTL        $0x7fffffff, AX
	JNZ          storebetabf16
	STORE_14x16_0
	VZEROUPPER
	RET

storebetabf16:
	VBROADCASTSS beta+44(FP), Z31
	STORE_14x16_B
	VZEROUPPER
	RET
