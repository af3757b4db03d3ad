//go:build unix

package cpu_test

import (
	"math/rand/v2"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// BenchmarkBF16Storage times, in the bf16 GEMM mode at the Sudoku-MLP
// block's shape (B*S 1552 rows, H 512, I 1536), the ops whose buffers
// bf16 storage changes, with the buffer in float32 and in bf16: SwiGLU
// writing act, SwiGLUBackward writing dgu, and the products reading them
// (the down projection's forward and weight gradient, the up projection's
// input gradient), with the CPU time per call of all threads. Alternate
// -count rounds to compare on a shared machine:
//
//	TRM_CPU_GEMM=bf16 go test ./engine/cpu/ -run '^$' -bench BF16Storage -benchtime 20x -count 3
func BenchmarkBF16Storage(b *testing.B) {
	if !gemm.BF16Supported() {
		b.Skip("this CPU lacks AVX512_BF16: the bf16 GEMM mode cannot run here")
	}
	be, err := cpu.NewWithOptions(cpu.Options{Gemm: cpu.GemmBF16})
	if err != nil {
		b.Fatal(err)
	}
	const rows, H, I = 1552, 512, 1536
	rng := rand.New(rand.NewPCG(1, 1))
	up := func(n int) engine.Buf {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		x := be.Alloc(engine.F32, n)
		be.Upload(x, v)
		return x
	}
	gu, dact, dy := up(rows*2*I), up(rows*I), up(rows*H)
	wDown, wUp := up(H*I), up(2*I*H)
	gDown, gUp, out, dx := up(H*I), up(2*I*H), up(rows*H), up(rows*H)
	for _, dt := range []engine.DType{engine.F32, engine.BF16} {
		act, dgu := be.Alloc(dt, rows*I), be.Alloc(dt, rows*2*I)
		be.SwiGLU(act, gu, rows, I)
		be.SwiGLUBackward(dgu, dact, gu, rows, I)
		for _, op := range []struct {
			name string
			run  func()
		}{
			{"SwiGLU", func() { be.SwiGLU(act, gu, rows, I) }},
			{"SwiGLUBackward", func() { be.SwiGLUBackward(dgu, dact, gu, rows, I) }},
			{"DownForward", func() {
				be.Gemm(engine.Gemm{TransB: true, M: rows, N: H, K: I, Alpha: 1, A: act, Lda: I, B: wDown, Ldb: I, C: out, Ldc: H})
			}},
			{"DownWeight", func() {
				be.Gemm(engine.Gemm{TransA: true, M: H, N: I, K: rows, Alpha: 1, Beta: 1, A: dy, Lda: H, B: act, Ldb: I, C: gDown, Ldc: I})
			}},
			{"UpInput", func() {
				be.Gemm(engine.Gemm{M: rows, N: H, K: 2 * I, Alpha: 1, Beta: 1, A: dgu, Lda: 2 * I, B: wUp, Ldb: H, C: dx, Ldc: H})
			}},
			{"UpWeight", func() {
				be.Gemm(engine.Gemm{TransA: true, M: 2 * I, N: H, K: rows, Alpha: 1, Beta: 1, A: dgu, Lda: 2 * I, B: dy, Ldb: H, C: gUp, Ldc: H})
			}},
		} {
			b.Run(op.name+"/"+dt.String(), func(b *testing.B) {
				op.run()
				cpu0 := cpuSeconds()
				b.ResetTimer()
				for range b.N {
					op.run()
				}
				b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N)*1e3, "cpu-ms/op")
			})
		}
		if err := be.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}
