#include "textflag.h"

// Packing with AVX-512. Both routines write one panel column block of kc
// steps: dst[q*dstStride + i] for i < width (width <= 16), with lanes past
// the valid count zero-filled, so edge panels need no separate clearing.

DATA iota32<>+0(SB)/4, $0
DATA iota32<>+4(SB)/4, $1
DATA iota32<>+8(SB)/4, $2
DATA iota32<>+12(SB)/4, $3
DATA iota32<>+16(SB)/4, $4
DATA iota32<>+20(SB)/4, $5
DATA iota32<>+24(SB)/4, $6
DATA iota32<>+28(SB)/4, $7
DATA iota32<>+32(SB)/4, $8
DATA iota32<>+36(SB)/4, $9
DATA iota32<>+40(SB)/4, $10
DATA iota32<>+44(SB)/4, $11
DATA iota32<>+48(SB)/4, $12
DATA iota32<>+52(SB)/4, $13
DATA iota32<>+56(SB)/4, $14
DATA iota32<>+60(SB)/4, $15
GLOBL iota32<>(SB), RODATA|NOPTR, $64

// func packGatherAVX512(dst *float32, src *float32, ld int, rows int, width int, kc int, dstStride int)
// dst[q*dstStride+i] = src[i*ld+q] for i < rows, 0 for rows <= i < width.
// This is the transposing case (rows of the source become k steps): one
// gather collects column q of up to 16 source rows.
TEXT ·packGatherAVX512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ kc+40(FP), CX
	MOVQ dstStride+48(FP), R8
	SHLQ $2, R8

	// Z1 = byte offsets / 4 of the rows: i*ld.
	VPBROADCASTD ld+16(FP), Z2
	VPMULLD      iota32<>(SB), Z2, Z1

	// K2: rows to gather, K3: lanes to store.
	MOVQ  rows+24(FP), CX
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K2
	MOVQ  width+32(FP), CX
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K3
	MOVQ  kc+40(FP), CX
	TESTQ CX, CX
	JLE   gdone

gloop:
	VPXORD     Z0, Z0, Z0
	KMOVW      K2, K1
	VGATHERDPS (SI)(Z1*4), K1, Z0
	VMOVUPS    Z0, K3, (DI)
	ADDQ       $4, SI
	ADDQ       R8, DI
	DECQ       CX
	JNZ        gloop

gdone:
	VZEROUPPER
	RET

// func packCopyAVX512(dst *float32, src *float32, ld int, cols int, width int, kc int, dstStride int)
// dst[q*dstStride+j] = src[q*ld+j] for j < cols, 0 for cols <= j < width.
// This is the contiguous case: each k step is one masked vector load.
TEXT ·packCopyAVX512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R9
	SHLQ $2, R9
	MOVQ dstStride+48(FP), R8
	SHLQ $2, R8

	MOVQ  cols+24(FP), CX
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K2
	MOVQ  width+32(FP), CX
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K3
	MOVQ  kc+40(FP), CX
	TESTQ CX, CX
	JLE   cdone

cloop:
	VMOVUPS.Z (SI), K2, Z0
	VMOVUPS   Z0, K3, (DI)
	ADDQ      R9, SI
	ADDQ      R8, DI
	DECQ      CX
	JNZ       cloop

cdone:
	VZEROUPPER
	RET
