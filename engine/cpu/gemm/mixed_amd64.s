#include "textflag.h"

// func widenRowsAVX512(dst *float32, src *uint16, ld, rows, cols, ds int)
// Each row: the full vectors of 16 bf16 values zero-extended to 32 bits
// and shifted into the high half (the float32 of each, exact, a NaN then
// quieted: bit 22 set, as the packing's rounding does), then the cols%16
// left over through a zeroing mask, which also keeps the load from
// touching the elements past cols.
TEXT ·widenRowsAVX512(SB), NOSPLIT, $0-48
	MOVQ  dst+0(FP), DI
	MOVQ  src+8(FP), SI
	MOVQ  ld+16(FP), R8
	MOVQ  rows+24(FP), R9
	MOVQ  cols+32(FP), R10
	MOVQ  ds+40(FP), R11
	SHLQ  $1, R8
	SHLQ  $2, R11
	MOVQ  R10, CX
	ANDQ  $15, CX
	MOVL  $1, AX
	SHLL  CX, AX
	SUBL  $1, AX
	KMOVW AX, K2
	MOVQ  R10, R12
	SHRQ  $4, R12
	MOVL         $0x00400000, AX
	VPBROADCASTD AX, Z22

wrRow:
	MOVQ  SI, BX
	MOVQ  DI, DX
	MOVQ  R12, R13
	TESTQ R13, R13
	JZ    wrTail

wrFull:
	VPMOVZXWD (BX), Z0
	VPSLLD    $16, Z0, Z0
	VCMPPS    $3, Z0, Z0, K3
	VPORD     Z22, Z0, K3, Z0
	VMOVUPS   Z0, (DX)
	ADDQ      $32, BX
	ADDQ      $64, DX
	DECQ      R13
	JNZ       wrFull

wrTail:
	TESTQ       CX, CX
	JZ          wrNext
	VPMOVZXWD.Z (BX), K2, Z0
	VPSLLD      $16, Z0, Z0
	VCMPPS      $3, Z0, Z0, K3
	VPORD       Z22, Z0, K3, Z0
	VMOVUPS     Z0, (DX)

wrNext:
	ADDQ R8, SI
	ADDQ R11, DI
	DECQ R9
	JNZ  wrRow
	VZEROUPPER
	RET
