//go:build cuda

package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestVersionCUDA: the cuda build says so and lists the GPU targets of
// the kernels it embeds (on a GPU, or on the stand-in: make
// test-cuda-standin).
func TestVersionCUDA(t *testing.T) {
	code, out, errs := runCmd("version")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "backends: cpu, cuda\n") || !regexp.MustCompile(`kernels: sm_\d+.* \(built in\)`).MatchString(out) {
		t.Errorf("version of the cuda build:\n%s", out)
	}
	t.Setenv("TRM_CUDA_FATBIN", "/nonexistent/k.fatbin")
	if _, out, _ := runCmd("version"); !strings.Contains(out, "kernels: open /nonexistent/k.fatbin") {
		t.Errorf("version with a missing TRM_CUDA_FATBIN:\n%s", out)
	}
}
