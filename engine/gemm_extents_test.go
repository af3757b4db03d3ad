package engine

import "testing"

// TestGemmExtents: the elements each operand of a product spans, with
// transposes, strided batches and empty extents, and the refusal of a
// leading dimension shorter than its operand's rows.
func TestGemmExtents(t *testing.T) {
	for _, c := range []struct {
		name    string
		g       Gemm
		a, b, c int
		ok      bool
	}{
		{"NN", Gemm{M: 3, N: 4, K: 5, Lda: 5, Ldb: 4, Ldc: 4}, 15, 20, 12, true},
		{"TN padded", Gemm{TransA: true, M: 3, N: 4, K: 5, Lda: 6, Ldb: 4, Ldc: 7}, 4*6 + 3, 20, 2*7 + 4, true},
		{"NT", Gemm{TransB: true, M: 3, N: 4, K: 5, Lda: 5, Ldb: 5, Ldc: 4}, 15, 20, 12, true},
		{"batched", Gemm{M: 2, N: 2, K: 2, Lda: 2, Ldb: 2, Ldc: 2, StrideA: 10, StrideB: 4, StrideC: 5, Batch: 3}, 24, 12, 14, true},
		{"empty M", Gemm{M: 0, N: 4, K: 5, Lda: 5, Ldb: 4, Ldc: 4}, 0, 20, 0, true},
		{"lda short", Gemm{M: 3, N: 4, K: 5, Lda: 4, Ldb: 4, Ldc: 4}, 0, 0, 0, false},
		{"ldb short (NT)", Gemm{TransB: true, M: 3, N: 4, K: 5, Lda: 5, Ldb: 4, Ldc: 4}, 0, 0, 0, false},
		{"ldc short", Gemm{M: 3, N: 4, K: 5, Lda: 5, Ldb: 4, Ldc: 3}, 0, 0, 0, false},
	} {
		a, b, cc, ok := c.g.Extents()
		if a != c.a || b != c.b || cc != c.c || ok != c.ok {
			t.Errorf("%s: Extents = %d, %d, %d, %v; want %d, %d, %d, %v", c.name, a, b, cc, ok, c.a, c.b, c.c, c.ok)
		}
	}
}
