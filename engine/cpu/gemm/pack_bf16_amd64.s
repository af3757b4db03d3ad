#include "textflag.h"
#include "bf16round_amd64.h"

// Packing into bf16 pairs (see bf16.go), rounding as bf16round_amd64.h
// does.

// CVTNE2(d, v, s) is VCVTNE2PS2BF16 zmm(d), zmm(v), zmm(s) (registers by
// number), which Go's assembler does not know: EVEX.512.F2.0F38.W0 72 /r,
// encoded as DPBF16 in kernel_bf16_amd64.s except pp = 11 (F2) and the
// opcode. It rounds the 16 floats of zmm(s) to bf16 into words 0..15 of
// zmm(d) and those of zmm(v) into words 16..31, to nearest even, NaN
// quieted, but with denormal inputs flushed to zero (torch keeps them), so
// cvtRowsPairsAVX512 uses it only on blocks without denormals. GNU objdump
// decodes CVTNE2(2, 1, 0) as "62 f2 77 48 72 d0  vcvtne2ps2bf16 %zmm0,%zmm1,%zmm2".
#define CVTNE2(d, v, s) \
	BYTE $0x62; \
	BYTE $(((((d)>>3)&1)^1)<<7 | ((((s)>>4)&1)^1)<<6 | ((((s)>>3)&1)^1)<<5 | ((((d)>>4)&1)^1)<<4 | 2); \
	BYTE $((((v)&15)^15)<<3 | 4 | 3); \
	BYTE $(2<<5 | ((((v)>>4)&1)^1)<<3); \
	BYTE $0x72; \
	BYTE $(0xC0 | ((d)&7)<<3 | ((s)&7))

// func packPairsAVX512(dst *float32, src *float32, ld int, cols int, width int, kc int, ds int)
// For p < (kc+1)/2 and j < cols: dst[p*ds+j] = bf16(src[2p*ld+j]) |
// bf16(src[(2p+1)*ld+j])<<16, the odd element 0 when 2p+1 == kc; lanes
// cols <= j < width get 0 (cols <= width <= 16). The contiguous case: each
// k step is a run of the panel's rows or columns, so a pair step combines
// two source rows lane by lane.
TEXT ·packPairsAVX512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R9
	SHLQ $2, R9
	MOVQ ds+48(FP), R8
	SHLQ $2, R8
	BFCONSTS

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

ploop:
	CMPQ      CX, $2
	JLT       ptail
	VMOVUPS.Z (SI), K2, Z0
	VMOVUPS.Z (SI)(R9*1), K2, Z1
	ROUNDBF(Z0, Z2)
	ROUNDBF(Z1, Z3)
	VPSRLD     $16, Z2, Z2
	VPTERNLOGD $0xF8, Z23, Z3, Z2 // Z2 |= Z3 & 0xffff0000
	VMOVDQU32  Z2, K3, (DI)
	LEAQ       (SI)(R9*2), SI
	ADDQ       R8, DI
	SUBQ       $2, CX
	JMP        ploop

ptail:
	TESTQ     CX, CX
	JZ        pdone
	VMOVUPS.Z (SI), K2, Z0
	ROUNDBF(Z0, Z2)
	VPSRLD    $16, Z2, Z2
	VMOVDQU32 Z2, K3, (DI)

pdone:
	VZEROUPPER
	RET

// func cvtRowsPairsAVX512(dst *float32, src *float32, ld int, rows int, kc int, ds int)
// For i < rows and p < (kc+1)/2: dst[i*ds+p] = bf16(src[i*ld+2p]) |
// bf16(src[i*ld+2p+1])<<16, the odd element 0 when 2p+1 == kc. The first
// half of the transposing case: a row of the source runs along k, so
// adjacent elements form a pair. Blocks of 32 floats without denormals
// take one VCVTNE2PS2BF16 (same results as the integer rounding there);
// the others, and the rest of a row, are rounded 16 at a time in integer
// arithmetic and narrowed (VPMOVDW keeps the low 16 bits of each dword)
// to 8 pair words. Nothing past the (kc+1)/2 words of a destination row
// is written.
TEXT ·cvtRowsPairsAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R9
	SHLQ $2, R9
	MOVQ ds+40(FP), R8
	SHLQ $2, R8
	BFCONSTS

	// Tail of each row: R13 = kc mod 16 floats loaded (K2), rounded up to
	// whole pairs for the words stored (K3).
	MOVQ  kc+32(FP), R13
	ANDQ  $15, R13
	MOVL  $1, AX
	MOVQ  R13, CX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K2
	LEAQ  1(R13), CX
	ANDQ  $-2, CX
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K3
	MOVQ  rows+24(FP), BX

rrow:
	MOVQ SI, R10
	MOVQ DI, R11
	MOVQ kc+32(FP), CX

	// 32 floats at a time: adjacent floats are the two halves of a pair,
	// so VCVTNE2PS2BF16's 32 words in source order are 16 pair words. A
	// block holding a denormal goes the integer way, which rounds it as
	// torch does.
rchunk32:
	CMPQ       CX, $32
	JLT        rchunk
	VMOVUPS    (R10), Z0
	VMOVUPS    64(R10), Z1
	VFPCLASSPSZ $0x20, Z0, K4
	VFPCLASSPSZ $0x20, Z1, K5
	KORTESTW   K5, K4
	JNZ        rchunk
	CVTNE2(2, 1, 0)
	VMOVDQU32  Z2, (R11)
	ADDQ       $128, R10
	ADDQ       $64, R11
	SUBQ       $32, CX
	JMP        rchunk32

rchunk:
	CMPQ    CX, $16
	JLT     rtail
	VMOVUPS (R10), Z0
	ROUNDBF(Z0, Z2)
	VPSRLD  $16, Z2, Z2
	VPMOVDW Z2, (R11)
	ADDQ    $64, R10
	ADDQ    $32, R11
	SUBQ    $16, CX
	JMP     rchunk32

rtail:
	TESTQ     CX, CX
	JZ        rnext
	VMOVUPS.Z (R10), K2, Z0
	ROUNDBF(Z0, Z2)
	VPSRLD    $16, Z2, Z2
	VPMOVDW   Z2, K3, (R11)

rnext:
	ADDQ R9, SI
	ADDQ R8, DI
	DECQ BX
	JNZ  rrow

	VZEROUPPER
	RET

// PAIRVEC rounds the lanes of the vector at off(R8) (row 2p, mask K2) and
// off(R8)(R9) (row 2p+1) into pair words stored whole at off(BX).
#define PAIRVEC(off) \
	VMOVUPS.Z  off(R8), K2, Z0; \
	VMOVUPS.Z  off(R8)(R9*1), K2, Z1; \
	ROUNDBF(Z0, Z2); \
	ROUNDBF(Z1, Z3); \
	VPSRLD     $16, Z2, Z2; \
	VPTERNLOGD $0xF8, Z23, Z3, Z2; \
	VMOVDQU32  Z2, off(BX)

// PAIRVEC1 is PAIRVEC for the last k step of an odd kc: the odd element is 0.
#define PAIRVEC1(off) \
	VMOVUPS.Z off(R8), K2, Z0; \
	ROUNDBF(Z0, Z2); \
	VPSRLD    $16, Z2, Z2; \
	VMOVDQU32 Z2, off(BX)

// func packPairsTiles(dst *float32, src *float32, ld int, kc int, tiles int, srcAdv int, dstAdv int, vecs int, mask int, step int)
// packCopyTiles for bf16 pairs: for p < (kc+1)/2, t < tiles and v < vecs
// (1 or 2), the 16 lanes (those outside mask read as zero) at
// src[2p*ld + t*srcAdv + 16v] paired with those one row below (zero past
// kc) are stored whole at dst[t*dstAdv + p*step/4 + 16v]. Going pair of
// rows by pair of rows across all the panels reads each source row as one
// run; rows four ahead are prefetched (see packCopyTiles).
TEXT ·packPairsTiles(SB), NOSPLIT, $0-80
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
	MOVQ  step+72(FP), R13     // destination bytes per pair step
	BFCONSTS
	LEAQ  (R9)(R9*1), DX
	LEAQ  (DX)(DX*1), DX       // four source rows ahead: first byte of a piece
	LEAQ  -4(DX)(R10*1), R12   // and its last float
	LEAQ  (R9)(DX*1), R14      // five rows ahead
	LEAQ  (R9)(R12*1), R15

trow:
	CMPQ CX, $2
	JLT  ttail1
	MOVQ SI, R8
	MOVQ DI, BX
	MOVQ tiles+32(FP), AX

ttile:
	PREFETCHT0 (R8)(DX*1)
	PREFETCHT0 (R8)(R12*1)
	PREFETCHT0 (R8)(R14*1)
	PREFETCHT0 (R8)(R15*1)
	PAIRVEC(0)
	CMPQ       vecs+56(FP), $2
	JNE        tnext
	PAIRVEC(64)

tnext:
	ADDQ R10, R8
	ADDQ R11, BX
	DECQ AX
	JNZ  ttile
	LEAQ (SI)(R9*2), SI
	ADDQ R13, DI
	SUBQ $2, CX
	JMP  trow

ttail1:
	TESTQ CX, CX
	JZ    tdone1
	MOVQ  SI, R8
	MOVQ  DI, BX
	MOVQ  tiles+32(FP), AX

ttile1:
	PAIRVEC1(0)
	CMPQ vecs+56(FP), $2
	JNE  tnext1
	PAIRVEC1(64)

tnext1:
	ADDQ R10, R8
	ADDQ R11, BX
	DECQ AX
	JNZ  ttile1

tdone1:
	VZEROUPPER
	RET

// func roundSwapPairsAVX512(p *float32, rows, w int)
// In place, for a panel of rows rows of w floats (w = 16 or 32): every
// float rounded to bf16 (as bf16.go's roundBF16), kept as the fp32 of that
// bf16 (low 16 bits zero), and rows 2q and 2q+1 exchanged; an odd last
// row is rounded where it is. This is the packed format of the fp32-FMA
// bf16 kernels (kernel_bf16fma_amd64.s).
TEXT ·roundSwapPairsAVX512(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), DI
	MOVQ rows+8(FP), CX
	MOVQ w+16(FP), R9
	SHLQ $2, R9 // row bytes
	BFCONSTS

rsloop:
	CMPQ    CX, $2
	JLT     rstail
	VMOVUPS (DI), Z0
	VMOVUPS (DI)(R9*1), Z1
	ROUNDBF(Z0, Z2)
	ROUNDBF(Z1, Z3)
	VPANDD  Z23, Z2, Z2
	VPANDD  Z23, Z3, Z3
	VMOVUPS Z3, (DI)
	VMOVUPS Z2, (DI)(R9*1)
	CMPQ    R9, $128
	JNE     rsnext
	VMOVUPS 64(DI), Z0
	VMOVUPS 64(DI)(R9*1), Z1
	ROUNDBF(Z0, Z2)
	ROUNDBF(Z1, Z3)
	VPANDD  Z23, Z2, Z2
	VPANDD  Z23, Z3, Z3
	VMOVUPS Z3, 64(DI)
	VMOVUPS Z2, 64(DI)(R9*1)

rsnext:
	LEAQ (DI)(R9*2), DI
	SUBQ $2, CX
	JMP  rsloop

rstail:
	TESTQ   CX, CX
	JZ      rsdone
	VMOVUPS (DI), Z0
	ROUNDBF(Z0, Z2)
	VPANDD  Z23, Z2, Z2
	VMOVUPS Z2, (DI)
	CMPQ    R9, $128
	JNE     rsdone
	VMOVUPS 64(DI), Z0
	ROUNDBF(Z0, Z2)
	VPANDD  Z23, Z2, Z2
	VMOVUPS Z2, 64(DI)

rsdone:
	VZEROUPPER
	RET

// RSVEC rounds the lanes of the vector at off(R8) (row 2p, mask K2) and
// off(R8)(R9) (row 2p+1) to bf16 values and stores them whole, exchanged:
// row 2p+1's at off(BX) (packed row 2p), row 2p's one packed row further.
#define RSVEC(off) \
	VMOVUPS.Z off(R8), K2, Z0; \
	VMOVUPS.Z off(R8)(R9*1), K2, Z1; \
	ROUNDBF32(Z0, Z2); \
	ROUNDBF32(Z1, Z3); \
	VMOVUPS   Z1, off(BX); \
	VMOVUPS   Z0, off(BX)(R13*1)

// RSVEC1 is RSVEC for the last row of an odd kc, which stays in place.
#define RSVEC1(off) \
	VMOVUPS.Z off(R8), K2, Z0; \
	ROUNDBF32(Z0, Z2); \
	VMOVUPS   Z0, off(BX)

// func packCopyTilesRS(dst *float32, src *float32, ld int, kc int, tiles int, srcAdv int, dstAdv int, vecs int, mask int, step int)
// packCopyTiles in the format of the fp32-FMA bf16 kernels (see
// roundSwapPairsAVX512): every value rounded to a bf16 value and the
// packed rows 2q and 2q+1 exchanged, an odd last row in place, in the
// same pass that copies them. Pair of rows by pair of rows across all the
// panels, rows four ahead prefetched (see packCopyTiles).
TEXT ·packCopyTilesRS(SB), NOSPLIT, $0-80
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
	BFCONSTS
	LEAQ  (R9)(R9*1), DX
	LEAQ  (DX)(DX*1), DX       // four source rows ahead: first byte of a piece
	LEAQ  -4(DX)(R10*1), R12   // and its last float
	LEAQ  (R9)(DX*1), R14      // five rows ahead
	LEAQ  (R9)(R12*1), R15

rsrow:
	CMPQ CX, $2
	JLT  rstail1
	MOVQ SI, R8
	MOVQ DI, BX
	MOVQ tiles+32(FP), AX

rstile:
	PREFETCHT0 (R8)(DX*1)
	PREFETCHT0 (R8)(R12*1)
	PREFETCHT0 (R8)(R14*1)
	PREFETCHT0 (R8)(R15*1)
	RSVEC(0)
	CMPQ       vecs+56(FP), $2
	JNE        rsnexttile
	RSVEC(64)

rsnexttile:
	ADDQ R10, R8
	ADDQ R11, BX
	DECQ AX
	JNZ  rstile
	LEAQ (SI)(R9*2), SI
	LEAQ (DI)(R13*2), DI
	SUBQ $2, CX
	JMP  rsrow

rstail1:
	TESTQ CX, CX
	JZ    rsdone1
	MOVQ  SI, R8
	MOVQ  DI, BX
	MOVQ  tiles+32(FP), AX

rstile1:
	RSVEC1(0)
	CMPQ vecs+56(FP), $2
	JNE  rsnext1
	RSVEC1(64)

rsnext1:
	ADDQ R10, R8
	ADDQ R11, BX
	DECQ AX
	JNZ  rstile1

rsdone1:
	VZEROUPPER
	RET
