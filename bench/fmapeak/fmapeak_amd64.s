#include "textflag.h"

// func loop(iters int)
// Twelve independent chains of zmm FMAs, enough to cover the FMA latency
// on both pipes: 384 flops per iteration.
TEXT ·loop(SB), NOSPLIT, $0-8
	MOVQ   iters+0(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13

loop:
	VFMADD231PS Z12, Z13, Z0
	VFMADD231PS Z12, Z13, Z1
	VFMADD231PS Z12, Z13, Z2
	VFMADD231PS Z12, Z13, Z3
	VFMADD231PS Z12, Z13, Z4
	VFMADD231PS Z12, Z13, Z5
	VFMADD231PS Z12, Z13, Z6
	VFMADD231PS Z12, Z13, Z7
	VFMADD231PS Z12, Z13, Z8
	VFMADD231PS Z12, Z13, Z9
	VFMADD231PS Z12, Z13, Z10
	VFMADD231PS Z12, Z13, Z11
	DECQ        CX
	JNZ         loop
	VZEROUPPER
	RET

// DPBF16(d, v, s) emits VDPBF16PS zmm(d), zmm(v), zmm(s) byte by byte:
// Go's assembler does not know the instruction. EVEX.512.F3.0F38.W0 52 /r
// with register-direct ModRM; the field by field derivation is in
// engine/cpu/gemm/dpbf16_amd64.h, which this copies (a package's assembly
// can include only headers of its own directory).
#define DPBF16(d, v, s) \
	BYTE $0x62; \
	BYTE $(((((d)>>3)&1)^1)<<7 | ((((s)>>4)&1)^1)<<6 | ((((s)>>3)&1)^1)<<5 | ((((d)>>4)&1)^1)<<4 | 2); \
	BYTE $((((v)&15)^15)<<3 | 4 | 2); \
	BYTE $(2<<5 | ((((v)>>4)&1)^1)<<3); \
	BYTE $0x52; \
	BYTE $(0xC0 | ((d)&7)<<3 | ((s)&7))

// func loopBF16(iters int, a, b *[16]uint32, out *[bf16Chains * 16]float32)
// Runs iters x 24 independent VDPBF16PS on zmm registers (24 accumulators
// of 16 lanes, each instruction two multiply-adds per lane: 1536 flops per
// iteration), every one reading the bf16 pairs a (Z30) and b (Z31), then
// stores the accumulators Z0..Z23 to out, so a test can check that the
// loop computed what VDPBF16PS computes. Twenty-four chains cover six
// cycles of latency on four pipes, more than any current core has, so the
// loop measures the instruction's issue limit.
TEXT ·loopBF16(SB), NOSPLIT, $0-32
	MOVQ    iters+0(FP), CX
	MOVQ    a+8(FP), SI
	MOVQ    b+16(FP), DX
	MOVQ    out+24(FP), DI
	VMOVUPS (SI), Z30
	VMOVUPS (DX), Z31
	VPXORD  Z0, Z0, Z0
	VPXORD  Z1, Z1, Z1
	VPXORD  Z2, Z2, Z2
	VPXORD  Z3, Z3, Z3
	VPXORD  Z4, Z4, Z4
	VPXORD  Z5, Z5, Z5
	VPXORD  Z6, Z6, Z6
	VPXORD  Z7, Z7, Z7
	VPXORD  Z8, Z8, Z8
	VPXORD  Z9, Z9, Z9
	VPXORD  Z10, Z10, Z10
	VPXORD  Z11, Z11, Z11
	VPXORD  Z12, Z12, Z12
	VPXORD  Z13, Z13, Z13
	VPXORD  Z14, Z14, Z14
	VPXORD  Z15, Z15, Z15
	VPXORD  Z16, Z16, Z16
	VPXORD  Z17, Z17, Z17
	VPXORD  Z18, Z18, Z18
	VPXORD  Z19, Z19, Z19
	VPXORD  Z20, Z20, Z20
	VPXORD  Z21, Z21, Z21
	VPXORD  Z22, Z22, Z22
	VPXORD  Z23, Z23, Z23
	TESTQ   CX, CX
	JLE     bf16done

bf16loop:
	DPBF16(0, 30, 31)
	DPBF16(1, 30, 31)
	DPBF16(2, 30, 31)
	DPBF16(3, 30, 31)
	DPBF16(4, 30, 31)
	DPBF16(5, 30, 31)
	DPBF16(6, 30, 31)
	DPBF16(7, 30, 31)
	DPBF16(8, 30, 31)
	DPBF16(9, 30, 31)
	DPBF16(10, 30, 31)
	DPBF16(11, 30, 31)
	DPBF16(12, 30, 31)
	DPBF16(13, 30, 31)
	DPBF16(14, 30, 31)
	DPBF16(15, 30, 31)
	DPBF16(16, 30, 31)
	DPBF16(17, 30, 31)
	DPBF16(18, 30, 31)
	DPBF16(19, 30, 31)
	DPBF16(20, 30, 31)
	DPBF16(21, 30, 31)
	DPBF16(22, 30, 31)
	DPBF16(23, 30, 31)
	DECQ    CX
	JNZ     bf16loop

bf16done:
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 256(DI)
	VMOVUPS Z5, 320(DI)
	VMOVUPS Z6, 384(DI)
	VMOVUPS Z7, 448(DI)
	VMOVUPS Z8, 512(DI)
	VMOVUPS Z9, 576(DI)
	VMOVUPS Z10, 640(DI)
	VMOVUPS Z11, 704(DI)
	VMOVUPS Z12, 768(DI)
	VMOVUPS Z13, 832(DI)
	VMOVUPS Z14, 896(DI)
	VMOVUPS Z15, 960(DI)
	VMOVUPS Z16, 1024(DI)
	VMOVUPS Z17, 1088(DI)
	VMOVUPS Z18, 1152(DI)
	VMOVUPS Z19, 1216(DI)
	VMOVUPS Z20, 1280(DI)
	VMOVUPS Z21, 1344(DI)
	VMOVUPS Z22, 1408(DI)
	VMOVUPS Z23, 1472(DI)
	VZEROUPPER
	RET
