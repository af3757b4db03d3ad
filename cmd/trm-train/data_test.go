package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/build"
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
		"show":   {"set", "index"},
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
		{"data", "show"},
		{"data", "show", "a", "b"},
		{"data", "show", "x", "--set", "val"},
		{"data", "show", "x", "--index", "-1"},
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
		"max token 5 (vocab_size 6)",   // 4x4 Sudoku: digits 1..4 are tokens 2..5
		"max token 11 (vocab_size 12)", // ARC: colours 0..9 are tokens 2..11
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

// TestDataShow prints examples of a built Sudoku and maze dataset decoded,
// with the label judged valid, and refuses an index past the split.
func TestDataShow(t *testing.T) {
	dir := t.TempDir()
	sud := filepath.Join(dir, "sudoku4")
	if code, out, errs := dataRun("data", "sudoku", "--out", sud, "--size", "4", "--generate", "6", "--generate-test", "2", "--num-aug", "1", "--quiet"); code != 0 {
		t.Fatalf("sudoku: %d %s %s", code, out, errs)
	}
	code, out, errs := dataRun("data", "show", sud, "--set", "train", "--index", "5")
	if code != 0 {
		t.Fatalf("show: %d %s", code, errs)
	}
	for _, want := range []string{sud + " train example 5 of 12", "input: 4x4 Sudoku", "----+----", "label as an answer: valid"} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	if code, out, _ := dataRun("data", "show", sud); code != 0 || !strings.Contains(out, "test example 0 of 2") {
		t.Errorf("show with the defaults: exit %d\n%s", code, out)
	}
	if code, _, errs := dataRun("data", "show", sud, "--index", "2"); code != 1 || !strings.Contains(errs, "the test split has 2") {
		t.Errorf("index past the split: exit %d, %s", code, errs)
	}
	maze := filepath.Join(dir, "maze")
	if code, out, errs := dataRun("data", "maze", "--out", maze, "--size", "9", "--generate", "2", "--generate-test", "1", "--quiet"); code != 0 {
		t.Fatalf("maze: %d %s %s", code, out, errs)
	}
	code, out, _ = dataRun("data", "show", maze)
	if code != 0 || !strings.Contains(out, "9x9 maze") || !strings.Contains(out, "label as an answer: valid") || strings.Count(out, "\n  #") < 9 {
		t.Errorf("maze show: exit %d\n%s", code, out)
	}
}

// sameTree fails t unless directories a and b hold the same files with
// the same bytes.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	files := func(root string) map[string][]byte {
		m := map[string][]byte{}
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if !d.IsDir() {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				rel, _ := filepath.Rel(root, p)
				m[rel] = b
			}
			return nil
		})
		return m
	}
	fa, fb := files(a), files(b)
	if len(fa) == 0 || len(fa) != len(fb) {
		t.Fatalf("%s has %d files, %s %d", a, len(fa), b, len(fb))
	}
	for name, x := range fa {
		if !bytes.Equal(x, fb[name]) {
			t.Errorf("%s differs between %s and %s", name, a, b)
		}
	}
}

// TestDataGeneratedBytes: the command's generated datasets are the bytes
// of one generator call per puzzle from the command's seeded RNG (training
// puzzles, then test ones), the order datasets were always generated in,
// so a seed reproduces the same dataset across versions.
func TestDataGeneratedBytes(t *testing.T) {
	dir := t.TempDir()
	const seed = 7
	cli := filepath.Join(dir, "cli-sudoku")
	if code, out, errs := dataRun("data", "sudoku", "--out", cli, "--size", "4", "--generate", "30", "--generate-test", "6", "--num-aug", "2", "--seed", "7", "--quiet"); code != 0 {
		t.Fatalf("sudoku: %d %s %s", code, out, errs)
	}
	r := data.NewRNG(seed, 100)
	gen := func(n int) []build.SudokuPuzzle {
		out := make([]build.SudokuPuzzle, n)
		for i := range out {
			var err error
			if out[i], err = build.GenerateSudoku(r, 2, 0); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	ref := filepath.Join(dir, "ref-sudoku")
	o := build.SudokuOptions{Out: ref, Box: 2, NumAug: 2, Seed: seed}
	o.Train = gen(30)
	o.Test = gen(6)
	if err := build.BuildSudoku(o); err != nil {
		t.Fatal(err)
	}
	sameTree(t, cli, ref)

	cli = filepath.Join(dir, "cli-maze")
	if code, out, errs := dataRun("data", "maze", "--out", cli, "--size", "11", "--generate", "5", "--generate-test", "2", "--min-path", "10", "--aug", "--seed", "5", "--quiet"); code != 0 {
		t.Fatalf("maze: %d %s %s", code, out, errs)
	}
	r = data.NewRNG(5, 200)
	mazes := func(n int) []build.Maze {
		var out []build.Maze
		for range n {
			m, err := build.GenerateMaze(r, 11, 0.1, 10)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		return out
	}
	ref = filepath.Join(dir, "ref-maze")
	mo := build.MazeOptions{Out: ref, Aug: true, Seed: 5}
	mo.Train = mazes(5)
	mo.Test = mazes(2)
	if err := build.BuildMaze(mo); err != nil {
		t.Fatal(err)
	}
	sameTree(t, cli, ref)
}

// TestDataBuildCancelled cancels dataset builds through the command's
// context (as SIGINT or SIGTERM does through signal.NotifyContext): each
// returns an error wrapping context.Canceled soon after, and leaves
// nothing in the output's directory.
func TestDataBuildCancelled(t *testing.T) {
	for _, args := range [][]string{
		// Generating a million 9x9 puzzles takes hours: cancelled while generating.
		{"data", "sudoku", "--size", "9", "--generate", "1000000", "--quiet"},
		{"data", "maze", "--size", "31", "--generate", "1000000", "--quiet"},
		// Four million augmented 4x4 examples: cancelled while augmenting or writing.
		{"data", "sudoku", "--size", "4", "--generate", "40", "--num-aug", "100000", "--quiet"},
	} {
		dir := t.TempDir()
		out := filepath.Join(dir, "ds")
		var stdout, stderr bytes.Buffer
		root := newRoot(&stdout, &stderr)
		root.SetArgs(append(args, "--out", out))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		err := root.ExecuteContext(ctx)
		took := time.Since(start)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%v: error %v, want one wrapping context.Canceled", args, err)
		}
		if took > 5*time.Second {
			t.Errorf("%v: stopped %v after the cancellation", args, took)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("%v: left %v in the output's directory", args, left)
		}
		if stdout.Len() != 0 {
			t.Errorf("%v: printed %q", args, stdout.String())
		}
	}
}
