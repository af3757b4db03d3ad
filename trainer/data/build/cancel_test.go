package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/internal/ctxtest"
	"github.com/tinyrecursive/trm/trainer/data"
)

// maxCancelLatency is the promise made to an interrupted user: the
// process ends within 5 s of SIGINT/SIGTERM.
const maxCancelLatency = 5 * time.Second

// cancelDuring runs op under a context that is cancelled as soon as ready
// reports true (polled every 2 ms), and returns op's error and the time
// from the cancellation to op's return. op finishing before it was
// cancelled fails the test: its input was too small to show anything.
func cancelDuring(t *testing.T, ready func() bool, op func(context.Context) error) (error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !ready() {
		select {
		case err := <-done:
			t.Fatalf("finished (err %v) before it could be cancelled: make the input larger", err)
		case <-tick.C:
		}
	}
	cancel()
	at := time.Now()
	select {
	case err := <-done:
		return err, time.Since(at)
	case <-time.After(maxCancelLatency):
		t.Fatalf("still running %v after cancellation", maxCancelLatency)
	}
	return nil, 0
}

// after is a ready function for cancelDuring that turns true after d.
func after(d time.Duration) func() bool {
	at := time.Now().Add(d)
	return func() bool { return time.Now().After(at) }
}

// checkCancelled asserts err reports the cancellation (wrapped, with a
// message) and the latency bound.
func checkCancelled(t *testing.T, what string, err error, latency time.Duration) {
	t.Helper()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%s: got %v, want an error wrapping context.Canceled", what, err)
	}
	if !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("%s: error %q does not say what was interrupted", what, err)
	}
	if latency > maxCancelLatency {
		t.Errorf("%s: returned %v after cancellation, more than %v", what, latency, maxCancelLatency)
	}
	t.Logf("%s: returned %v after cancellation: %v", what, latency.Round(time.Microsecond), err)
}

// leftovers lists what a build into out left beside it: its temporary
// directories (".out.tmp-*") and the aside copies of a replaced dataset
// (".out.old-*").
func leftovers(t *testing.T, out string) []string {
	t.Helper()
	var found []string
	for _, pat := range []string{".tmp-*", ".old-*"} {
		m, err := filepath.Glob(filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+pat))
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, m...)
	}
	return found
}

// checkNothingWritten asserts that neither out nor a temporary directory
// of it exists.
func checkNothingWritten(t *testing.T, out string) {
	t.Helper()
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists after an interrupted build (stat: %v)", out, err)
	}
	if l := leftovers(t, out); len(l) > 0 {
		t.Errorf("interrupted build left %v", l)
	}
}

// TestBuildARCCancelWhileAugmenting interrupts the paper's ARC-AGI-1 build
// (1000 augmentations of every puzzle, about a minute) 200 ms in.
func TestBuildARCCancelWhileAugmenting(t *testing.T) {
	out := filepath.Join(t.TempDir(), "arc1-aug1000")
	err, lat := cancelDuring(t, after(200*time.Millisecond), func(ctx context.Context) error {
		_, err := BuildARCContext(ctx, ARCOptions{Out: out, Prefix: realARC(t), Subsets: []string{"training", "evaluation", "concept"},
			TestSets: []string{"evaluation"}, NumAug: 1000, Seed: 42})
		return err
	})
	checkCancelled(t, "arc augmenting", err, lat)
	checkNothingWritten(t, out)
}

// TestBuildARCCancelWhileWriting interrupts an ARC build once its train
// inputs file holds a megabyte, and checks that the temporary directory is
// removed, and that with --force the dataset being replaced is untouched.
func TestBuildARCCancelWhileWriting(t *testing.T) {
	for _, force := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "arc-eval")
		if force {
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, "identifiers.json"), []byte(`["<blank>"]`), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		writing := func() bool {
			for _, d := range leftovers(t, out) {
				if fi, err := os.Stat(filepath.Join(d, "train", "all__inputs.npy")); err == nil && fi.Size() > 1<<20 {
					return true
				}
			}
			return false
		}
		err, lat := cancelDuring(t, writing, func(ctx context.Context) error {
			_, err := BuildARCContext(ctx, ARCOptions{Out: out, Force: force, Prefix: realARC(t), Subsets: []string{"evaluation"},
				TestSets: []string{"evaluation"}, NumAug: 100, Seed: 42})
			return err
		})
		checkCancelled(t, "arc writing", err, lat)
		if l := leftovers(t, out); len(l) > 0 {
			t.Errorf("force %v: interrupted build left %v", force, l)
		}
		if !force {
			checkNothingWritten(t, out)
			continue
		}
		b, err := os.ReadFile(filepath.Join(out, "identifiers.json"))
		if err != nil || string(b) != `["<blank>"]` {
			t.Errorf("the dataset an interrupted --force build was to replace changed: %q, %v", b, err)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 1 {
			t.Errorf("the dataset an interrupted --force build was to replace holds %d entries, want 1", len(ents))
		}
	}
}

// TestGenerateSudokusCancel interrupts a generator asked for a rating no
// puzzle reaches, which would otherwise try for minutes.
func TestGenerateSudokusCancel(t *testing.T) {
	err, lat := cancelDuring(t, after(200*time.Millisecond), func(ctx context.Context) error {
		_, err := GenerateSudokus(ctx, data.NewRNG(1, 100), 3, 100000, 10, "sudoku generate", nil)
		return err
	})
	checkCancelled(t, "sudoku generator", err, lat)
	if !strings.Contains(err.Error(), "after 0 of 10 puzzles") {
		t.Errorf("error %q does not say how far generation got", err)
	}
}

// TestGenerateMazesCancel interrupts the generation of many hard mazes.
func TestGenerateMazesCancel(t *testing.T) {
	err, lat := cancelDuring(t, after(200*time.Millisecond), func(ctx context.Context) error {
		_, err := GenerateMazes(ctx, data.NewRNG(1, 200), 100000, 30, 0.1, 110, "maze generate", nil)
		return err
	})
	checkCancelled(t, "maze generator", err, lat)
}

// cancelAtEveryCheck runs build once to count its cancellation checks,
// then once cancelled at each of them: every run must fail with
// context.Canceled and leave nothing at out nor a temporary directory.
func cancelAtEveryCheck(t *testing.T, build func(ctx context.Context, out string) error) {
	t.Helper()
	dir := t.TempDir()
	full := ctxtest.NewCountdown(1 << 62)
	if err := build(full, filepath.Join(dir, "full")); err != nil {
		t.Fatal(err)
	}
	n := full.Calls()
	if n < 10 {
		t.Fatalf("only %d cancellation checks in a whole build", n)
	}
	for k := int64(0); k < n; k++ {
		out := filepath.Join(dir, "cut")
		err := build(ctxtest.NewCountdown(k), out)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled at check %d of %d: got %v", k, n, err)
		}
		checkNothingWritten(t, out)
	}
	t.Logf("cancelled cleanly at each of %d checks", n)
}

func TestBuildSudokuCancelAtEveryCheck(t *testing.T) {
	r := data.NewRNG(3, 0)
	ps, err := GenerateSudokus(context.Background(), r, 2, 0, 12, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancelAtEveryCheck(t, func(ctx context.Context, out string) error {
		return BuildSudokuContext(ctx, SudokuOptions{Out: out, Box: 2, Train: ps[:8], Test: ps[8:], NumAug: 2, Seed: 1})
	})
}

func TestBuildMazeCancelAtEveryCheck(t *testing.T) {
	ms, err := GenerateMazes(context.Background(), data.NewRNG(4, 0), 10, 9, 0.1, 4, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancelAtEveryCheck(t, func(ctx context.Context, out string) error {
		return BuildMazeContext(ctx, MazeOptions{Out: out, Train: ms[:7], Test: ms[7:], Aug: true, Seed: 1})
	})
}

func TestBuildARCCancelAtEveryCheck(t *testing.T) {
	tasks := writeTinyARC(t)
	cancelAtEveryCheck(t, func(ctx context.Context, out string) error {
		_, err := BuildARCContext(ctx, ARCOptions{Out: out, Prefix: tasks, Subsets: []string{"training", "evaluation"},
			TestSets: []string{"evaluation"}, NumAug: 3, Seed: 1})
		return err
	})
}

// TestReadCSVCancel: the CSV readers stop at the row where they are
// cancelled and name the file and line.
func TestReadCSVCancel(t *testing.T) {
	dir := t.TempDir()
	ps, err := GenerateSudokus(context.Background(), data.NewRNG(5, 0), 3, 0, 20, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(dir, "sudoku.csv")
	writeSudokuCSV(t, sp, ps)
	if _, err := ReadSudokuCSVContext(ctxtest.NewCountdown(7), sp, 3, 0); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), sp+" at line 9") {
		t.Errorf("sudoku CSV cancelled at its 8th row: %v", err)
	}
	ms, err := GenerateMazes(context.Background(), data.NewRNG(6, 0), 5, 9, 0, 4, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(dir, "maze.csv")
	var sb strings.Builder
	sb.WriteString("source,question,answer,rating\n")
	for _, m := range ms {
		sb.WriteString("gen," + m.Question + "," + m.Answer + ",0\n")
	}
	if err := os.WriteFile(mp, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMazeCSVContext(ctxtest.NewCountdown(2), mp); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), mp+" at line 4") {
		t.Errorf("maze CSV cancelled at its 3rd row: %v", err)
	}
	if got, err := ReadMazeCSVContext(context.Background(), mp); err != nil || len(got) != 5 {
		t.Errorf("uncancelled maze CSV: %d mazes, %v", len(got), err)
	}
}

// writeTinyARC writes a training subset of three tasks and an evaluation
// subset of two (with solutions) and returns their prefix.
func writeTinyARC(t *testing.T) string {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), "tiny")
	task := func(a, b int) string {
		g := func(x, y int) string {
			return "[[" + string(rune('0'+x)) + "," + string(rune('0'+y)) + "],[" + string(rune('0'+y)) + ",0]]"
		}
		return `{"train": [{"input": ` + g(a, b) + `, "output": ` + g(b, a) + `}, {"input": ` + g(b, 3) + `, "output": ` + g(3, b) + `}], "test": [{"input": ` + g(a, 5) + `}]}`
	}
	sol := func(a int) string { return "[[[5," + string(rune('0'+a)) + "],[" + string(rune('0'+a)) + ",0]]]" }
	files := map[string]string{
		"_training_challenges.json":   `{"t1": ` + task(1, 2) + `, "t2": ` + task(4, 6) + `, "t3": ` + task(7, 8) + `}`,
		"_training_solutions.json":    `{"t1": ` + sol(1) + `, "t2": ` + sol(4) + `, "t3": ` + sol(7) + `}`,
		"_evaluation_challenges.json": `{"e1": ` + task(2, 9) + `, "e2": ` + task(6, 1) + `}`,
		"_evaluation_solutions.json":  `{"e1": ` + sol(2) + `, "e2": ` + sol(6) + `}`,
	}
	for name, body := range files {
		if err := os.WriteFile(prefix+name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return prefix
}

// TestForceReplaceLeavesNothing: replacing a dataset moves the old one
// aside and deletes it only after the new one is in place; nothing of
// either is left beside the output.
func TestForceReplaceLeavesNothing(t *testing.T) {
	ps, err := GenerateSudokus(context.Background(), data.NewRNG(7, 0), 2, 0, 6, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "ds")
	for i, train := range [][]SudokuPuzzle{ps[:2], ps[:5]} {
		if err := BuildSudoku(SudokuOptions{Out: out, Force: i > 0, Box: 2, Train: train, Test: ps[5:], Seed: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if l := leftovers(t, out); len(l) > 0 {
		t.Errorf("replacing left %v", l)
	}
	ds, err := data.Open("train", out)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if n := ds.Sets[0].NumExamples(); n != 5 {
		t.Errorf("replaced dataset has %d training examples, want the new 5", n)
	}
}

// TestBuildSudokuCancelWhileAugmenting interrupts a build of 20 000
// puzzles with 100 augmentations each (2 M examples: seconds of work)
// 200 ms in.
func TestBuildSudokuCancelWhileAugmenting(t *testing.T) {
	ps, err := GenerateSudokus(context.Background(), data.NewRNG(8, 0), 3, 0, 20, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	train := make([]SudokuPuzzle, 20000)
	for i := range train {
		train[i] = ps[i%len(ps)]
	}
	out := filepath.Join(t.TempDir(), "sudoku-aug")
	err, lat := cancelDuring(t, after(200*time.Millisecond), func(ctx context.Context) error {
		return BuildSudokuContext(ctx, SudokuOptions{Out: out, Box: 3, Train: train, Test: ps[:2], NumAug: 100, Seed: 1})
	})
	checkCancelled(t, "sudoku build", err, lat)
	checkNothingWritten(t, out)
}

// TestBuildMazeCancelWhileAugmenting interrupts a build of 100 000 30x30
// mazes with their 7 dihedral versions (800 000 examples) 200 ms in.
func TestBuildMazeCancelWhileAugmenting(t *testing.T) {
	ms, err := GenerateMazes(context.Background(), data.NewRNG(9, 0), 10, 30, 0.1, 0, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	train := make([]Maze, 100000)
	for i := range train {
		train[i] = ms[i%len(ms)]
	}
	out := filepath.Join(t.TempDir(), "maze-aug")
	err, lat := cancelDuring(t, after(200*time.Millisecond), func(ctx context.Context) error {
		return BuildMazeContext(ctx, MazeOptions{Out: out, Train: train, Test: ms[:2], Aug: true, Seed: 1})
	})
	checkCancelled(t, "maze build", err, lat)
	checkNothingWritten(t, out)
}
