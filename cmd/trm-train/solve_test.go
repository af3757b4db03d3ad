package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/puzzle"
)

// tinyCheckpoint trains a tiny model for two steps on the dataset dataDir
// into out, with three supervision steps, and returns out.
func tinyCheckpoint(t *testing.T, dataDir, out string, extra ...string) string {
	t.Helper()
	args := append([]string{"train", "--quiet", "--out", out, "data_paths=[" + dataDir + "]", "global_batch_size=16", "epochs=8",
		"eval_interval=8", "max_steps=2", "eval_max_batches=1", "min_eval_interval=1", "arch.hidden_size=16", "arch.num_heads=2",
		"arch.puzzle_emb_ndim=16", "arch.expansion=2", "arch.H_cycles=1", "arch.L_cycles=1", "arch.L_layers=1", "arch.halt_max_steps=3"}, extra...)
	if code, o, e := runCmd(args...); code != 0 {
		t.Fatalf("training the fixture %s: exit %d\n%s\n%s", out, code, o, e)
	}
	return out
}

// TestSolveSudokuAndMaze solves a Sudoku (argument) and a maze (file and
// stdin): the puzzle is echoed, every step shown, the answer judged, and
// a label, when given, compared.
func TestSolveSudokuAndMaze(t *testing.T) {
	dir := t.TempDir()
	sud := filepath.Join(dir, "sudoku4")
	if code, o, e := runCmd("data", "sudoku", "--out", sud, "--size", "4", "--generate", "16", "--generate-test", "4", "--quiet"); code != 0 {
		t.Fatalf("%d %s %s", code, o, e)
	}
	ck := tinyCheckpoint(t, sud, filepath.Join(dir, "run-sudoku"))
	ex, err := puzzle.ReadExample(sud, "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	q, l := ex.Codec.Decode(ex.Input), ex.Codec.Decode(ex.Label)
	code, out, errs := runCmd("solve", "--checkpoint", ck, q, "--label", l)
	if code != 0 {
		t.Fatalf("solve: exit %d\n%s", code, errs)
	}
	for _, want := range []string{"4x4 Sudoku", "----+----", "4x4 Sudoku, 3 supervision steps", "step 1: confidence", "step 3:", "answer after step 3: "} {
		if !strings.Contains(out, want) {
			t.Errorf("solve output lacks %q:\n%s", want, out)
		}
	}
	verdict := out[strings.LastIndex(out, "answer after step 3: "):]
	// A model trained for two steps does not solve Sudoku: the answer is
	// judged against the rules and found wrong against the label.
	if !strings.Contains(verdict, "label") || !strings.Contains(verdict, "not valid") {
		t.Errorf("verdict does not judge the rules and the label: %q", verdict)
	}
	// The label itself, judged by the codec, is valid; the solve verdict's
	// words must agree with the codec's for the same answer.
	if v := ex.Codec.Check(ex.Input, ex.Label, ex.Label); !v.Valid || !v.MatchesLabel {
		t.Fatalf("the dataset's label is not valid: %v", v)
	}
	// The grid form of the puzzle reads the same, over several arguments.
	// (the box separator line, which reads as a flag, left out).
	var rows []string
	for _, r := range strings.Split(ex.Codec.Render(ex.Input), "\n") {
		if !strings.HasPrefix(r, "-") {
			rows = append(rows, r)
		}
	}
	if code, out2, errs := runCmd(append([]string{"solve", "--checkpoint", ck, "--label", l}, rows...)...); code != 0 || out2 != out {
		t.Errorf("grid rows as arguments: exit %d %s\n%s\nwant\n%s", code, errs, out2, out)
	}
	for _, bad := range [][]string{
		{"1.3"},
		{q, "--label", "1.3"},
		{"--task", "x.json", q},
		{q, "--test-index", "0"},
		{q, "--puzzle-id", "99"},
	} {
		if code, _, errs := runCmd(append([]string{"solve", "--checkpoint", ck}, bad...)...); code != 2 {
			t.Errorf("solve %v: exit %d, want 2: %s", bad, code, errs)
		}
	}

	maze := filepath.Join(dir, "maze")
	if code, o, e := runCmd("data", "maze", "--out", maze, "--size", "9", "--generate", "16", "--generate-test", "2", "--quiet"); code != 0 {
		t.Fatalf("%d %s %s", code, o, e)
	}
	ck = tinyCheckpoint(t, maze, filepath.Join(dir, "run-maze"))
	ex, err = puzzle.ReadExample(maze, "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "maze.txt")
	if err := os.WriteFile(file, []byte(ex.Codec.Render(ex.Input)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCmd("solve", "--checkpoint", ck, file)
	if code != 0 || !strings.Contains(out, "9x9 maze") || !strings.Contains(out, "answer after step 3: ") || !strings.Contains(out, "S") {
		t.Fatalf("maze from a file: exit %d\n%s\n%s", code, out, errs)
	}
	var o, e strings.Builder
	root := newRoot(&o, &e)
	root.SetIn(strings.NewReader(ex.Codec.Render(ex.Input) + "\n"))
	root.SetArgs([]string{"solve", "--checkpoint", ck, "-"})
	if err := root.Execute(); err != nil || o.String() != out {
		t.Errorf("maze from stdin: %v\n%s\nwant the file's output:\n%s", err, o.String(), out)
	}
}

// TestSolveARCTask solves an ARC task from its JSON: the task is echoed,
// its versions come from the dataset's identifiers (capped by
// --versions), the predictions vote, and the attempts are judged against
// the task's test output.
func TestSolveARCTask(t *testing.T) {
	dir := t.TempDir()
	arcDir := filepath.Join(dir, "arc")
	if code, o, e := runCmd("data", "arc", "--out", arcDir, "--prefix", "../../testdata/arc-agi/arc-agi",
		"--subsets", "evaluation", "--test-set", "evaluation", "--num-aug", "1", "--quiet"); code != 0 {
		t.Fatalf("%d %s %s", code, o, e)
	}
	ck := tinyCheckpoint(t, arcDir, filepath.Join(dir, "run-arc"), "global_batch_size=4")
	tasks, err := puzzle.ReadARCTasks("../../testdata/arc-agi/arc-agi_evaluation_challenges.json")
	if err != nil {
		t.Fatal(err)
	}
	task := tasks[0]
	b, err := json.Marshal(task.Task)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, task.Name+".json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "submission.json")
	code, out, errs := runCmd("solve", "--checkpoint", ck, "--task", file, "--test-index", "0", "--versions", "1", "--submission", sub)
	if code != 0 {
		t.Fatalf("solve --task: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"ARC task " + task.Name, "demonstration 0", "1 of 2 versions (from the dataset's puzzle identifiers)", "step 3: q_halt > 0 on", "attempt 1", "wrote " + sub} {
		if !strings.Contains(out, want) {
			t.Errorf("solve --task output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "correct:") && !strings.Contains(out, "wrong:") {
		t.Errorf("the attempts are not judged against the task's test output:\n%s", out)
	}
	var s map[string]any
	if b, err := os.ReadFile(sub); err != nil || json.Unmarshal(b, &s) != nil || s[task.Name] == nil {
		t.Errorf("submission %s: %v %v", sub, err, s)
	}
	// A task the dataset lacks is put to the model in drawn versions.
	other := filepath.Join(dir, "unknown-task.json")
	os.WriteFile(other, b, 0o644)
	if code, out, errs := runCmd("solve", "--checkpoint", ck, "--task", other, "--versions", "3"); code != 0 || !strings.Contains(out, "3 of 3 versions (drawn with seed 0") {
		t.Errorf("unknown task: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs := runCmd("solve", "--checkpoint", ck, "--task", file, "--test-index", "9"); code != 2 {
		t.Errorf("--test-index past the tests: exit %d %s", code, errs)
	}
}
