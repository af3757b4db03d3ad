package cpu_test

import (
	"math"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
	"github.com/tinyrecursive/trm/engine/enginetest"
)

func bf16Backend(t *testing.T, threads int) enginetest.Factory {
	return func() engine.Backend {
		b, err := cpu.NewWithOptions(cpu.Options{Threads: threads, Gemm: cpu.GemmBF16})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func skipNoBF16(t *testing.T) {
	t.Helper()
	if !gemm.BF16Supported() {
		t.Skip("this CPU lacks AVX512_BF16 (grep avx512_bf16 /proc/cpuinfo): the bf16 GEMM mode cannot run here")
	}
}

// TestConformanceBF16 runs the bf16 GEMM mode against the fp32 one on whole
// training steps and the golden cases under enginetest.BF16Step, and
// checks that its bits, too, do not depend on the thread count.
func TestConformanceBF16(t *testing.T) {
	skipNoBF16(t)
	t.Run("VsFP32", func(t *testing.T) { enginetest.RunPrecision(t, bf16Backend(t, 0), all, enginetest.BF16Step) })
	t.Run("Determinism", func(t *testing.T) { enginetest.RunDeterminism(t, bf16Backend(t, 1), bf16Backend(t, 3)) })
}

// TestGemmModeBF16Op: the backend's Gemm op in bf16 mode gives exactly
// gemm.SgemmBF16's bits (and not Sgemm's), batched or not.
func TestGemmModeBF16Op(t *testing.T) {
	skipNoBF16(t)
	be := bf16Backend(t, 0)()
	const m, n, k, batch = 37, 45, 29, 3
	a, b := make([]float32, batch*m*k), make([]float32, batch*k*n)
	for i := range a {
		a[i] = float32(math.Sin(float64(i)))
	}
	for i := range b {
		b[i] = float32(math.Cos(float64(i) * 0.7))
	}
	ab, bb, cb := be.Alloc(engine.F32, len(a)), be.Alloc(engine.F32, len(b)), be.Alloc(engine.F32, batch*m*n)
	be.Upload(ab, a)
	be.Upload(bb, b)
	for _, nb := range []int{1, batch} {
		be.Gemm(engine.Gemm{M: m, N: n, K: k, Alpha: 1, A: ab, Lda: k, StrideA: m * k, B: bb, Ldb: n, StrideB: k * n, C: cb, Ldc: n, StrideC: m * n, Batch: nb})
		got := make([]float32, batch*m*n)
		be.Download(got, cb)
		if err := be.Sync(); err != nil {
			t.Fatal(err)
		}
		want, fp32 := make([]float32, m*n), make([]float32, m*n)
		for i := 0; i < nb; i++ {
			gemm.SgemmBF16(false, false, m, n, k, 1, a[i*m*k:], k, b[i*k*n:], n, 0, want, n)
			gemm.Sgemm(false, false, m, n, k, 1, a[i*m*k:], k, b[i*k*n:], n, 0, fp32, n)
			differs := false
			for j := range want {
				if math.Float32bits(got[i*m*n+j]) != math.Float32bits(want[j]) {
					t.Fatalf("batch %d of %d: C[%d] = %g, SgemmBF16 gives %g", i, nb, j, got[i*m*n+j], want[j])
				}
				differs = differs || want[j] != fp32[j]
			}
			if !differs {
				t.Fatalf("batch %d of %d: bf16 result equals the fp32 one: operands not rounded?", i, nb)
			}
		}
	}
}

// TestGemmModeEnv: TRM_CPU_GEMM picks the mode; a bad value is an error
// naming the variable and the allowed values, and bf16 without
// AVX512_BF16 is refused rather than silently run in fp32.
func TestGemmModeEnv(t *testing.T) {
	for _, c := range []struct {
		env  string
		want cpu.GemmMode
	}{{"", cpu.GemmFP32}, {"fp32", cpu.GemmFP32}, {"bf16", cpu.GemmBF16}} {
		t.Setenv(cpu.GemmEnv, c.env)
		b, err := cpu.NewFromEnv(1)
		if c.want == cpu.GemmBF16 && !gemm.BF16Supported() {
			if err == nil || !strings.Contains(err.Error(), "AVX512_BF16") || !strings.Contains(err.Error(), cpu.GemmEnv) {
				t.Fatalf("%s=bf16 without AVX512_BF16: error %v, want a refusal naming AVX512_BF16 and %s", cpu.GemmEnv, err, cpu.GemmEnv)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s=%q: %v", cpu.GemmEnv, c.env, err)
		}
		if b.GemmMode() != c.want {
			t.Fatalf("%s=%q: mode %v, want %v", cpu.GemmEnv, c.env, b.GemmMode(), c.want)
		}
		if c.want == cpu.GemmBF16 && !strings.Contains(b.Name(), "bf16") {
			t.Fatalf("bf16 backend named %q", b.Name())
		}
	}
	t.Setenv(cpu.GemmEnv, "bf32")
	_, err := cpu.NewFromEnv(1)
	if err == nil || !strings.Contains(err.Error(), cpu.GemmEnv) || !strings.Contains(err.Error(), "fp32 or bf16") {
		t.Fatalf("%s=bf32: error %v, want one naming the variable and the allowed values", cpu.GemmEnv, err)
	}
	t.Log(err)
	if _, err := cpu.NewWithOptions(cpu.Options{Gemm: cpu.GemmMode(7)}); err == nil {
		t.Fatal("unknown GemmMode accepted")
	}
}
