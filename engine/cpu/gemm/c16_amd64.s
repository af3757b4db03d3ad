#include "textflag.h"
#include "bf16round_amd64.h"

// func roundTileAVX512(d *uint16, ldd int, t *float32, ldt, rows, cols int, beta float32)
// d[i*ldd+j] = bf16 of t[i*ldt+j], or with beta != 0 of
// float32(beta * float32(d[i*ldd+j])) + t[i*ldt+j] (a multiply and an add,
// each rounded, as the kernels merge C), rounded by ROUNDBF
// (bf16round_amd64.h). Each row: the full vectors of 16, then the cols%16
// left over through mask K2 (K1 is ROUNDBF's).
TEXT ·roundTileAVX512(SB), NOSPLIT, $0-52
	MOVQ         d+0(FP), DI
	MOVQ         ldd+8(FP), R8
	MOVQ         t+16(FP), SI
	MOVQ         ldt+24(FP), R11
	MOVQ         rows+32(FP), R9
	MOVQ         cols+40(FP), R10
	VBROADCASTSS beta+48(FP), Z24
	SHLQ         $1, R8
	SHLQ         $2, R11
	MOVQ         R10, CX
	ANDQ         $15, CX
	MOVL         $1, AX
	SHLL         CX, AX
	SUBL         $1, AX
	KMOVW        AX, K2
	MOVQ         R10, R12
	SHRQ         $4, R12
	BFCONSTS
	MOVL         beta+48(FP), AX
	TESTL        $0x7fffffff, AX
	JZ           plainRow

mergeRow:
	MOVQ  SI, BX
	MOVQ  DI, DX
	MOVQ  R12, R13
	TESTQ R13, R13
	JZ    mergeTail

mergeFull:
	VPMOVZXWD (DX), Z1
	VPSLLD    $16, Z1, Z1
	VMULPS    Z24, Z1, Z1
	VADDPS    (BX), Z1, Z0
	ROUNDBF(Z0, Z2)
	VPSRLD    $16, Z2, Z2
	VPMOVDW   Z2, (DX)
	ADDQ      $64, BX
	ADDQ      $32, DX
	DECQ      R13
	JNZ       mergeFull

mergeTail:
	TESTQ       CX, CX
	JZ          mergeNext
	VPMOVZXWD.Z (DX), K2, Z1
	VPSLLD      $16, Z1, Z1
	VMULPS      Z24, Z1, Z1
	VMOVUPS.Z   (BX), K2, Z3
	VADDPS      Z3, Z1, Z0
	ROUNDBF(Z0, Z2)
	VPSRLD      $16, Z2, Z2
	VPMOVDW     Z2, K2, (DX)

mergeNext:
	ADDQ R11, SI
	ADDQ R8, DI
	DECQ R9
	JNZ  mergeRow
	VZEROUPPER
	RET

plainRow:
	MOVQ  SI, BX
	MOVQ  DI, DX
	MOVQ  R12, R13
	TESTQ R13, R13
	JZ    plainTail

plainFull:
	VMOVUPS (BX), Z0
	ROUNDBF(Z0, Z2)
	VPSRLD  $16, Z2, Z2
	VPMOVDW Z2, (DX)
	ADDQ    $64, BX
	ADDQ    $32, DX
	DECQ    R13
	JNZ     plainFull

plainTail:
	TESTQ     CX, CX
	JZ        plainNext
	VMOVUPS.Z (BX), K2, Z0
	ROUNDBF(Z0, Z2)
	VPSRLD    $16, Z2, Z2
	VPMOVDW   Z2, K2, (DX)

plainNext:
	ADDQ R11, SI
	ADDQ R8, DI
	DECQ R9
	JNZ  plainRow
	VZEROUPPER
	RET
