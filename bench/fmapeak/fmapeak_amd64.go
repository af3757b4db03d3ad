package fmapeak

import "golang.org/x/sys/cpu"

// loop runs iters iterations of 12 independent zmm FMAs.
//
//go:noescape
func loop(iters int)

// flopsPerIter is the flop count of one loop iteration: 12 FMAs of 16 lanes.
const flopsPerIter = 12 * 16 * 2

func available() bool { return cpu.X86.HasAVX512F }

// bf16Chains is the number of independent accumulators of loopBF16.
const bf16Chains = 24

// loopBF16 runs iters iterations of 24 independent zmm VDPBF16PS, each
// adding the dot products of the bf16 pairs in a and b to its
// accumulator, and stores the accumulators (zero at the start) to out.
//
//go:noescape
func loopBF16(iters int, a, b *[16]uint32, out *[bf16Chains * 16]float32)

// bf16FlopsPerIter is the flop count of one loopBF16 iteration: 24
// instructions of 16 lanes, two multiply-adds per lane.
const bf16FlopsPerIter = bf16Chains * 16 * 2 * 2

func availableBF16() bool { return cpu.X86.HasAVX512F && cpu.X86.HasAVX512BF16 }
