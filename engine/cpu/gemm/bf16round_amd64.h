// Rounding fp32 to bf16 in zmm registers, shared by the bf16 packing
// routines (pack_bf16_amd64.s) and the fp32 packing routines' variants for
// the fp32-FMA bf16 kernel (pack_amd64.s). Rounding is torch's
// round_to_nearest_even on the fp32 bits, in integer arithmetic:
//
//	bf16(x) = (x + 0x7fff + (x>>16 & 1)) >> 16      (x not NaN)
//	bf16(x) = (x | 0x00400000) >> 16                 (x NaN: quieted, stays NaN)
//
// which also rounds fp32 denormals to bf16 denormals and overflows to
// infinity exactly as torch does (VCVTNEPS2BF16 instead flushes denormal
// inputs to zero). ROUNDBF leaves the rounded value in the top 16 bits of
// t; Z20..Z22 hold the constants 1, 0x7fff and 0x00400000, K1 is clobbered.
#define ROUNDBF(x, t) \
	VPSRLD $16, x, t; \
	VPANDD Z20, t, t; \
	VPADDD Z21, t, t; \
	VPADDD x, t, t; \
	VCMPPS $3, x, x, K1; \
	VPORD  Z22, x, K1, t

// BFCONSTS loads ROUNDBF's constants into Z20..Z22 and the mask
// 0xffff0000 (the bf16 bits of an fp32) into Z23; it clobbers AX.
#define BFCONSTS \
	MOVL         $1, AX; \
	VPBROADCASTD AX, Z20; \
	MOVL         $0x7fff, AX; \
	VPBROADCASTD AX, Z21; \
	MOVL         $0x00400000, AX; \
	VPBROADCASTD AX, Z22; \
	MOVL         $0xffff0000, AX; \
	VPBROADCASTD AX, Z23

// BFCONSTSZ is BFCONSTS without a general register, from an all-ones
// vector made in Z23 (for routines whose registers are all taken).
#define BFCONSTSZ \
	VPTERNLOGD $0xff, Z23, Z23, Z23; \
	VPSRLD     $31, Z23, Z20; \
	VPSRLD     $17, Z23, Z21; \
	VPSLLD     $22, Z20, Z22; \
	VPSLLD     $16, Z23, Z23

// ROUNDBF32(x, t) replaces x with the fp32 value of its bf16 rounding
// (low 16 bits zero), using t as scratch.
#define ROUNDBF32(x, t) \
	ROUNDBF(x, t); \
	VPANDD Z23, t, x
