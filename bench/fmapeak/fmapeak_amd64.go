package fmapeak

import "golang.org/x/sys/cpu"

// loop runs iters iterations of 12 independent zmm FMAs.
//
//go:noescape
func loop(iters int)

// flopsPerIter is the flop count of one loop iteration: 12 FMAs of 16 lanes.
const flopsPerIter = 12 * 16 * 2

func available() bool { return cpu.X86.HasAVX512F }
