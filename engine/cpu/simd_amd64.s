// Vector kernels for the elementwise ops (see simd.go): an AVX-512
// (AVX512F only) and an AVX2+FMA version of each. Lengths are positive
// multiples of the vector width (16 or 8 floats); the Go wrappers do the
// tails. Float64 sums keep two vector accumulators and reduce them in a
// fixed order, so a result depends only on the inputs and the length.

#include "textflag.h"

// Constants, 8 copies each: the AVX2 code uses them as 32-byte memory
// operands (16 ymm registers are too few to hold them all), the AVX-512
// code broadcasts the first copy into a register.
#define CONST8(name, bits) \
	DATA name<>+0(SB)/4, $bits; \
	DATA name<>+4(SB)/4, $bits; \
	DATA name<>+8(SB)/4, $bits; \
	DATA name<>+12(SB)/4, $bits; \
	DATA name<>+16(SB)/4, $bits; \
	DATA name<>+20(SB)/4, $bits; \
	DATA name<>+24(SB)/4, $bits; \
	DATA name<>+28(SB)/4, $bits; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

CONST8(expLog2e, 0x3fb8aa3b) // log2(e)
CONST8(expLn2hi, 0x3f318000) // ln 2, high part (exact times any n <= 2^9)
CONST8(expLn2lo, 0xb95e8083) // ln 2 - ln2hi
CONST8(expC6, 0x3ab60b61)    // 1/720
CONST8(expC5, 0x3c088889)    // 1/120
CONST8(expC4, 0x3d2aaaab)    // 1/24
CONST8(expC3, 0x3e2aaaab)    // 1/6
CONST8(expHalf, 0x3f000000)  // 1/2
CONST8(expOne, 0x3f800000)   // 1
CONST8(expLo, 0xc2aeac4f)    // -87.33654: below, e^x is 0
CONST8(expHi, 0x42b17217)    // 88.72283: above, e^x is +Inf
CONST8(expInf, 0x7f800000)   // +Inf
CONST8(expBias, 0x0000007f)  // the float32 exponent bias (an int32)
CONST8(expClampLo, 0xc2d00000) // -104: e^x rounds to 0 below
CONST8(expClampHi, 0x42b20000) // 89: e^x is +Inf above

// ---------------------------------------------------------------- AVX-512

// CONSTS512 loads the exp constants into Z16-Z28 and a zero into Z29.
#define CONSTS512 \
	VBROADCASTSS expLog2e<>(SB), Z16; \
	VBROADCASTSS expLn2hi<>(SB), Z17; \
	VBROADCASTSS expLn2lo<>(SB), Z18; \
	VBROADCASTSS expC6<>(SB), Z19; \
	VBROADCASTSS expC5<>(SB), Z20; \
	VBROADCASTSS expC4<>(SB), Z21; \
	VBROADCASTSS expC3<>(SB), Z22; \
	VBROADCASTSS expHalf<>(SB), Z23; \
	VBROADCASTSS expOne<>(SB), Z24; \
	VBROADCASTSS expClampLo<>(SB), Z25; \
	VBROADCASTSS expClampHi<>(SB), Z26; \
	VBROADCASTSS expInf<>(SB), Z27; \
	VPXORD Z29, Z29, Z29

// EXP512 writes e^X into P (X kept; R and N clobbered), the algorithm of
// exp32: n = round(x log2 e), r = x - n ln2 (two parts, fused), the
// degree-6 Horner polynomial p, then p 2^n by VSCALEFPS, which rounds once
// and saturates to +Inf or gradual underflow by itself. X is first clamped
// to [-104, 89], beyond which e^x is 0 or +Inf in float32 anyway, so that
// the reduction stays exact; the clamps keep NaN (the max and min return
// their second source, X, when it is NaN). Results between 0 and the
// smallest normal float are subnormals where exp32 gives 0.
#define EXP512(X, R, N, P) \
	VMAXPS X, Z25, P; \
	VMINPS P, Z26, P; \
	VMULPS Z16, P, R; \
	VRNDSCALEPS $0x08, R, N; \
	VFNMADD231PS Z17, N, P; \
	VFNMADD231PS Z18, N, P; \
	VMOVAPS Z19, R; \
	VFMADD213PS Z20, P, R; \
	VFMADD213PS Z21, P, R; \
	VFMADD213PS Z22, P, R; \
	VFMADD213PS Z23, P, R; \
	VFMADD213PS Z24, P, R; \
	VFMADD213PS Z24, P, R; \
	VSCALEFPS N, R, P

// SIGMOID512 writes 1/(1+e^-X) into P (X kept; R, N, T clobbered). The
// reciprocal is VRCP14PS (relative error below 2^-14) refined by one
// Newton step, r + r (1 - d r), to within a couple of ulps: a division
// would cost as much as the exp. Where e^-X is +Inf the step would compute
// 0 * Inf, so those lanes are set to 0.
#define SIGMOID512(X, R, N, T, P) \
	VSUBPS X, Z29, T; \
	EXP512(T, R, N, P); \
	VCMPPS $0x00, Z27, P, K2; \
	VADDPS Z24, P, P; \
	VRCP14PS P, R; \
	VMOVAPS Z24, T; \
	VFNMADD231PS R, P, T; \
	VFMADD213PS R, R, T; \
	VBLENDMPS Z29, T, K2, P

// WIDEN512(FZ, FY, LOZ, HIZ, HIY) converts the 16 floats of FZ (FY its
// low half) into two vectors of float64, LOZ and HIZ (HIY its low half).
#define WIDEN512(FZ, FY, LOZ, HIZ, HIY) \
	VEXTRACTF64X4 $1, FZ, HIY; \
	VCVTPS2PD HIY, HIZ; \
	VCVTPS2PD FY, LOZ

// REDUCE512 adds the float64 accumulators Z8 and Z9 into X8's low lane,
// always in the same order.
#define REDUCE512 \
	VADDPD Z9, Z8, Z8; \
	VEXTRACTF64X4 $1, Z8, Y9; \
	VADDPD Y9, Y8, Y8; \
	VEXTRACTF128 $1, Y8, X9; \
	VADDPD X9, X8, X8; \
	VPERMILPD $1, X8, X9; \
	VADDSD X9, X8, X8

// func expShiftSum512(x *float32, n int, shift float32) float64
TEXT ·expShiftSum512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS shift+16(FP), Z15
	CONSTS512
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9

esLoop512:
	VMOVUPS (SI), Z0
	VSUBPS Z15, Z0, Z0
	EXP512(Z0, Z1, Z2, Z3)
	VMOVUPS Z3, (SI)
	VEXTRACTF64X4 $1, Z3, Y5
	VCVTPS2PD Y5, Z5
	VCVTPS2PD Y3, Z4
	VADDPD Z4, Z8, Z8
	VADDPD Z5, Z9, Z9
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ  esLoop512
	REDUCE512
	VMOVSD X8, ret+24(FP)
	VZEROUPPER
	RET

// func max512(x *float32, n int) float32
TEXT ·max512(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	VMOVUPS (SI), Z0
	ADDQ    $64, SI
	SUBQ    $16, CX
	JZ      mxDone512

mxLoop512:
	VMAXPS (SI), Z0, Z0
	ADDQ   $64, SI
	SUBQ   $16, CX
	JNZ    mxLoop512

mxDone512:
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VMAXPS        X1, X0, X0
	VPERMILPS     $0x4e, X0, X1
	VMAXPS        X1, X0, X0
	VPERMILPS     $0xb1, X0, X1
	VMAXPS        X1, X0, X0
	VMOVSS        X0, ret+16(FP)
	VZEROUPPER
	RET

// func scale512(x *float32, n int, s float32)
TEXT ·scale512(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Z1

scLoop512:
	VMULPS  (SI), Z1, Z0
	VMOVUPS Z0, (SI)
	ADDQ    $64, SI
	SUBQ    $16, CX
	JNZ     scLoop512
	VZEROUPPER
	RET

// func add512(d, a, b *float32, n int)
TEXT ·add512(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX

adLoop512:
	VMOVUPS (SI), Z0
	VADDPS  (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	SUBQ    $16, CX
	JNZ     adLoop512
	VZEROUPPER
	RET

// func dot64x512(a, b *float32, n int) float64
TEXT ·dot64x512(SB), NOSPLIT, $0-32
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DX
	MOVQ   n+16(FP), CX
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9

dtLoop512:
	VMOVUPS (SI), Z0
	VMOVUPS (DX), Z1
	WIDEN512(Z0, Y0, Z2, Z3, Y3)
	WIDEN512(Z1, Y1, Z4, Z5, Y5)
	VFMADD231PD Z4, Z2, Z8
	VFMADD231PD Z5, Z3, Z9
	ADDQ $64, SI
	ADDQ $64, DX
	SUBQ $16, CX
	JNZ  dtLoop512
	REDUCE512
	VMOVSD X8, ret+24(FP)
	VZEROUPPER
	RET

// func addSumSq512(d, a, b *float32, n int) float64
TEXT ·addSumSq512(SB), NOSPLIT, $0-40
	MOVQ   d+0(FP), DI
	MOVQ   a+8(FP), SI
	MOVQ   b+16(FP), DX
	MOVQ   n+24(FP), CX
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9

asLoop512:
	VMOVUPS (SI), Z0
	VADDPS  (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	WIDEN512(Z0, Y0, Z2, Z3, Y3)
	VFMADD231PD Z2, Z2, Z8
	VFMADD231PD Z3, Z3, Z9
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	SUBQ $16, CX
	JNZ  asLoop512
	REDUCE512
	VMOVSD X8, ret+32(FP)
	VZEROUPPER
	RET

// func rmsBack512(d, gv, o *float32, n int, rs, mean float32)
TEXT ·rmsBack512(SB), NOSPLIT, $0-40
	MOVQ         d+0(FP), DI
	MOVQ         gv+8(FP), SI
	MOVQ         o+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSS rs+32(FP), Z14
	VBROADCASTSS mean+36(FP), Z15

rbLoop512:
	VMOVUPS      (SI), Z0
	VMOVUPS      (DX), Z1
	VFNMADD231PS Z15, Z1, Z0
	VMULPS       Z14, Z0, Z0
	VMOVUPS      Z0, (DI)
	ADDQ         $64, SI
	ADDQ         $64, DX
	ADDQ         $64, DI
	SUBQ         $16, CX
	JNZ          rbLoop512
	VZEROUPPER
	RET

// func pdsub512(gv, p *float32, n int, d float32)
TEXT ·pdsub512(SB), NOSPLIT, $0-28
	MOVQ         gv+0(FP), DI
	MOVQ         p+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS d+24(FP), Z15

pdLoop512:
	VMOVUPS (DI), Z0
	VSUBPS  Z15, Z0, Z0
	VMULPS  (SI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JNZ     pdLoop512
	VZEROUPPER
	RET

// func swiglu512(o, gv, u *float32, n int)
TEXT ·swiglu512(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ gv+8(FP), SI
	MOVQ u+16(FP), DX
	MOVQ n+24(FP), CX
	CONSTS512

sgLoop512:
	VMOVUPS (SI), Z0
	SIGMOID512(Z0, Z1, Z2, Z10, Z3)
	VMULPS  Z3, Z0, Z4
	VMULPS  (DX), Z4, Z4
	VMOVUPS Z4, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	SUBQ    $16, CX
	JNZ     sgLoop512
	VZEROUPPER
	RET

// func swigluBack512(dg, du, a, gv, u *float32, n int)
TEXT ·swigluBack512(SB), NOSPLIT, $0-48
	MOVQ dg+0(FP), DI
	MOVQ du+8(FP), R8
	MOVQ a+16(FP), R9
	MOVQ gv+24(FP), SI
	MOVQ u+32(FP), DX
	MOVQ n+40(FP), CX
	CONSTS512

sbLoop512:
	VMOVUPS     (SI), Z0
	SIGMOID512(Z0, Z1, Z2, Z10, Z3)
	VMOVUPS     (R9), Z5
	VMULPS      Z0, Z5, Z6
	VMULPS      Z3, Z6, Z6
	VMOVUPS     Z6, (R8)
	VMULPS      (DX), Z5, Z7
	VMULPS      Z3, Z7, Z7
	VSUBPS      Z3, Z24, Z1
	VFMADD213PS Z24, Z0, Z1
	VMULPS      Z1, Z7, Z7
	VMOVUPS     Z7, (DI)
	ADDQ        $64, SI
	ADDQ        $64, DX
	ADDQ        $64, DI
	ADDQ        $64, R8
	ADDQ        $64, R9
	SUBQ        $16, CX
	JNZ         sbLoop512
	VZEROUPPER
	RET

// ------------------------------------------------------------ AVX2 + FMA

// EXP256 is EXP512 on 8 floats, with the constants as memory operands and
// the edge masks as vectors (VCMPPS) instead of mask registers.
#define EXP256(X, R, N, P) \
	VMULPS expLog2e<>(SB), X, R; \
	VCVTPS2DQ R, N; \
	VCVTDQ2PS N, R; \
	VMOVAPS X, P; \
	VFNMADD231PS expLn2hi<>(SB), R, P; \
	VFNMADD231PS expLn2lo<>(SB), R, P; \
	VMOVUPS expC6<>(SB), R; \
	VFMADD213PS expC5<>(SB), P, R; \
	VFMADD213PS expC4<>(SB), P, R; \
	VFMADD213PS expC3<>(SB), P, R; \
	VFMADD213PS expHalf<>(SB), P, R; \
	VFMADD213PS expOne<>(SB), P, R; \
	VFMADD213PS expOne<>(SB), P, R; \
	VPSRAD $1, N, P; \
	VPSUBD P, N, N; \
	VPADDD expBias<>(SB), P, P; \
	VPSLLD $23, P, P; \
	VPADDD expBias<>(SB), N, N; \
	VPSLLD $23, N, N; \
	VMULPS P, R, R; \
	VMULPS N, R, P; \
	VCMPPS $0x11, expLo<>(SB), X, N; \
	VANDNPS P, N, P; \
	VCMPPS $0x1e, expHi<>(SB), X, N; \
	VMOVUPS expInf<>(SB), R; \
	VBLENDVPS N, R, P, P

// SIGMOID256 writes 1/(1+e^-X) into P (X kept; R, N, T clobbered).
#define SIGMOID256(X, R, N, T, P) \
	VXORPS T, T, T; \
	VSUBPS X, T, T; \
	EXP256(T, R, N, P); \
	VMOVUPS expOne<>(SB), T; \
	VADDPS T, P, P; \
	VDIVPS P, T, P

// WIDEN256(FY, FX, LOY, HIY, HIX) converts the 8 floats of FY (FX its
// low half) into two float64 vectors, LOY and HIY (HIX its low half).
#define WIDEN256(FY, FX, LOY, HIY, HIX) \
	VEXTRACTF128 $1, FY, HIX; \
	VCVTPS2PD HIX, HIY; \
	VCVTPS2PD FX, LOY

// REDUCE256 adds the float64 accumulators Y8 and Y9 into X8's low lane.
#define REDUCE256 \
	VADDPD Y9, Y8, Y8; \
	VEXTRACTF128 $1, Y8, X9; \
	VADDPD X9, X8, X8; \
	VPERMILPD $1, X8, X9; \
	VADDSD X9, X8, X8

// func expShiftSum256(x *float32, n int, shift float32) float64
TEXT ·expShiftSum256(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y15
	VXORPD       Y8, Y8, Y8
	VXORPD       Y9, Y9, Y9

esLoop256:
	VMOVUPS (SI), Y0
	VSUBPS  Y15, Y0, Y0
	EXP256(Y0, Y1, Y2, Y3)
	VMOVUPS Y3, (SI)
	WIDEN256(Y3, X3, Y4, Y5, X5)
	VADDPD  Y4, Y8, Y8
	VADDPD  Y5, Y9, Y9
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     esLoop256
	REDUCE256
	VMOVSD  X8, ret+24(FP)
	VZEROUPPER
	RET

// func max256(x *float32, n int) float32
TEXT ·max256(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	VMOVUPS (SI), Y0
	ADDQ    $32, SI
	SUBQ    $8, CX
	JZ      mxDone256

mxLoop256:
	VMAXPS (SI), Y0, Y0
	ADDQ   $32, SI
	SUBQ   $8, CX
	JNZ    mxLoop256

mxDone256:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSS       X0, ret+16(FP)
	VZEROUPPER
	RET

// func scale256(x *float32, n int, s float32)
TEXT ·scale256(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Y1

scLoop256:
	VMULPS  (SI), Y1, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     scLoop256
	VZEROUPPER
	RET

// func add256(d, a, b *float32, n int)
TEXT ·add256(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX

adLoop256:
	VMOVUPS (SI), Y0
	VADDPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     adLoop256
	VZEROUPPER
	RET

// func dot64x256(a, b *float32, n int) float64
TEXT ·dot64x256(SB), NOSPLIT, $0-32
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DX
	MOVQ   n+16(FP), CX
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9

dtLoop256:
	VMOVUPS (SI), Y0
	VMOVUPS (DX), Y1
	WIDEN256(Y0, X0, Y2, Y3, X3)
	WIDEN256(Y1, X1, Y4, Y5, X5)
	VFMADD231PD Y4, Y2, Y8
	VFMADD231PD Y5, Y3, Y9
	ADDQ $32, SI
	ADDQ $32, DX
	SUBQ $8, CX
	JNZ  dtLoop256
	REDUCE256
	VMOVSD X8, ret+24(FP)
	VZEROUPPER
	RET

// func addSumSq256(d, a, b *float32, n int) float64
TEXT ·addSumSq256(SB), NOSPLIT, $0-40
	MOVQ   d+0(FP), DI
	MOVQ   a+8(FP), SI
	MOVQ   b+16(FP), DX
	MOVQ   n+24(FP), CX
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9

asLoop256:
	VMOVUPS (SI), Y0
	VADDPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	WIDEN256(Y0, X0, Y2, Y3, X3)
	VFMADD231PD Y2, Y2, Y8
	VFMADD231PD Y3, Y3, Y9
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ  asLoop256
	REDUCE256
	VMOVSD X8, ret+32(FP)
	VZEROUPPER
	RET

// func rmsBack256(d, gv, o *float32, n int, rs, mean float32)
TEXT ·rmsBack256(SB), NOSPLIT, $0-40
	MOVQ         d+0(FP), DI
	MOVQ         gv+8(FP), SI
	MOVQ         o+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSS rs+32(FP), Y14
	VBROADCASTSS mean+36(FP), Y15

rbLoop256:
	VMOVUPS      (SI), Y0
	VMOVUPS      (DX), Y1
	VFNMADD231PS Y15, Y1, Y0
	VMULPS       Y14, Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          rbLoop256
	VZEROUPPER
	RET

// func pdsub256(gv, p *float32, n int, d float32)
TEXT ·pdsub256(SB), NOSPLIT, $0-28
	MOVQ         gv+0(FP), DI
	MOVQ         p+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS d+24(FP), Y15

pdLoop256:
	VMOVUPS (DI), Y0
	VSUBPS  Y15, Y0, Y0
	VMULPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     pdLoop256
	VZEROUPPER
	RET

// func swiglu256(o, gv, u *float32, n int)
TEXT ·swiglu256(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ gv+8(FP), SI
	MOVQ u+16(FP), DX
	MOVQ n+24(FP), CX

sgLoop256:
	VMOVUPS (SI), Y0
	SIGMOID256(Y0, Y1, Y2, Y10, Y3)
	VMULPS  Y3, Y0, Y4
	VMULPS  (DX), Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     sgLoop256
	VZEROUPPER
	RET

// func swigluBack256(dg, du, a, gv, u *float32, n int)
TEXT ·swigluBack256(SB), NOSPLIT, $0-48
	MOVQ    dg+0(FP), DI
	MOVQ    du+8(FP), R8
	MOVQ    a+16(FP), R9
	MOVQ    gv+24(FP), SI
	MOVQ    u+32(FP), DX
	MOVQ    n+40(FP), CX
	VMOVUPS expOne<>(SB), Y11

sbLoop256:
	VMOVUPS     (SI), Y0
	SIGMOID256(Y0, Y1, Y2, Y10, Y3)
	VMOVUPS     (R9), Y5
	VMULPS      Y0, Y5, Y6
	VMULPS      Y3, Y6, Y6
	VMOVUPS     Y6, (R8)
	VMULPS      (DX), Y5, Y7
	VMULPS      Y3, Y7, Y7
	VSUBPS      Y3, Y11, Y1
	VFMADD213PS Y11, Y0, Y1
	VMULPS      Y1, Y7, Y7
	VMOVUPS     Y7, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, DI
	ADDQ        $32, R8
	ADDQ        $32, R9
	SUBQ        $8, CX
	JNZ         sbLoop256
	VZEROUPPER
	RET

// ------------------------------------------------------------ transpose

// func transpose8x8(dst *float32, ldd int, src *float32, lds int)
// dst[c*ldd+r] = src[r*lds+c] for r, c < 8: the classic three shuffle
// stages (pairs, quads, 128-bit halves), AVX only.
TEXT ·transpose8x8(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R8
	SHLQ $2, R9
	VMOVUPS (SI), Y0
	ADDQ    R9, SI
	VMOVUPS (SI), Y1
	ADDQ    R9, SI
	VMOVUPS (SI), Y2
	ADDQ    R9, SI
	VMOVUPS (SI), Y3
	ADDQ    R9, SI
	VMOVUPS (SI), Y4
	ADDQ    R9, SI
	VMOVUPS (SI), Y5
	ADDQ    R9, SI
	VMOVUPS (SI), Y6
	ADDQ    R9, SI
	VMOVUPS (SI), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xee, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xee, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xee, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xee, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	VMOVUPS Y8, (DI)
	ADDQ    R8, DI
	VMOVUPS Y9, (DI)
	ADDQ    R8, DI
	VMOVUPS Y10, (DI)
	ADDQ    R8, DI
	VMOVUPS Y11, (DI)
	ADDQ    R8, DI
	VMOVUPS Y12, (DI)
	ADDQ    R8, DI
	VMOVUPS Y13, (DI)
	ADDQ    R8, DI
	VMOVUPS Y14, (DI)
	ADDQ    R8, DI
	VMOVUPS Y15, (DI)
	VZEROUPPER
	RET

// ------------------------------------------------------------------ rope

// func rope512(a, b, c, s *float32, n int, sgn float32)
// With s' = sgn*s: a, b = a c - b s', b c + a s' (sgn -1: the inverse).
TEXT ·rope512(SB), NOSPLIT, $0-44
	MOVQ         a+0(FP), DI
	MOVQ         b+8(FP), SI
	MOVQ         c+16(FP), DX
	MOVQ         s+24(FP), R8
	MOVQ         n+32(FP), CX
	VBROADCASTSS sgn+40(FP), Z15

rpLoop512:
	VMOVUPS      (DI), Z0
	VMOVUPS      (SI), Z1
	VMOVUPS      (DX), Z2
	VMULPS       (R8), Z15, Z3
	VMULPS       Z2, Z0, Z4
	VFNMADD231PS Z3, Z1, Z4
	VMULPS       Z2, Z1, Z5
	VFMADD231PS  Z3, Z0, Z5
	VMOVUPS      Z4, (DI)
	VMOVUPS      Z5, (SI)
	ADDQ         $64, DI
	ADDQ         $64, SI
	ADDQ         $64, DX
	ADDQ         $64, R8
	SUBQ         $16, CX
	JNZ          rpLoop512
	VZEROUPPER
	RET

// func rope256(a, b, c, s *float32, n int, sgn float32)
TEXT ·rope256(SB), NOSPLIT, $0-44
	MOVQ         a+0(FP), DI
	MOVQ         b+8(FP), SI
	MOVQ         c+16(FP), DX
	MOVQ         s+24(FP), R8
	MOVQ         n+32(FP), CX
	VBROADCASTSS sgn+40(FP), Y15

rpLoop256:
	VMOVUPS      (DI), Y0
	VMOVUPS      (SI), Y1
	VMOVUPS      (DX), Y2
	VMULPS       (R8), Y15, Y3
	VMULPS       Y2, Y0, Y4
	VFNMADD231PS Y3, Y1, Y4
	VMULPS       Y2, Y1, Y5
	VFMADD231PS  Y3, Y0, Y5
	VMOVUPS      Y4, (DI)
	VMOVUPS      Y5, (SI)
	ADDQ         $32, DI
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, R8
	SUBQ         $8, CX
	JNZ          rpLoop256
	VZEROUPPER
	RET
