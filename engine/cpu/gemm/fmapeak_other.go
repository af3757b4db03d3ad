//go:build !amd64

package gemm

const fmaPeakFlopsPerIter = 0

func fmaPeakZMM(iters int) { panic("gemm: fmaPeakZMM needs amd64") }

func haveFMAPeak() bool { return false }

const bf16PeakChains = 24

const bf16PeakFlopsPerIter = 0

func bf16PeakZMM(iters int, a, b *[16]uint32, out *[bf16PeakChains * 16]float32) {
	panic("gemm: bf16PeakZMM needs amd64")
}

func haveBF16Peak() bool { return false }
