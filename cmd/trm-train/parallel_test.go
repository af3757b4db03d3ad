package main

import (
	"strings"
	"testing"
)

// TestParallelSpecs: what the default (CPU) build says to several GPUs and
// to a multi-process environment.
func TestParallelSpecs(t *testing.T) {
	for _, c := range []struct {
		spec string
		par  bool
	}{{"cuda:0", false}, {"cuda:0,1", true}, {"cuda", true}, {"cpu", false}} {
		got, err := wantsParallel(c.spec)
		if err != nil || got != c.par {
			t.Errorf("wantsParallel(%q) = %v, %v; want %v", c.spec, got, err, c.par)
		}
	}
	if cudaBackend == nil {
		if _, err := openBackend("cuda:0,1", 1); err == nil || !strings.Contains(err.Error(), "built without CUDA") {
			t.Errorf("cuda:0,1 in the CPU build: %v", err)
		}
	}
	t.Setenv("WORLD_SIZE", "2")
	t.Setenv("RANK", "1")
	t.Setenv("MASTER_ADDR", "127.0.0.1")
	t.Setenv("MASTER_PORT", "29500")
	// Without the job's secret a rank stops before opening anything.
	if _, err := wantsParallel("cuda:0"); err == nil || !strings.Contains(err.Error(), "TRM_RDZV_SECRET is not set") {
		t.Errorf("no TRM_RDZV_SECRET: %v", err)
	}
	t.Setenv("TRM_RDZV_SECRET", "short")
	if _, err := wantsParallel("cuda:0"); err == nil || !strings.Contains(err.Error(), "at least") {
		t.Errorf("a short TRM_RDZV_SECRET: %v", err)
	}
	t.Setenv("TRM_RDZV_SECRET", "")
	t.Setenv("TRM_RDZV_INSECURE", "1")
	if par, err := wantsParallel("cuda:0"); err != nil || !par {
		t.Errorf("TRM_RDZV_INSECURE=1: %v, %v", par, err)
	}
	t.Setenv("TRM_RDZV_INSECURE", "")
	t.Setenv("TRM_RDZV_SECRET", "0123456789abcdef0123456789abcdef")
	if par, err := wantsParallel("cuda:0"); err != nil || !par {
		t.Errorf("one rank of two on cuda:0: %v, %v", par, err)
	}
	if _, err := openBackend("cpu", 1); err == nil || !strings.Contains(err.Error(), "multi-process job") {
		t.Errorf("--device cpu with WORLD_SIZE=2: %v", err)
	}
	t.Setenv("RANK", "")
	if _, err := wantsParallel("cuda:0"); err == nil || !strings.Contains(err.Error(), "RANK is not set") {
		t.Errorf("incomplete environment: %v", err)
	}
}
