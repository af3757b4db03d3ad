// Conversions between float32 and bf16 storage (bf16store.go), AVX-512F.
// Lengths are positive multiples of 16; the Go wrappers do the tails.

#include "textflag.h"

// func narrowBF16x512(d *uint16, s *float32, n int)
// d[i] = bf16 of s[i], round to nearest even on the bits, a NaN quieted:
// (x + 0x7fff + (x>>16 & 1)) >> 16, or (x | 0x00400000) >> 16 for a NaN,
// the rounding of the bf16 GEMM's packing (engine/cpu/gemm/bf16round_amd64.h).
TEXT ·narrowBF16x512(SB), NOSPLIT, $0-24
	MOVQ         d+0(FP), DI
	MOVQ         s+8(FP), SI
	MOVQ         n+16(FP), CX
	MOVL         $1, AX
	VPBROADCASTD AX, Z20
	MOVL         $0x7fff, AX
	VPBROADCASTD AX, Z21
	MOVL         $0x00400000, AX
	VPBROADCASTD AX, Z22

nbLoop:
	VMOVDQU32 (SI), Z0
	VPSRLD    $16, Z0, Z1
	VPANDD    Z20, Z1, Z1
	VPADDD    Z21, Z1, Z1
	VPADDD    Z0, Z1, Z1
	VCMPPS    $3, Z0, Z0, K1
	VPORD     Z22, Z0, K1, Z1
	VPSRLD    $16, Z1, Z1
	VPMOVDW   Z1, (DI)
	ADDQ      $64, SI
	ADDQ      $32, DI
	SUBQ      $16, CX
	JNZ       nbLoop
	VZEROUPPER
	RET

// func widenBF16x512(d *float32, s *uint16, n int)
// d[i] = the float32 of s[i] (s[i] << 16, exact).
TEXT ·widenBF16x512(SB), NOSPLIT, $0-24
	MOVQ d+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ n+16(FP), CX

wbLoop:
	VPMOVZXWD (SI), Z0
	VPSLLD    $16, Z0, Z0
	VMOVDQU32 Z0, (DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	SUBQ      $16, CX
	JNZ       wbLoop
	VZEROUPPER
	RET
