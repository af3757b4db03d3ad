// The VDPBF16PS encoding shared by the bf16 micro-kernels
// (kernel_bf16_amd64.s) and the bf16 peak loop (fmapeak_amd64.s).
//
// VDPBF16PS zmm1, zmm2, zmm3 computes, for each 32-bit lane i,
//
//	zmm1[i] = zmm1[i] + zmm2.bf16[2i+1]*zmm3.bf16[2i+1] + zmm2.bf16[2i]*zmm3.bf16[2i]
//
// in fp32 (the odd product is added first: Intel SDM pseudo-code, and what
// the AMD Zen 5 it was checked on computes, see dpbf16Model), with
// denormal inputs (the accumulator included) read as zero, each
// intermediate and final result flushed to a zero of its sign when
// denormal, and round-to-nearest-even whatever MXCSR says. Each addition
// is fused with its product (which is not rounded, nor flushed), so a
// pair step rounds twice, once per addition.
//
// Go's assembler (1.26) does not know VDPBF16PS, so DPBF16 emits it byte by
// byte for zmm registers given by number (0..31):
//
//	62                   EVEX escape
//	P0 = R X B R' 0 0 m m   R, R' = inverted bits 3, 4 of the destination
//	                        (ModRM.reg); B, X = inverted bits 3, 4 of the
//	                        second source (ModRM.rm, X extends a register
//	                        rm to 32 registers); mm = 10: the 0F38 map
//	P1 = W v v v v 1 p p    W = 0; vvvv = inverted bits 0..3 of the first
//	                        source; pp = 10: the F3 prefix
//	P2 = z L L b V' a a a   z = 0 (merge), L'L = 10: 512 bits, b = 0 (no
//	                        broadcast), V' = inverted bit 4 of the first
//	                        source, aaa = 0: no mask
//	52                   opcode
//	ModRM = 11 ddd sss   register-direct; low 3 bits of destination, second source
//
// i.e. EVEX.512.F3.0F38.W0 52 /r. GNU objdump decodes DPBF16(0, 28, 30) as
// "62 92 1e 40 52 c6  vdpbf16ps %zmm30,%zmm28,%zmm0" and DPBF16(27, 29, 31)
// as "62 02 16 40 52 df  vdpbf16ps %zmm31,%zmm29,%zmm27"; TestDPBF16Model
// and TestBF16KernelModel check what the emitted instructions compute.
#define DPBF16(d, v, s) \
	BYTE $0x62; \
	BYTE $(((((d)>>3)&1)^1)<<7 | ((((s)>>4)&1)^1)<<6 | ((((s)>>3)&1)^1)<<5 | ((((d)>>4)&1)^1)<<4 | 2); \
	BYTE $((((v)&15)^15)<<3 | 4 | 2); \
	BYTE $(2<<5 | ((((v)>>4)&1)^1)<<3); \
	BYTE $0x52; \
	BYTE $(0xC0 | ((d)&7)<<3 | ((s)&7))
