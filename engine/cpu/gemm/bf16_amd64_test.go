package gemm

import (
	"fmt"
	"testing"
)

// BenchmarkBF16MicroKernel is BenchmarkMicroKernel for the bf16 kernel
// (kc in k steps, so GFLOP/s compare directly with the fp32 kernels'),
// next to the fp32 AVX-512 kernel for the same time window.
func BenchmarkBF16MicroKernel(b *testing.B) {
	skipNoBF16(b)
	for _, k := range []*kernel{avx512Kernel, bf16Kernel} {
		for _, kc := range []int{k.kc, 64} {
			b.Run(fmt.Sprintf("%s/kc=%d", k.name, kc), func(b *testing.B) { benchKernel(b, k, kc) })
		}
	}
}
