//go:build !amd64

package fmapeak

// Off amd64 there is no loop: Measure reports 0.

func loop(iters int) {}

const flopsPerIter = 0

func available() bool { return false }
