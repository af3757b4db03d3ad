package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/trainer"
)

// TestTrainMetricsAddr runs train with the exporter: from the flag, from
// TRM_METRICS_ADDR, and with addresses that must be refused.
func TestTrainMetricsAddr(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoSudoku(data, 64, 16, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	args := []string{"data_paths=[" + data + "]", "global_batch_size=16", "epochs=1", "eval_interval=1",
		"arch.hidden_size=32", "arch.num_heads=2", "arch.puzzle_emb_ndim=32", "arch.H_cycles=1", "arch.L_cycles=1", "arch.halt_max_steps=2"}

	code, stdout, stderr := runCmd(append([]string{"train", "--quiet", "--metrics-addr", ":0", "--metrics-run", "flagrun"}, args...)...)
	if code != 0 || !strings.Contains(stdout, "done: 4 steps") {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// ":0" binds loopback only.
	if !strings.Contains(stderr, `metrics: serving http://127.0.0.1:`) || !strings.Contains(stderr, `(run "flagrun")`) {
		t.Errorf("stderr lacks the loopback metrics URL:\n%s", stderr)
	}

	t.Setenv("TRM_METRICS_ADDR", "127.0.0.1:0")
	code, _, stderr = runCmd(append([]string{"train", "--quiet", "--out", filepath.Join(dir, "envrun")}, args...)...)
	if code != 0 || !strings.Contains(stderr, `metrics: serving http://127.0.0.1:`) || !strings.Contains(stderr, `(run "envrun")`) {
		t.Errorf("TRM_METRICS_ADDR: exit %d\n%s", code, stderr)
	}
	t.Setenv("TRM_METRICS_ADDR", "")

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for addr, msg := range map[string]string{"nonsense": "want [HOST]:PORT", busy.Addr().String(): "address already in use"} {
		code, _, stderr := runCmd(append([]string{"train", "--quiet", "--metrics-addr", addr}, args...)...)
		if code != 1 || !strings.Contains(stderr, msg) {
			t.Errorf("--metrics-addr %s: exit %d, %q; want 1 and %q", addr, code, stderr, msg)
		}
	}
}
