package cpu_test

import (
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
	"github.com/tinyrecursive/trm/engine/enginetest"
)

// TestBF16ActOps: the elementwise ops and Gemm take BF16 operands in any
// mix and give the bits of their float32 paths on the widened values, a
// BF16 output rounded: on one thread, on three (work split among
// workers), and on the bf16-activation backend (bf16 GEMMs) where the CPU
// has AVX512_BF16.
func TestBF16ActOps(t *testing.T) {
	t.Run("1thread", func(t *testing.T) {
		enginetest.RunBF16ActOps(t, func() engine.Backend { return cpu.New(1) })
	})
	t.Run("3threads", func(t *testing.T) {
		enginetest.RunBF16ActOps(t, func() engine.Backend { return cpu.New(3) })
	})
	t.Run("bf16", func(t *testing.T) {
		if !gemm.BF16Supported() {
			t.Skip("no AVX512_BF16: the bf16 GEMM mode is unavailable")
		}
		enginetest.RunBF16ActOps(t, func() engine.Backend {
			be, err := cpu.NewWithOptions(cpu.Options{Threads: 2, Gemm: cpu.GemmBF16, Activations: engine.BF16})
			if err != nil {
				t.Fatal(err)
			}
			return be
		})
	})
}

// TestBF16ActAllocs: the bf16 paths of the elementwise ops and of Gemm
// into a BF16 C allocate nothing once warm (their scratch is grown once
// and kept), with the work split among workers, in the fp32 GEMM mode
// and, where the CPU has it, the bf16 one (whose GEMM rounds C tile by
// tile).
func TestBF16ActAllocs(t *testing.T) {
	testBF16ActAllocs(t, cpu.New(2))
	if gemm.BF16Supported() {
		be, err := cpu.NewWithOptions(cpu.Options{Threads: 2, Gemm: cpu.GemmBF16, Activations: engine.BF16})
		if err != nil {
			t.Fatal(err)
		}
		testBF16ActAllocs(t, be)
	}
}

func testBF16ActAllocs(t *testing.T, be *cpu.Backend) {
	const rows, cols, inter = 64, 512, 768
	n := rows * cols
	bf := func(n int) engine.Buf {
		x := be.Alloc(engine.BF16, n)
		be.Fill(x, 0.5)
		return x
	}
	f32 := func(n int) engine.Buf {
		x := be.Alloc(engine.F32, n)
		be.Fill(x, 0.25)
		return x
	}
	y, a, b, rstd, dx, dy := bf(n), bf(n), bf(n), f32(rows), f32(n), f32(n)
	gu, act, dgu, dact := bf(rows*2*inter), bf(rows*inter), bf(rows*2*inter), f32(rows*inter)
	c16, af, w := bf(rows*cols), f32(n), f32(cols*cols)
	ops := map[string]func(){
		"AddRMSNorm":      func() { be.AddRMSNorm(y, rstd, a, b, rows, cols, 1e-5) },
		"RMSNormBackward": func() { be.RMSNormBackward(dx, dy, y, rstd, rows, cols) },
		"SwiGLU":          func() { be.SwiGLU(act, gu, rows, inter) },
		"SwiGLUBackward":  func() { be.SwiGLUBackward(dgu, dact, gu, rows, inter) },
		"Copy2D":          func() { be.Copy2D(y, cols, af, cols, rows, cols) },
		"Transpose":       func() { be.Transpose(y, a, 2, rows/2, cols) },
		"Add":             func() { be.Add(y, a, af) },
		"Add3":            func() { be.Add3(y, y, af, b) },
		"Gemm": func() {
			be.Gemm(engine.Gemm{TransB: true, M: rows, N: cols, K: cols, Alpha: 1, Beta: 0.5,
				A: a, Lda: cols, B: w, Ldb: cols, C: c16, Ldc: cols})
		},
	}
	for name, op := range ops {
		op()
		if err := be.Sync(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := testing.AllocsPerRun(5, op); got != 0 {
			t.Errorf("%s: %s with bf16 operands: %v heap allocations per call, want 0", be.Name(), name, got)
		}
	}
}

// BenchmarkBF16ActAddRMSNorm: AddRMSNorm over the Sudoku models' residual
// stream (1552 rows of 512) with float32 and with bf16 y, a and b.
func BenchmarkBF16ActAddRMSNorm(b *testing.B) {
	const rows, cols = 1552, 512
	for _, dt := range []engine.DType{engine.F32, engine.BF16} {
		b.Run(dt.String(), func(b *testing.B) {
			be := cpu.New(0)
			y, a, x, rstd := be.Alloc(dt, rows*cols), be.Alloc(dt, rows*cols), be.Alloc(dt, rows*cols), be.Alloc(engine.F32, rows)
			be.Fill(a, 0.5)
			be.Fill(x, -0.25)
			size := 4
			if dt == engine.BF16 {
				size = 2
			}
			b.SetBytes(int64(3 * rows * cols * size))
			for b.Loop() {
				be.AddRMSNorm(y, rstd, a, x, rows, cols, 1e-5)
			}
		})
	}
}

// BenchmarkBF16ActGemmC: the MLP's projections of the Sudoku models in
// the bf16 GEMM mode (bf16 A, float32 weights), into a float32 C and into
// a bf16 one: up (1552 x 3072 x 512, one K block: C rounded straight from
// the kernel's tiles) and down (1552 x 512 x 1536, three K blocks: the
// partial sums in float32 scratch).
func BenchmarkBF16ActGemmC(b *testing.B) {
	if !gemm.BF16Supported() {
		b.Skip("no AVX512_BF16")
	}
	for _, s := range []struct {
		name    string
		m, n, k int
	}{{"up_1552x3072x512", 1552, 3072, 512}, {"down_1552x512x1536", 1552, 512, 1536}} {
		for _, dt := range []engine.DType{engine.F32, engine.BF16} {
			b.Run(s.name+"/C_"+dt.String(), func(b *testing.B) {
				be, err := cpu.NewWithOptions(cpu.Options{Gemm: cpu.GemmBF16, Activations: engine.BF16})
				if err != nil {
					b.Fatal(err)
				}
				m, n, k := s.m, s.n, s.k
				a, w, c := be.Alloc(engine.BF16, m*k), be.Alloc(engine.F32, n*k), be.Alloc(dt, m*n)
				be.Fill(a, 0.5)
				be.Fill(w, 0.25)
				g := engine.Gemm{TransB: true, M: m, N: n, K: k, Alpha: 1, A: a, Lda: k, B: w, Ldb: k, C: c, Ldc: n}
				for b.Loop() {
					be.Gemm(g)
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
