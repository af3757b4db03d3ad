package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
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
	// --metrics-linger 0: nothing scrapes these runs, so they must not
	// wait for a scrape after the end.
	args := []string{"--metrics-linger", "0", "data_paths=[" + data + "]", "global_batch_size=16", "epochs=1", "eval_interval=1",
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

// TestTrainMetricsEnd: the run label comes from run_name when
// --metrics-run is absent; a linger prints the line operators (and
// .ci/prometheus-test) wait for; --metrics-push alone pushes the final
// state to a Pushgateway without serving anything.
func TestTrainMetricsEnd(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoSudoku(data, 32, 8, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	args := []string{"data_paths=[" + data + "]", "global_batch_size=16", "epochs=1", "eval_interval=1", "max_steps=1",
		"arch.hidden_size=16", "arch.num_heads=2", "arch.puzzle_emb_ndim=16", "arch.H_cycles=1", "arch.L_cycles=1", "arch.halt_max_steps=2"}

	code, stdout, stderr := runCmd(append([]string{"train", "--quiet", "--metrics-addr", "127.0.0.1:0", "--metrics-linger", "50ms", "+run_name=named"}, args...)...)
	if code != 0 || !strings.Contains(stdout, "done: 1 steps") {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, `(run "named")`) {
		t.Errorf("run_name did not become the metrics run label:\n%s", stderr)
	}
	if !strings.Contains(stderr, "metrics: serving the final state at http://127.0.0.1:") || !strings.Contains(stderr, "at most 50ms") {
		t.Errorf("no linger line:\n%s", stderr)
	}

	var mu sync.Mutex
	var pushes []string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		pushes = append(pushes, r.Method+" "+r.URL.Path+"\n"+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()
	code, stdout, stderr = runCmd(append([]string{"train", "--quiet", "--metrics-push", gw.URL, "--metrics-run", "pushed"}, args...)...)
	if code != 0 || !strings.Contains(stdout, "done: 1 steps") {
		t.Fatalf("train --metrics-push: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.Contains(stderr, "metrics: serving") {
		t.Errorf("--metrics-push alone served metrics:\n%s", stderr)
	}
	if !strings.Contains(stderr, "metrics: pushed the final state to "+gw.URL) {
		t.Errorf("no push line:\n%s", stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pushes) != 1 || !strings.Contains(pushes[0], "/job/trm-train/run/pushed") || !strings.Contains(pushes[0], "trm_run_running") {
		t.Errorf("pushes received: %q", pushes)
	}

	if code, _, stderr := runCmd(append([]string{"train", "--metrics-linger", "-1s"}, args...)...); code != 2 || !strings.Contains(stderr, "--metrics-linger") {
		t.Errorf("negative linger: exit %d, %s", code, stderr)
	}
}
