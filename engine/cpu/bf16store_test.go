package cpu_test

import (
	"testing"

	"github.com/tinyrecursive/trm/engine/enginetest"
)

// TestBF16Storage: in the bf16 GEMM mode the backend stores the GEMM-only
// activations in bf16, and every training step and golden case gives the
// bits it gives with them in float32, for 1 and 3 threads.
func TestBF16Storage(t *testing.T) {
	skipNoBF16(t)
	for _, threads := range []int{1, 3} {
		t.Run(map[int]string{1: "1thread", 3: "3threads"}[threads], func(t *testing.T) {
			enginetest.RunBF16Storage(t, bf16Backend(t, threads))
		})
	}
}
