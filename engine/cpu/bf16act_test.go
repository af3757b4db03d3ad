package cpu_test

import (
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
	"github.com/tinyrecursive/trm/engine/enginetest"
)

// TestActivationsEnv: TRM_CPU_ACTIVATIONS picks the activation storage
// on top of TRM_CPU_GEMM (unset: bf16 with bf16 GEMMs, as the reference's
// bf16 training); bf16 activations over fp32 GEMMs, and a bad value, are
// errors naming the variables.
func TestActivationsEnv(t *testing.T) {
	cases := []struct {
		gemm, act string
		want      bool // StoresBF16Activations
		err       string
	}{
		{"", "", false, ""},
		{"fp32", "fp32", false, ""},
		{"bf16", "", true, ""},
		{"bf16", "fp32", false, ""},
		{"bf16", "bf16", true, ""},
		{"fp32", "bf16", false, "need bf16 GEMMs"},
		{"", "bf16", false, "need bf16 GEMMs"},
		{"bf16", "half", false, "fp32 or bf16"},
	}
	for _, c := range cases {
		t.Setenv(cpu.GemmEnv, c.gemm)
		t.Setenv(cpu.ActivationsEnv, c.act)
		b, err := cpu.NewFromEnv(1)
		if c.gemm == "bf16" && c.err == "" && !gemm.BF16Supported() {
			if err == nil {
				t.Fatalf("%s=bf16 accepted on a CPU without AVX512_BF16", cpu.GemmEnv)
			}
			continue
		}
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), cpu.ActivationsEnv) {
				t.Fatalf("%s=%q %s=%q: error %v, want one naming %s and saying %q", cpu.GemmEnv, c.gemm, cpu.ActivationsEnv, c.act, err, cpu.ActivationsEnv, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s=%q %s=%q: %v", cpu.GemmEnv, c.gemm, cpu.ActivationsEnv, c.act, err)
		}
		if got := engine.StoresBF16Activations(b); got != c.want {
			t.Fatalf("%s=%q %s=%q: StoresBF16Activations %v, want %v", cpu.GemmEnv, c.gemm, cpu.ActivationsEnv, c.act, got, c.want)
		}
		if c.want && !strings.Contains(b.Name(), "bf16 activations") {
			t.Fatalf("bf16-activation backend named %q", b.Name())
		}
	}
	if _, err := cpu.NewWithOptions(cpu.Options{Gemm: cpu.GemmFP32, Activations: engine.F64}); err == nil {
		t.Fatal("float64 activations accepted")
	}
}

func bf16ActBackend(t *testing.T, threads int) func() engine.Backend {
	return func() engine.Backend {
		b, err := cpu.NewWithOptions(cpu.Options{Threads: threads, Gemm: cpu.GemmBF16, Activations: engine.BF16})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// TestBF16Activations runs the bf16-activation mode against fp32 (every
// op of the contract bit for bit, whole steps within
// enginetest.BF16ActStep) and checks that its bits do not depend on the
// thread count.
func TestBF16Activations(t *testing.T) {
	skipNoBF16(t)
	enginetest.RunBF16Activations(t, bf16ActBackend(t, 0), all)
	t.Run("Determinism", func(t *testing.T) { enginetest.RunDeterminism(t, bf16ActBackend(t, 1), bf16ActBackend(t, 3)) })
}
