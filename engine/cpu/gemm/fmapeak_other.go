//go:build !amd64

package gemm

const fmaPeakFlopsPerIter = 0

func fmaPeakZMM(iters int) { panic("gemm: fmaPeakZMM needs amd64") }

func haveFMAPeak() bool { return false }
