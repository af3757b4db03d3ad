// Attention kernels (see attention.go): qkTile and axpyRows in AVX-512
// (AVX512F only) and AVX2+FMA. Each output element is one chain of fused
// multiply-adds in the order of the sum, so a result depends only on the
// inputs, never on how the rows were grouped.

#include "textflag.h"

// ---------------------------------------------------------------- AVX-512

// func qkTile512(s *float32, lds int, ap *float32, hd int, bt *float32, ldb, n, groups int, scale float32)
// s[r*lds+j] = scale * sum_c ap[(r/4*hd+c)*4+r%4] * bt[c*ldb+j]. Column
// chunks of 32 outside (the chunk of bt stays in L1), row groups of 4
// inside: per c, two loads of bt, four broadcasts of ap, eight FMAs.
TEXT ·qkTile512(SB), NOSPLIT, $0-68
	MOVQ         s+0(FP), DI
	MOVQ         lds+8(FP), R10
	SHLQ         $2, R10
	LEAQ         (R10)(R10*2), R9
	MOVQ         bt+32(FP), DX
	MOVQ         ldb+40(FP), R11
	SHLQ         $2, R11
	MOVQ         n+48(FP), CX
	VBROADCASTSS scale+64(FP), Z31

qk32c512:
	CMPQ CX, $32
	JLT  qk16c512
	MOVQ ap+16(FP), AX
	MOVQ DI, R8
	MOVQ groups+56(FP), R13

qk32g512:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	MOVQ   DX, BX
	MOVQ   hd+24(FP), R12

qk32k512:
	VMOVUPS      (BX), Z8
	VMOVUPS      64(BX), Z9
	VBROADCASTSS (AX), Z10
	VBROADCASTSS 4(AX), Z11
	VBROADCASTSS 8(AX), Z12
	VBROADCASTSS 12(AX), Z13
	VFMADD231PS  Z8, Z10, Z0
	VFMADD231PS  Z9, Z10, Z1
	VFMADD231PS  Z8, Z11, Z2
	VFMADD231PS  Z9, Z11, Z3
	VFMADD231PS  Z8, Z12, Z4
	VFMADD231PS  Z9, Z12, Z5
	VFMADD231PS  Z8, Z13, Z6
	VFMADD231PS  Z9, Z13, Z7
	ADDQ         $16, AX
	ADDQ         R11, BX
	DECQ         R12
	JNZ          qk32k512
	VMULPS       Z31, Z0, Z0
	VMULPS       Z31, Z1, Z1
	VMULPS       Z31, Z2, Z2
	VMULPS       Z31, Z3, Z3
	VMULPS       Z31, Z4, Z4
	VMULPS       Z31, Z5, Z5
	VMULPS       Z31, Z6, Z6
	VMULPS       Z31, Z7, Z7
	VMOVUPS      Z0, (R8)
	VMOVUPS      Z1, 64(R8)
	VMOVUPS      Z2, (R8)(R10*1)
	VMOVUPS      Z3, 64(R8)(R10*1)
	VMOVUPS      Z4, (R8)(R10*2)
	VMOVUPS      Z5, 64(R8)(R10*2)
	VMOVUPS      Z6, (R8)(R9*1)
	VMOVUPS      Z7, 64(R8)(R9*1)
	LEAQ         (R8)(R10*4), R8
	DECQ         R13
	JNZ          qk32g512
	ADDQ         $128, DI
	ADDQ         $128, DX
	SUBQ         $32, CX
	JMP          qk32c512

qk16c512:
	TESTQ CX, CX
	JZ    qkDone512
	MOVQ  ap+16(FP), AX
	MOVQ  DI, R8
	MOVQ  groups+56(FP), R13

qk16g512:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ   DX, BX
	MOVQ   hd+24(FP), R12

qk16k512:
	VMOVUPS      (BX), Z8
	VBROADCASTSS (AX), Z10
	VBROADCASTSS 4(AX), Z11
	VBROADCASTSS 8(AX), Z12
	VBROADCASTSS 12(AX), Z13
	VFMADD231PS  Z8, Z10, Z0
	VFMADD231PS  Z8, Z11, Z1
	VFMADD231PS  Z8, Z12, Z2
	VFMADD231PS  Z8, Z13, Z3
	ADDQ         $16, AX
	ADDQ         R11, BX
	DECQ         R12
	JNZ          qk16k512
	VMULPS       Z31, Z0, Z0
	VMULPS       Z31, Z1, Z1
	VMULPS       Z31, Z2, Z2
	VMULPS       Z31, Z3, Z3
	VMOVUPS      Z0, (R8)
	VMOVUPS      Z1, (R8)(R10*1)
	VMOVUPS      Z2, (R8)(R10*2)
	VMOVUPS      Z3, (R8)(R9*1)
	LEAQ         (R8)(R10*4), R8
	DECQ         R13
	JNZ          qk16g512

qkDone512:
	VZEROUPPER
	RET

// FMAROW512(X0, X1, X2, X3, B, A0, A1, A2, A3): A_i += X_i * B.
#define FMAROW512(X0, X1, X2, X3, B, A0, A1, A2, A3) \
	VFMADD231PS X0, B, A0; \
	VFMADD231PS X1, B, A1; \
	VFMADD231PS X2, B, A2; \
	VFMADD231PS X3, B, A3

// BCAST4x512 broadcasts the four coefficients of one k (rows at AX,
// AX+rs, AX+2rs, AX+3rs) into Z20-Z23.
#define BCAST4x512 \
	VBROADCASTSS (AX), Z20; \
	VBROADCASTSS (AX)(R8*1), Z21; \
	VBROADCASTSS (AX)(R8*2), Z22; \
	VBROADCASTSS (AX)(R9*1), Z23

// func axpyRows512(o *float32, ldo int, c *float32, rs, ks int, x *float32, ldx, n, groups, nv int)
// o[r*ldo+col] += sum_k c[r*rs+k*ks] * x[k*ldx+col] for r < 4*groups,
// col < 16*nv. Per group the 4 x 16nv outputs stay in registers over all
// k: per k, nv loads of x, four broadcasts, 4nv FMAs.
TEXT ·axpyRows512(SB), NOSPLIT, $0-80
	MOVQ o+0(FP), DI
	MOVQ ldo+8(FP), R10
	SHLQ $2, R10
	MOVQ c+16(FP), SI
	MOVQ rs+24(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	MOVQ ks+32(FP), R11
	SHLQ $2, R11
	MOVQ x+40(FP), DX
	MOVQ ldx+48(FP), BX
	SHLQ $2, BX
	MOVQ groups+64(FP), CX
	MOVQ nv+72(FP), AX
	CMPQ AX, $2
	JEQ  ax2g512
	JLT  ax1g512

ax4g512:
	LEAQ    (DI)(R10*2), R13
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	VMOVUPS (DI)(R10*1), Z4
	VMOVUPS 64(DI)(R10*1), Z5
	VMOVUPS 128(DI)(R10*1), Z6
	VMOVUPS 192(DI)(R10*1), Z7
	VMOVUPS (R13), Z8
	VMOVUPS 64(R13), Z9
	VMOVUPS 128(R13), Z10
	VMOVUPS 192(R13), Z11
	VMOVUPS (R13)(R10*1), Z12
	VMOVUPS 64(R13)(R10*1), Z13
	VMOVUPS 128(R13)(R10*1), Z14
	VMOVUPS 192(R13)(R10*1), Z15
	MOVQ    SI, AX
	MOVQ    DX, R12
	MOVQ    n+56(FP), R13

ax4k512:
	VMOVUPS (R12), Z16
	VMOVUPS 64(R12), Z17
	VMOVUPS 128(R12), Z18
	VMOVUPS 192(R12), Z19
	BCAST4x512
	FMAROW512(Z16, Z17, Z18, Z19, Z20, Z0, Z1, Z2, Z3)
	FMAROW512(Z16, Z17, Z18, Z19, Z21, Z4, Z5, Z6, Z7)
	FMAROW512(Z16, Z17, Z18, Z19, Z22, Z8, Z9, Z10, Z11)
	FMAROW512(Z16, Z17, Z18, Z19, Z23, Z12, Z13, Z14, Z15)
	ADDQ    R11, AX
	ADDQ    BX, R12
	DECQ    R13
	JNZ     ax4k512
	LEAQ    (DI)(R10*2), R13
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, (DI)(R10*1)
	VMOVUPS Z5, 64(DI)(R10*1)
	VMOVUPS Z6, 128(DI)(R10*1)
	VMOVUPS Z7, 192(DI)(R10*1)
	VMOVUPS Z8, (R13)
	VMOVUPS Z9, 64(R13)
	VMOVUPS Z10, 128(R13)
	VMOVUPS Z11, 192(R13)
	VMOVUPS Z12, (R13)(R10*1)
	VMOVUPS Z13, 64(R13)(R10*1)
	VMOVUPS Z14, 128(R13)(R10*1)
	VMOVUPS Z15, 192(R13)(R10*1)
	LEAQ    (DI)(R10*4), DI
	LEAQ    (SI)(R8*4), SI
	DECQ    CX
	JNZ     ax4g512
	VZEROUPPER
	RET

ax2g512:
	LEAQ    (DI)(R10*2), R13
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS (DI)(R10*1), Z2
	VMOVUPS 64(DI)(R10*1), Z3
	VMOVUPS (R13), Z4
	VMOVUPS 64(R13), Z5
	VMOVUPS (R13)(R10*1), Z6
	VMOVUPS 64(R13)(R10*1), Z7
	MOVQ    SI, AX
	MOVQ    DX, R12
	MOVQ    n+56(FP), R13

ax2k512:
	VMOVUPS     (R12), Z16
	VMOVUPS     64(R12), Z17
	BCAST4x512
	VFMADD231PS Z16, Z20, Z0
	VFMADD231PS Z17, Z20, Z1
	VFMADD231PS Z16, Z21, Z2
	VFMADD231PS Z17, Z21, Z3
	VFMADD231PS Z16, Z22, Z4
	VFMADD231PS Z17, Z22, Z5
	VFMADD231PS Z16, Z23, Z6
	VFMADD231PS Z17, Z23, Z7
	ADDQ        R11, AX
	ADDQ        BX, R12
	DECQ        R13
	JNZ         ax2k512
	LEAQ        (DI)(R10*2), R13
	VMOVUPS     Z0, (DI)
	VMOVUPS     Z1, 64(DI)
	VMOVUPS     Z2, (DI)(R10*1)
	VMOVUPS     Z3, 64(DI)(R10*1)
	VMOVUPS     Z4, (R13)
	VMOVUPS     Z5, 64(R13)
	VMOVUPS     Z6, (R13)(R10*1)
	VMOVUPS     Z7, 64(R13)(R10*1)
	LEAQ        (DI)(R10*4), DI
	LEAQ        (SI)(R8*4), SI
	DECQ        CX
	JNZ         ax2g512
	VZEROUPPER
	RET

ax1g512:
	LEAQ    (DI)(R10*2), R13
	VMOVUPS (DI), Z0
	VMOVUPS (DI)(R10*1), Z1
	VMOVUPS (R13), Z2
	VMOVUPS (R13)(R10*1), Z3
	MOVQ    SI, AX
	MOVQ    DX, R12
	MOVQ    n+56(FP), R13

ax1k512:
	VMOVUPS     (R12), Z16
	BCAST4x512
	VFMADD231PS Z16, Z20, Z0
	VFMADD231PS Z16, Z21, Z1
	VFMADD231PS Z16, Z22, Z2
	VFMADD231PS Z16, Z23, Z3
	ADDQ        R11, AX
	ADDQ        BX, R12
	DECQ        R13
	JNZ         ax1k512
	LEAQ        (DI)(R10*2), R13
	VMOVUPS     Z0, (DI)
	VMOVUPS     Z1, (DI)(R10*1)
	VMOVUPS     Z2, (R13)
	VMOVUPS     Z3, (R13)(R10*1)
	LEAQ        (DI)(R10*4), DI
	LEAQ        (SI)(R8*4), SI
	DECQ        CX
	JNZ         ax1g512
	VZEROUPPER
	RET

// ------------------------------------------------------------ AVX2 + FMA

// func qkTile256(s *float32, lds int, ap *float32, hd int, bt *float32, ldb, n, groups int, scale float32)
// qkTile512 on 8-float vectors: column chunks of 16, then one of 8.
TEXT ·qkTile256(SB), NOSPLIT, $0-68
	MOVQ         s+0(FP), DI
	MOVQ         lds+8(FP), R10
	SHLQ         $2, R10
	LEAQ         (R10)(R10*2), R9
	MOVQ         bt+32(FP), DX
	MOVQ         ldb+40(FP), R11
	SHLQ         $2, R11
	MOVQ         n+48(FP), CX
	VBROADCASTSS scale+64(FP), Y15

qk16c256:
	CMPQ CX, $16
	JLT  qk8c256
	MOVQ ap+16(FP), AX
	MOVQ DI, R8
	MOVQ groups+56(FP), R13

qk16g256:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   DX, BX
	MOVQ   hd+24(FP), R12

qk16k256:
	VMOVUPS      (BX), Y8
	VMOVUPS      32(BX), Y9
	VBROADCASTSS (AX), Y10
	VBROADCASTSS 4(AX), Y11
	VBROADCASTSS 8(AX), Y12
	VBROADCASTSS 12(AX), Y13
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         $16, AX
	ADDQ         R11, BX
	DECQ         R12
	JNZ          qk16k256
	VMULPS       Y15, Y0, Y0
	VMULPS       Y15, Y1, Y1
	VMULPS       Y15, Y2, Y2
	VMULPS       Y15, Y3, Y3
	VMULPS       Y15, Y4, Y4
	VMULPS       Y15, Y5, Y5
	VMULPS       Y15, Y6, Y6
	VMULPS       Y15, Y7, Y7
	VMOVUPS      Y0, (R8)
	VMOVUPS      Y1, 32(R8)
	VMOVUPS      Y2, (R8)(R10*1)
	VMOVUPS      Y3, 32(R8)(R10*1)
	VMOVUPS      Y4, (R8)(R10*2)
	VMOVUPS      Y5, 32(R8)(R10*2)
	VMOVUPS      Y6, (R8)(R9*1)
	VMOVUPS      Y7, 32(R8)(R9*1)
	LEAQ         (R8)(R10*4), R8
	DECQ         R13
	JNZ          qk16g256
	ADDQ         $64, DI
	ADDQ         $64, DX
	SUBQ         $16, CX
	JMP          qk16c256

qk8c256:
	TESTQ CX, CX
	JZ    qkDone256
	MOVQ  ap+16(FP), AX
	MOVQ  DI, R8
	MOVQ  groups+56(FP), R13

qk8g256:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   DX, BX
	MOVQ   hd+24(FP), R12

qk8k256:
	VMOVUPS      (BX), Y8
	VBROADCASTSS (AX), Y10
	VBROADCASTSS 4(AX), Y11
	VBROADCASTSS 8(AX), Y12
	VBROADCASTSS 12(AX), Y13
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y8, Y11, Y1
	VFMADD231PS  Y8, Y12, Y2
	VFMADD231PS  Y8, Y13, Y3
	ADDQ         $16, AX
	ADDQ         R11, BX
	DECQ         R12
	JNZ          qk8k256
	VMULPS       Y15, Y0, Y0
	VMULPS       Y15, Y1, Y1
	VMULPS       Y15, Y2, Y2
	VMULPS       Y15, Y3, Y3
	VMOVUPS      Y0, (R8)
	VMOVUPS      Y1, (R8)(R10*1)
	VMOVUPS      Y2, (R8)(R10*2)
	VMOVUPS      Y3, (R8)(R9*1)
	LEAQ         (R8)(R10*4), R8
	DECQ         R13
	JNZ          qk8g256

qkDone256:
	VZEROUPPER
	RET

// BCAST4x256 broadcasts the four coefficients of one k into Y10-Y13.
#define BCAST4x256 \
	VBROADCASTSS (AX), Y10; \
	VBROADCASTSS (AX)(R8*1), Y11; \
	VBROADCASTSS (AX)(R8*2), Y12; \
	VBROADCASTSS (AX)(R9*1), Y13

// func axpyRows256(o *float32, ldo int, c *float32, rs, ks int, x *float32, ldx, n, groups, nv int)
// axpyRows512 on 8-float vectors, nv 1 or 2.
TEXT ·axpyRows256(SB), NOSPLIT, $0-80
	MOVQ o+0(FP), DI
	MOVQ ldo+8(FP), R10
	SHLQ $2, R10
	MOVQ c+16(FP), SI
	MOVQ rs+24(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	MOVQ ks+32(FP), R11
	SHLQ $2, R11
	MOVQ x+40(FP), DX
	MOVQ ldx+48(FP), BX
	SHLQ $2, BX
	MOVQ groups+64(FP), CX
	MOVQ nv+72(FP), AX
	CMPQ AX, $2
	JLT  ax1g256

ax2g256:
	LEAQ    (DI)(R10*2), R13
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS (DI)(R10*1), Y2
	VMOVUPS 32(DI)(R10*1), Y3
	VMOVUPS (R13), Y4
	VMOVUPS 32(R13), Y5
	VMOVUPS (R13)(R10*1), Y6
	VMOVUPS 32(R13)(R10*1), Y7
	MOVQ    SI, AX
	MOVQ    DX, R12
	MOVQ    n+56(FP), R13

ax2k256:
	VMOVUPS     (R12), Y8
	VMOVUPS     32(R12), Y9
	BCAST4x256
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	VFMADD231PS Y8, Y11, Y2
	VFMADD231PS Y9, Y11, Y3
	VFMADD231PS Y8, Y12, Y4
	VFMADD231PS Y9, Y12, Y5
	VFMADD231PS Y8, Y13, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ        R11, AX
	ADDQ        BX, R12
	DECQ        R13
	JNZ         ax2k256
	LEAQ        (DI)(R10*2), R13
	VMOVUPS     Y0, (DI)
	VMOVUPS     Y1, 32(DI)
	VMOVUPS     Y2, (DI)(R10*1)
	VMOVUPS     Y3, 32(DI)(R10*1)
	VMOVUPS     Y4, (R13)
	VMOVUPS     Y5, 32(R13)
	VMOVUPS     Y6, (R13)(R10*1)
	VMOVUPS     Y7, 32(R13)(R10*1)
	LEAQ        (DI)(R10*4), DI
	LEAQ        (SI)(R8*4), SI
	DECQ        CX
	JNZ         ax2g256
	VZEROUPPER
	RET

ax1g256:
	LEAQ    (DI)(R10*2), R13
	VMOVUPS (DI), Y0
	VMOVUPS (DI)(R10*1), Y1
	VMOVUPS (R13), Y2
	VMOVUPS (R13)(R10*1), Y3
	MOVQ    SI, AX
	MOVQ    DX, R12
	MOVQ    n+56(FP), R13

ax1k256:
	VMOVUPS     (R12), Y8
	BCAST4x256
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y8, Y11, Y1
	VFMADD231PS Y8, Y12, Y2
	VFMADD231PS Y8, Y13, Y3
	ADDQ        R11, AX
	ADDQ        BX, R12
	DECQ        R13
	JNZ         ax1k256
	LEAQ        (DI)(R10*2), R13
	VMOVUPS     Y0, (DI)
	VMOVUPS     Y1, (DI)(R10*1)
	VMOVUPS     Y2, (R13)
	VMOVUPS     Y3, (R13)(R10*1)
	LEAQ        (DI)(R10*4), DI
	LEAQ        (SI)(R8*4), SI
	DECQ        CX
	JNZ         ax1g256
	VZEROUPPER
	RET

// ---------------------------------------------------------------- packing

// func pack4x512(ap, src *float32, ld, n int)
// ap[c*4+r] = src[r*ld+c] for r < 4, c < n (a positive multiple of 16):
// per 16 columns, 4 loads, a 4 x 4 transpose inside each 128-bit lane
// (unpacks) and one of the lanes themselves (VSHUFF32X4), 4 stores.
TEXT ·pack4x512(SB), NOSPLIT, $0-32
	MOVQ ap+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	MOVQ n+24(FP), CX

pk512:
	VMOVUPS    (SI), Z0
	VMOVUPS    (SI)(R8*1), Z1
	VMOVUPS    (SI)(R8*2), Z2
	VMOVUPS    (SI)(R9*1), Z3
	VUNPCKLPS  Z1, Z0, Z4
	VUNPCKHPS  Z1, Z0, Z5
	VUNPCKLPS  Z3, Z2, Z6
	VUNPCKHPS  Z3, Z2, Z7
	VUNPCKLPD  Z6, Z4, Z8              // columns 0, 4, 8, 12 (one per lane)
	VUNPCKHPD  Z6, Z4, Z9              // 1, 5, 9, 13
	VUNPCKLPD  Z7, Z5, Z10             // 2, 6, 10, 14
	VUNPCKHPD  Z7, Z5, Z11             // 3, 7, 11, 15
	VSHUFF32X4 $0x44, Z9, Z8, Z12      // 0 4 1 5
	VSHUFF32X4 $0x44, Z11, Z10, Z13    // 2 6 3 7
	VSHUFF32X4 $0xee, Z9, Z8, Z14      // 8 12 9 13
	VSHUFF32X4 $0xee, Z11, Z10, Z15    // 10 14 11 15
	VSHUFF32X4 $0x88, Z13, Z12, Z0     // 0 1 2 3
	VSHUFF32X4 $0xdd, Z13, Z12, Z1     // 4 5 6 7
	VSHUFF32X4 $0x88, Z15, Z14, Z2     // 8 9 10 11
	VSHUFF32X4 $0xdd, Z15, Z14, Z3     // 12 13 14 15
	VMOVUPS    Z0, (DI)
	VMOVUPS    Z1, 64(DI)
	VMOVUPS    Z2, 128(DI)
	VMOVUPS    Z3, 192(DI)
	ADDQ       $64, SI
	ADDQ       $256, DI
	SUBQ       $16, CX
	JNZ        pk512
	VZEROUPPER
	RET

// func pack4x256(ap, src *float32, ld, n int)
// pack4x512 on 8 columns at a time (AVX): the lane transpose is VPERM2F128.
TEXT ·pack4x256(SB), NOSPLIT, $0-32
	MOVQ ap+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	MOVQ n+24(FP), CX

pk256:
	VMOVUPS    (SI), Y0
	VMOVUPS    (SI)(R8*1), Y1
	VMOVUPS    (SI)(R8*2), Y2
	VMOVUPS    (SI)(R9*1), Y3
	VUNPCKLPS  Y1, Y0, Y4
	VUNPCKHPS  Y1, Y0, Y5
	VUNPCKLPS  Y3, Y2, Y6
	VUNPCKHPS  Y3, Y2, Y7
	VUNPCKLPD  Y6, Y4, Y8              // columns 0 | 4
	VUNPCKHPD  Y6, Y4, Y9              // 1 | 5
	VUNPCKLPD  Y7, Y5, Y10             // 2 | 6
	VUNPCKHPD  Y7, Y5, Y11             // 3 | 7
	VPERM2F128 $0x20, Y9, Y8, Y0       // 0 1
	VPERM2F128 $0x20, Y11, Y10, Y1     // 2 3
	VPERM2F128 $0x31, Y9, Y8, Y2       // 4 5
	VPERM2F128 $0x31, Y11, Y10, Y3     // 6 7
	VMOVUPS    Y0, (DI)
	VMOVUPS    Y1, 32(DI)
	VMOVUPS    Y2, 64(DI)
	VMOVUPS    Y3, 96(DI)
	ADDQ       $32, SI
	ADDQ       $128, DI
	SUBQ       $8, CX
	JNZ        pk256
	VZEROUPPER
	RET

// func prefetchRows(p *float32, ld, rows, lines int)
// PREFETCHT0 of the first lines cache lines of rows rows ld floats apart.
// A prefetch never faults, so the last line may lie past a slice's end.
TEXT ·prefetchRows(SB), NOSPLIT, $0-32
	MOVQ  p+0(FP), SI
	MOVQ  ld+8(FP), R8
	SHLQ  $2, R8
	MOVQ  rows+16(FP), CX
	MOVQ  lines+24(FP), DX
	TESTQ CX, CX
	JZ    pfDone
	TESTQ DX, DX
	JZ    pfDone

pfRow:
	MOVQ SI, AX
	MOVQ DX, BX

pfLine:
	PREFETCHT0 (AX)
	ADDQ       $64, AX
	DECQ       BX
	JNZ        pfLine
	ADDQ       R8, SI
	DECQ       CX
	JNZ        pfRow

pfDone:
	RET
