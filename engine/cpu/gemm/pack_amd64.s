#include "textflag.h"
#include "bf16round_amd64.h"

// Packing with AVX-512. The routines write one panel column block of kc
// steps: dst[q*dstStride + i] for i < width (width <= 16), with lanes past
// the valid count zero-filled, so edge panels need no separate clearing.

// func packTransAVX512(dst *float32, src *float32, ld int, rows int, width int, kc int, dstStride int, rs int)
// dst[q*dstStride+i] = src[i*ld+q] for q < kc and i < rows, and zero for
// rows <= i < width (1 <= rows <= width <= 16). This is the transposing case
// (source rows become k steps). With rs != 0 it packs in the format of the
// fp32-FMA bf16 kernels instead (see roundSwapPairsAVX512 in
// pack_bf16_amd64.s): each value rounded to a bf16 value and the packed
// rows 2q and 2q+1 exchanged, an odd last row (odd kc) in place.
//
// Each iteration loads a 16 x 16 block (one zmm per source row; rows past
// rows stay zero) and transposes it in registers in four shuffle stages:
// interleave 32-bit pairs, then 64-bit pairs, which leaves every 128-bit
// lane holding a 4 x 4 transposed sub-block; two rounds of 128-bit lane
// shuffles then put the four sub-blocks of each output column together.
// 64 shuffles per 256 elements, several times cheaper than a gather per
// output column on current AMD cores. A last partial block (kc not a
// multiple of 16) is loaded with a lane mask and stores only its columns.
//
// Registers: SI source block, BX/DX/R11 source rows 4, 8, 12, R9/R10 one
// and three source rows in bytes, DI destination, R8/R12 one and three
// output columns in bytes, AX rows, CX full blocks left (-1 in the tail),
// R13 tail columns, K3 lanes stored, K4 lanes loaded.
TEXT ·packTransAVX512(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R9
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R10
	MOVQ rows+24(FP), AX
	MOVQ dstStride+48(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R12
	MOVQ width+32(FP), CX
	MOVL $1, DX
	SHLL CX, DX
	DECL DX
	KMOVW DX, K3
	MOVL $0xffff, DX
	KMOVW DX, K4
	MOVQ kc+40(FP), CX
	MOVQ CX, R13
	ANDQ $15, R13
	SHRQ $4, CX

tloop:
	TESTQ CX, CX
	JNZ   tload
	TESTQ R13, R13
	JZ    tdone
	// Tail: load only the remaining R13 columns; CX = -1 marks it.
	MOVL  $1, DX
	MOVQ  R13, CX
	SHLL  CX, DX
	DECL  DX
	KMOVW DX, K4
	MOVQ  $-1, CX

tload:
	LEAQ   (SI)(R9*4), BX
	LEAQ   (BX)(R9*4), DX
	LEAQ   (DX)(R9*4), R11
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
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VMOVUPS.Z (SI), K4, Z0
	CMPQ      AX, $1
	JEQ       tshuffle
	VMOVUPS.Z (SI)(R9*1), K4, Z1
	CMPQ      AX, $2
	JEQ       tshuffle
	VMOVUPS.Z (SI)(R9*2), K4, Z2
	CMPQ      AX, $3
	JEQ       tshuffle
	VMOVUPS.Z (SI)(R10*1), K4, Z3
	CMPQ      AX, $4
	JEQ       tshuffle
	VMOVUPS.Z (BX), K4, Z4
	CMPQ      AX, $5
	JEQ       tshuffle
	VMOVUPS.Z (BX)(R9*1), K4, Z5
	CMPQ      AX, $6
	JEQ       tshuffle
	VMOVUPS.Z (BX)(R9*2), K4, Z6
	CMPQ      AX, $7
	JEQ       tshuffle
	VMOVUPS.Z (BX)(R10*1), K4, Z7
	CMPQ      AX, $8
	JEQ       tshuffle
	VMOVUPS.Z (DX), K4, Z8
	CMPQ      AX, $9
	JEQ       tshuffle
	VMOVUPS.Z (DX)(R9*1), K4, Z9
	CMPQ      AX, $10
	JEQ       tshuffle
	VMOVUPS.Z (DX)(R9*2), K4, Z10
	CMPQ      AX, $11
	JEQ       tshuffle
	VMOVUPS.Z (DX)(R10*1), K4, Z11
	CMPQ      AX, $12
	JEQ       tshuffle
	VMOVUPS.Z (R11), K4, Z12
	CMPQ      AX, $13
	JEQ       tshuffle
	VMOVUPS.Z (R11)(R9*1), K4, Z13
	CMPQ      AX, $14
	JEQ       tshuffle
	VMOVUPS.Z (R11)(R9*2), K4, Z14
	CMPQ      AX, $15
	JEQ       tshuffle
	VMOVUPS.Z (R11)(R10*1), K4, Z15

tshuffle:
	// Stage 1: t[2p], t[2p+1] interleave rows 2p and 2p+1 (32-bit).
	VUNPCKLPS Z1, Z0, Z16
	VUNPCKHPS Z1, Z0, Z17
	VUNPCKLPS Z3, Z2, Z18
	VUNPCKHPS Z3, Z2, Z19
	VUNPCKLPS Z5, Z4, Z20
	VUNPCKHPS Z5, Z4, Z21
	VUNPCKLPS Z7, Z6, Z22
	VUNPCKHPS Z7, Z6, Z23
	VUNPCKLPS Z9, Z8, Z24
	VUNPCKHPS Z9, Z8, Z25
	VUNPCKLPS Z11, Z10, Z26
	VUNPCKHPS Z11, Z10, Z27
	VUNPCKLPS Z13, Z12, Z28
	VUNPCKHPS Z13, Z12, Z29
	VUNPCKLPS Z15, Z14, Z30
	VUNPCKHPS Z15, Z14, Z31

	// Stage 2 (64-bit): u[4g+c] lane l = column 4l+c of rows 4g..4g+3.
	VUNPCKLPD Z18, Z16, Z0
	VUNPCKHPD Z18, Z16, Z1
	VUNPCKLPD Z19, Z17, Z2
	VUNPCKHPD Z19, Z17, Z3
	VUNPCKLPD Z22, Z20, Z4
	VUNPCKHPD Z22, Z20, Z5
	VUNPCKLPD Z23, Z21, Z6
	VUNPCKHPD Z23, Z21, Z7
	VUNPCKLPD Z26, Z24, Z8
	VUNPCKHPD Z26, Z24, Z9
	VUNPCKLPD Z27, Z25, Z10
	VUNPCKHPD Z27, Z25, Z11
	VUNPCKLPD Z30, Z28, Z12
	VUNPCKHPD Z30, Z28, Z13
	VUNPCKLPD Z31, Z29, Z14
	VUNPCKHPD Z31, Z29, Z15

	// Stage 3: for each c, even and odd lanes of row groups (0,1), (2,3).
	VSHUFF32X4 $0x88, Z4, Z0, Z16
	VSHUFF32X4 $0xDD, Z4, Z0, Z17
	VSHUFF32X4 $0x88, Z12, Z8, Z18
	VSHUFF32X4 $0xDD, Z12, Z8, Z19
	VSHUFF32X4 $0x88, Z5, Z1, Z20
	VSHUFF32X4 $0xDD, Z5, Z1, Z21
	VSHUFF32X4 $0x88, Z13, Z9, Z22
	VSHUFF32X4 $0xDD, Z13, Z9, Z23
	VSHUFF32X4 $0x88, Z6, Z2, Z24
	VSHUFF32X4 $0xDD, Z6, Z2, Z25
	VSHUFF32X4 $0x88, Z14, Z10, Z26
	VSHUFF32X4 $0xDD, Z14, Z10, Z27
	VSHUFF32X4 $0x88, Z7, Z3, Z28
	VSHUFF32X4 $0xDD, Z7, Z3, Z29
	VSHUFF32X4 $0x88, Z15, Z11, Z30
	VSHUFF32X4 $0xDD, Z15, Z11, Z31

	// Stage 4: output column j = 4l+c lands in Z(j).
	VSHUFF32X4 $0x88, Z18, Z16, Z0
	VSHUFF32X4 $0xDD, Z18, Z16, Z8
	VSHUFF32X4 $0x88, Z19, Z17, Z4
	VSHUFF32X4 $0xDD, Z19, Z17, Z12
	VSHUFF32X4 $0x88, Z22, Z20, Z1
	VSHUFF32X4 $0xDD, Z22, Z20, Z9
	VSHUFF32X4 $0x88, Z23, Z21, Z5
	VSHUFF32X4 $0xDD, Z23, Z21, Z13
	VSHUFF32X4 $0x88, Z26, Z24, Z2
	VSHUFF32X4 $0xDD, Z26, Z24, Z10
	VSHUFF32X4 $0x88, Z27, Z25, Z6
	VSHUFF32X4 $0xDD, Z27, Z25, Z14
	VSHUFF32X4 $0x88, Z30, Z28, Z3
	VSHUFF32X4 $0xDD, Z30, Z28, Z11
	VSHUFF32X4 $0x88, Z31, Z29, Z7
	VSHUFF32X4 $0xDD, Z31, Z29, Z15

	CMPQ rs+56(FP), $0
	JNE  trs
	TESTQ CX, CX
	JS    ttail

	VMOVUPS Z0, K3, (DI)
	VMOVUPS Z1, K3, (DI)(R8*1)
	VMOVUPS Z2, K3, (DI)(R8*2)
	VMOVUPS Z3, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	VMOVUPS Z4, K3, (DI)
	VMOVUPS Z5, K3, (DI)(R8*1)
	VMOVUPS Z6, K3, (DI)(R8*2)
	VMOVUPS Z7, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	VMOVUPS Z8, K3, (DI)
	VMOVUPS Z9, K3, (DI)(R8*1)
	VMOVUPS Z10, K3, (DI)(R8*2)
	VMOVUPS Z11, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	VMOVUPS Z12, K3, (DI)
	VMOVUPS Z13, K3, (DI)(R8*1)
	VMOVUPS Z14, K3, (DI)(R8*2)
	VMOVUPS Z15, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	ADDQ    $64, SI
	DECQ    CX
	JMP     tloop

	// Tail block: store its first R13 (1..15) columns only.
ttail:
	VMOVUPS Z0, K3, (DI)
	CMPQ    R13, $1
	JEQ     tdone
	VMOVUPS Z1, K3, (DI)(R8*1)
	CMPQ    R13, $2
	JEQ     tdone
	VMOVUPS Z2, K3, (DI)(R8*2)
	CMPQ    R13, $3
	JEQ     tdone
	VMOVUPS Z3, K3, (DI)(R12*1)
	CMPQ    R13, $4
	JEQ     tdone
	LEAQ    (DI)(R8*4), DI
	VMOVUPS Z4, K3, (DI)
	CMPQ    R13, $5
	JEQ     tdone
	VMOVUPS Z5, K3, (DI)(R8*1)
	CMPQ    R13, $6
	JEQ     tdone
	VMOVUPS Z6, K3, (DI)(R8*2)
	CMPQ    R13, $7
	JEQ     tdone
	VMOVUPS Z7, K3, (DI)(R12*1)
	CMPQ    R13, $8
	JEQ     tdone
	LEAQ    (DI)(R8*4), DI
	VMOVUPS Z8, K3, (DI)
	CMPQ    R13, $9
	JEQ     tdone
	VMOVUPS Z9, K3, (DI)(R8*1)
	CMPQ    R13, $10
	JEQ     tdone
	VMOVUPS Z10, K3, (DI)(R8*2)
	CMPQ    R13, $11
	JEQ     tdone
	VMOVUPS Z11, K3, (DI)(R12*1)
	CMPQ    R13, $12
	JEQ     tdone
	LEAQ    (DI)(R8*4), DI
	VMOVUPS Z12, K3, (DI)
	CMPQ    R13, $13
	JEQ     tdone
	VMOVUPS Z13, K3, (DI)(R8*1)
	CMPQ    R13, $14
	JEQ     tdone
	VMOVUPS Z14, K3, (DI)(R8*2)
	JMP     tdone

	// The fp32-FMA bf16 format: round the 16 output columns, then store
	// each pair of them exchanged.
trs:
	BFCONSTSZ
	ROUNDBF32(Z0, Z24)
	ROUNDBF32(Z1, Z24)
	ROUNDBF32(Z2, Z24)
	ROUNDBF32(Z3, Z24)
	ROUNDBF32(Z4, Z24)
	ROUNDBF32(Z5, Z24)
	ROUNDBF32(Z6, Z24)
	ROUNDBF32(Z7, Z24)
	ROUNDBF32(Z8, Z24)
	ROUNDBF32(Z9, Z24)
	ROUNDBF32(Z10, Z24)
	ROUNDBF32(Z11, Z24)
	ROUNDBF32(Z12, Z24)
	ROUNDBF32(Z13, Z24)
	ROUNDBF32(Z14, Z24)
	ROUNDBF32(Z15, Z24)
	TESTQ CX, CX
	JS    trstail

	VMOVUPS Z1, K3, (DI)
	VMOVUPS Z0, K3, (DI)(R8*1)
	VMOVUPS Z3, K3, (DI)(R8*2)
	VMOVUPS Z2, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	VMOVUPS Z5, K3, (DI)
	VMOVUPS Z4, K3, (DI)(R8*1)
	VMOVUPS Z7, K3, (DI)(R8*2)
	VMOVUPS Z6, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	VMOVUPS Z9, K3, (DI)
	VMOVUPS Z8, K3, (DI)(R8*1)
	VMOVUPS Z11, K3, (DI)(R8*2)
	VMOVUPS Z10, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	VMOVUPS Z13, K3, (DI)
	VMOVUPS Z12, K3, (DI)(R8*1)
	VMOVUPS Z15, K3, (DI)(R8*2)
	VMOVUPS Z14, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	ADDQ    $64, SI
	DECQ    CX
	JMP     tloop

	// Tail block of R13 (1..15) columns: whole pairs exchanged; with an
	// odd count (odd kc) the last column stays in its row.
trstail:
	CMPQ    R13, $1
	JEQ     trs0
	VMOVUPS Z1, K3, (DI)
	VMOVUPS Z0, K3, (DI)(R8*1)
	CMPQ    R13, $3
	JLT     tdone
	JEQ     trs2
	VMOVUPS Z3, K3, (DI)(R8*2)
	VMOVUPS Z2, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	CMPQ    R13, $5
	JLT     tdone
	JEQ     trs0x4
	VMOVUPS Z5, K3, (DI)
	VMOVUPS Z4, K3, (DI)(R8*1)
	CMPQ    R13, $7
	JLT     tdone
	JEQ     trs6
	VMOVUPS Z7, K3, (DI)(R8*2)
	VMOVUPS Z6, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	CMPQ    R13, $9
	JLT     tdone
	JEQ     trs8
	VMOVUPS Z9, K3, (DI)
	VMOVUPS Z8, K3, (DI)(R8*1)
	CMPQ    R13, $11
	JLT     tdone
	JEQ     trs10
	VMOVUPS Z11, K3, (DI)(R8*2)
	VMOVUPS Z10, K3, (DI)(R12*1)
	LEAQ    (DI)(R8*4), DI
	CMPQ    R13, $13
	JLT     tdone
	JEQ     trs12
	VMOVUPS Z13, K3, (DI)
	VMOVUPS Z12, K3, (DI)(R8*1)
	CMPQ    R13, $15
	JLT     tdone
	VMOVUPS Z14, K3, (DI)(R8*2)
	JMP     tdone

trs0:
	VMOVUPS Z0, K3, (DI)
	JMP     tdone

trs2:
	VMOVUPS Z2, K3, (DI)(R8*2)
	JMP     tdone

trs0x4:
	VMOVUPS Z4, K3, (DI)
	JMP     tdone

trs6:
	VMOVUPS Z6, K3, (DI)(R8*2)
	JMP     tdone

trs8:
	VMOVUPS Z8, K3, (DI)
	JMP     tdone

trs10:
	VMOVUPS Z10, K3, (DI)(R8*2)
	JMP     tdone

trs12:
	VMOVUPS Z12, K3, (DI)

tdone:
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

// func packCopyTiles(dst *float32, src *float32, ld int, kc int, tiles int, srcAdv int, dstAdv int, vecs int, mask int, step int)
// Packs several adjacent full micro-panels of the contiguous case at once:
// for q < kc and t < tiles, the vecs (1 or 2) vectors at
// src[q*ld + t*srcAdv + 16v] (lanes outside mask read as zero) are stored
// whole at dst[t*dstAdv + q*step/4 + 16v].
//
// Going row by row across all the panels reads each source row as one
// contiguous run of tiles*srcAdv floats instead of one short piece per
// panel (a 14-float piece of an A^T row 12 KB from the next), which is what
// the hardware prefetchers need; the rows themselves are prefetched four
// ahead because their stride (a whole matrix row) crosses pages.
TEXT ·packCopyTiles(SB), NOSPLIT, $0-80
	MOVQ  dst+0(FP), DI
	MOVQ  src+8(FP), SI
	MOVQ  ld+16(FP), R9
	SHLQ  $2, R9               // source row stride in bytes
	MOVQ  kc+24(FP), CX
	MOVQ  srcAdv+40(FP), R10
	SHLQ  $2, R10              // source bytes per panel
	MOVQ  dstAdv+48(FP), R11
	SHLQ  $2, R11              // destination bytes per panel
	MOVQ  mask+64(FP), AX
	KMOVW AX, K2
	MOVQ  step+72(FP), R13     // destination bytes per k step
	LEAQ  (R9)(R9*1), DX
	LEAQ  (DX)(DX*1), DX       // four source rows ahead: first byte of a piece
	LEAQ  -4(DX)(R10*1), R12   // and its last float
	TESTQ CX, CX
	JLE   mdone
	CMPQ  vecs+56(FP), $2
	JEQ   mrow2

mrow1:
	MOVQ SI, R8                // walks the panels of this row
	MOVQ DI, BX
	MOVQ tiles+32(FP), AX

mtile1:
	PREFETCHT0 (R8)(DX*1)
	PREFETCHT0 (R8)(R12*1)
	VMOVUPS.Z  (R8), K2, Z0
	VMOVUPS    Z0, (BX)
	ADDQ       R10, R8
	ADDQ       R11, BX
	DECQ       AX
	JNZ        mtile1
	ADDQ       R9, SI
	ADDQ       R13, DI
	DECQ       CX
	JNZ        mrow1
	JMP        mdone

mrow2:
	MOVQ SI, R8
	MOVQ DI, BX
	MOVQ tiles+32(FP), AX

mtile2:
	PREFETCHT0 (R8)(DX*1)
	PREFETCHT0 (R8)(R12*1)
	VMOVUPS.Z  (R8), K2, Z0
	VMOVUPS.Z  64(R8), K2, Z1
	VMOVUPS    Z0, (BX)
	VMOVUPS    Z1, 64(BX)
	ADDQ       R10, R8
	ADDQ       R11, BX
	DECQ       AX
	JNZ        mtile2
	ADDQ       R9, SI
	ADDQ       R13, DI
	DECQ       CX
	JNZ        mrow2

mdone:
	VZEROUPPER
	RET
