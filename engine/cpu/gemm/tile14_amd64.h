// Macros shared by the AVX-512 micro-kernels with a 14-row tile (fp32
// 14x32, 14x16 and the strided 14x32 in kernel_amd64.s, bf16 14x32 and
// 14x16 in kernel_bf16_amd64.s): clearing the accumulators and the
// epilogue, which all of them share operation for operation. Register
// conventions: row i of a 14x32 tile in Z(2i), Z(2i+1), of a 14x16 tile in
// Z(i); DI points at the tile's first row of C, R8 holds ldc in bytes; the
// epilogue wants alpha broadcast in Z30 and, for the beta forms, beta in
// Z31, and uses Z28 and Z29 as scratch.

#define ZERO_14x16 \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7; \
	VPXORD Z8, Z8, Z8; \
	VPXORD Z9, Z9, Z9; \
	VPXORD Z10, Z10, Z10; \
	VPXORD Z11, Z11, Z11; \
	VPXORD Z12, Z12, Z12; \
	VPXORD Z13, Z13, Z13

#define ZERO_14x32 \
	ZERO_14x16; \
	VPXORD Z14, Z14, Z14; \
	VPXORD Z15, Z15, Z15; \
	VPXORD Z16, Z16, Z16; \
	VPXORD Z17, Z17, Z17; \
	VPXORD Z18, Z18, Z18; \
	VPXORD Z19, Z19, Z19; \
	VPXORD Z20, Z20, Z20; \
	VPXORD Z21, Z21, Z21; \
	VPXORD Z22, Z22, Z22; \
	VPXORD Z23, Z23, Z23; \
	VPXORD Z24, Z24, Z24; \
	VPXORD Z25, Z25, Z25; \
	VPXORD Z26, Z26, Z26; \
	VPXORD Z27, Z27, Z27

// STORE512_0 finishes one row of a 14x32 tile: t = alpha*acc, stored;
// STORE512_B stores beta*C + t instead. DI moves to the next row.
#define STORE512_0(r0, r1) \
	VMULPS  Z30, r0, r0; \
	VMULPS  Z30, r1, r1; \
	VMOVUPS r0, (DI); \
	VMOVUPS r1, 64(DI); \
	ADDQ    R8, DI

#define STORE512_B(r0, r1) \
	VMULPS  Z30, r0, r0; \
	VMULPS  Z30, r1, r1; \
	VMULPS  (DI), Z31, Z28; \
	VMULPS  64(DI), Z31, Z29; \
	VADDPS  Z28, r0, r0; \
	VADDPS  Z29, r1, r1; \
	VMOVUPS r0, (DI); \
	VMOVUPS r1, 64(DI); \
	ADDQ    R8, DI

// STORE16_0 and STORE16_B are the same for one row of a 14x16 tile.
#define STORE16_0(r) \
	VMULPS  Z30, r, r; \
	VMOVUPS r, (DI); \
	ADDQ    R8, DI

#define STORE16_B(r) \
	VMULPS  Z30, r, r; \
	VMULPS  (DI), Z31, Z28; \
	VADDPS  Z28, r, r; \
	VMOVUPS r, (DI); \
	ADDQ    R8, DI

#define STORE_14x32_0 \
	STORE512_0(Z0, Z1); \
	STORE512_0(Z2, Z3); \
	STORE512_0(Z4, Z5); \
	STORE512_0(Z6, Z7); \
	STORE512_0(Z8, Z9); \
	STORE512_0(Z10, Z11); \
	STORE512_0(Z12, Z13); \
	STORE512_0(Z14, Z15); \
	STORE512_0(Z16, Z17); \
	STORE512_0(Z18, Z19); \
	STORE512_0(Z20, Z21); \
	STORE512_0(Z22, Z23); \
	STORE512_0(Z24, Z25); \
	STORE512_0(Z26, Z27)

#define STORE_14x32_B \
	STORE512_B(Z0, Z1); \
	STORE512_B(Z2, Z3); \
	STORE512_B(Z4, Z5); \
	STORE512_B(Z6, Z7); \
	STORE512_B(Z8, Z9); \
	STORE512_B(Z10, Z11); \
	STORE512_B(Z12, Z13); \
	STORE512_B(Z14, Z15); \
	STORE512_B(Z16, Z17); \
	STORE512_B(Z18, Z19); \
	STORE512_B(Z20, Z21); \
	STORE512_B(Z22, Z23); \
	STORE512_B(Z24, Z25); \
	STORE512_B(Z26, Z27)

#define STORE_14x16_0 \
	STORE16_0(Z0); \
	STORE16_0(Z1); \
	STORE16_0(Z2); \
	STORE16_0(Z3); \
	STORE16_0(Z4); \
	STORE16_0(Z5); \
	STORE16_0(Z6); \
	STORE16_0(Z7); \
	STORE16_0(Z8); \
	STORE16_0(Z9); \
	STORE16_0(Z10); \
	STORE16_0(Z11); \
	STORE16_0(Z12); \
	STORE16_0(Z13)

#define STORE_14x16_B \
	STORE16_B(Z0); \
	STORE16_B(Z1); \
	STORE16_B(Z2); \
	STORE16_B(Z3); \
	STORE16_B(Z4); \
	STORE16_B(Z5); \
	STORE16_B(Z6); \
	STORE16_B(Z7); \
	STORE16_B(Z8); \
	STORE16_B(Z9); \
	STORE16_B(Z10); \
	STORE16_B(Z11); \
	STORE16_B(Z12); \
	STORE16_B(Z13)
