package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine/costmodel"
)

// TestCostCommand: the table of a preset names the GPU and has positive
// totals (launches, FLOPs, bytes, time) and MFU; --gpu all prints one
// summary row per GPU; missing data, an unknown GPU, a mistyped key and
// a split that does not divide the batch are refused.
func TestCostCommand(t *testing.T) {
	code, out, stderr := runCmd("cost", "--preset", "sudoku-att", "--gpu", "H200")
	if code != 0 {
		t.Fatalf("cost: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "on one H200 SXM 141GB") || !strings.Contains(out, "sequence 81") {
		t.Errorf("table lacks the GPU or the preset's model:\n%s", out)
	}
	total := regexp.MustCompile(`\| \*\*total\*\* \| \| (\d+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|`).FindStringSubmatch(out)
	if total == nil {
		t.Fatalf("no totals row:\n%s", out)
	}
	for i, what := range []string{"launches", "GFLOP", "GB", "ms"} {
		if v, err := strconv.ParseFloat(total[i+1], 64); err != nil || v <= 0 {
			t.Errorf("total %s = %q, want a positive number", what, total[i+1])
		}
	}
	mfu := regexp.MustCompile(`predicted MFU ([0-9.]+)%`).FindStringSubmatch(out)
	if mfu == nil {
		t.Fatalf("no MFU line:\n%s", out)
	}
	if v, _ := strconv.ParseFloat(mfu[1], 64); v <= 0 || v > 100 {
		t.Errorf("MFU %s%%", mfu[1])
	}

	code, out, stderr = runCmd("cost", "--preset", "arc1", "--gpu", "all", "--replicas", "8", "arch.L_cycles=2")
	if code != 0 {
		t.Fatalf("cost --gpu all: exit %d: %s", code, stderr)
	}
	for _, g := range costmodel.GPUs() {
		r, _ := costmodel.LookupGPU(g)
		if !strings.Contains(out, "| arc1, 1 of 8 GPUs | "+r.Name+" | 96 |") {
			t.Errorf("summary lacks the row of %s at 96 examples per GPU:\n%s", g, out)
		}
	}

	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"cost", "data_paths=[/nonexistent]"}, 1, "/nonexistent"},
		{[]string{"cost", "--preset", "sudoku-att", "--gpu", "Z80"}, 2, "Z80"},
		{[]string{"cost", "--preset", "sudoku-att", "--replicas", "7"}, 2, "does not divide"},
		{[]string{"cost", "--preset", "sudoku-att", "arch.hiden_size=3"}, 2, "did you mean arch.hidden_size"},
	} {
		code, _, stderr := runCmd(c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, %s; want %d and %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}
