package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dataRun runs trm-train with args and returns exit status and outputs.
func dataRun(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestDataHelp: every subcommand's --help documents each of its flags.
func TestDataHelp(t *testing.T) {
	flags := map[string][]string{
		"sudoku": {"out", "csv-dir", "train-csv", "test-csv", "generate", "generate-test", "min-guesses", "size", "subsample", "min-rating", "num-aug", "seed", "force", "quiet"},
		"maze":   {"out", "csv-dir", "train-csv", "test-csv", "generate", "generate-test", "size", "min-path", "loops", "subsample", "aug", "seed", "force", "quiet"},
		"arc":    {"out", "prefix", "subsets", "test-set", "num-aug", "seed", "force", "quiet"},
		"check":  {},
	}
	for sub, fl := range flags {
		code, out, _ := dataRun("data", sub, "--help")
		if code != 0 || !strings.Contains(out, "Usage:\n  trm-train data "+sub) {
			t.Errorf("%s --help: exit %d\n%s", sub, code, out)
		}
		for _, f := range fl {
			if !strings.Contains(out, "  --"+f+" ") && !strings.Contains(out, "  --"+f+"[=true|false]") {
				t.Errorf("%s --help does not document --%s", sub, f)
			}
		}
	}
	if code, out, _ := dataRun("data", "--help"); code != 0 || !strings.Contains(out, "sudoku") || !strings.Contains(out, "check") {
		t.Errorf("data --help: %d %s", code, out)
	}
}

func TestDataUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"data"},
		{"data", "nope"},
		{"data", "sudoku"},
		{"data", "sudoku", "--out", "x"},
		{"data", "sudoku", "--out", "x", "--size", "5", "--generate", "1"},
		{"data", "sudoku", "--bogus"},
		{"data", "maze", "--out", "x", "--generate", "1", "--loops", "2"},
		{"data", "arc", "--out", "x"},
		{"data", "check"},
	} {
		if code, _, errs := dataRun(args...); code != 2 || !strings.Contains(errs, "usage: trm-train data") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}

// TestDataBuildAndCheck builds small datasets with each builder through
// the CLI and checks them with `data check`.
func TestDataBuildAndCheck(t *testing.T) {
	dir := t.TempDir()
	sud := filepath.Join(dir, "sudoku4")
	if code, out, errs := dataRun("data", "sudoku", "--out", sud, "--size", "4", "--generate", "20", "--generate-test", "5", "--num-aug", "2", "--quiet"); code != 0 {
		t.Fatalf("sudoku: %d %s %s", code, out, errs)
	}
	maze := filepath.Join(dir, "maze")
	if code, out, errs := dataRun("data", "maze", "--out", maze, "--size", "11", "--generate", "6", "--generate-test", "2", "--min-path", "10", "--aug", "--quiet"); code != 0 {
		t.Fatalf("maze: %d %s %s", code, out, errs)
	}
	arcDir := filepath.Join(dir, "arc")
	if code, out, errs := dataRun("data", "arc", "--out", arcDir, "--prefix", "../../testdata/arc-agi/arc-agi",
		"--subsets", "evaluation", "--test-set", "evaluation", "--num-aug", "1", "--quiet"); code != 0 {
		t.Fatalf("arc: %d %s %s", code, out, errs)
	}
	code, out, errs := dataRun("data", "check", sud, maze, arcDir)
	if code != 0 {
		t.Fatalf("check: %d %s %s", code, out, errs)
	}
	for _, want := range []string{
		sud + " train/all: 60 examples, 60 puzzles, 20 groups",
		sud + " test/all: 5 examples",
		maze + " train/all: 48 examples, 48 puzzles, 6 groups",
		arcDir + ": ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	// An existing output is refused without --force; a corrupt file fails
	// the check with exit 1 and names it.
	if code, _, _ := dataRun("data", "sudoku", "--out", sud, "--size", "4", "--generate", "2", "--quiet"); code != 1 {
		t.Errorf("overwrite without --force: exit %d", code)
	}
	bad := filepath.Join(sud, "train", "all__labels.npy")
	os.WriteFile(bad, []byte("junk"), 0o644)
	if code, _, errs := dataRun("data", "check", sud); code != 1 || !strings.Contains(errs, bad) {
		t.Errorf("corrupt dataset: exit %d, %s", code, errs)
	}
}
