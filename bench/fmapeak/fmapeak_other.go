//go:build !amd64

package fmapeak

// Off amd64 there is no loop: Measure reports 0.

func loop(iters int) {}

const flopsPerIter = 0

func available() bool { return false }

const bf16Chains = 24

func loopBF16(iters int, a, b *[16]uint32, out *[bf16Chains * 16]float32) {}

const bf16FlopsPerIter = 0

func availableBF16() bool { return false }
