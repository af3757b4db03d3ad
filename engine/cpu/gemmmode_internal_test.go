package cpu

import (
	"strings"
	"testing"
)

// TestGemmModeRefusedWithoutBF16 plays a CPU without AVX512_BF16: asking
// for bf16 GEMMs must fail with an error naming the missing feature and
// the variable, not run in fp32.
func TestGemmModeRefusedWithoutBF16(t *testing.T) {
	prev := bf16Supported
	bf16Supported = func() bool { return false }
	defer func() { bf16Supported = prev }()
	if _, err := NewWithOptions(Options{Threads: 1, Gemm: GemmBF16}); err == nil || !strings.Contains(err.Error(), "AVX512_BF16") {
		t.Fatalf("NewWithOptions(bf16) without AVX512_BF16: error %v", err)
	}
	t.Setenv(GemmEnv, "bf16")
	_, err := NewFromEnv(1)
	if err == nil || !strings.Contains(err.Error(), "AVX512_BF16") || !strings.Contains(err.Error(), GemmEnv+"=bf16") {
		t.Fatalf("%s=bf16 without AVX512_BF16: error %v", GemmEnv, err)
	}
	t.Log(err)
	if b, err := NewWithOptions(Options{Threads: 1}); err != nil || b.GemmMode() != GemmFP32 {
		t.Fatalf("fp32 without AVX512_BF16: %v, %v", b, err)
	}
}
