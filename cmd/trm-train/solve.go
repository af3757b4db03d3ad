package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer/data"
)

func init() { register(newSolveCmd) }

// defaultARCVersions caps the augmented versions of an ARC task that solve
// runs: a dataset built with 1000 augmentations holds about 1000 per task,
// minutes of CPU time for one task, while the vote already settles on a
// few.
const defaultARCVersions = 8

// solveFlags are the flags of solve.
type solveFlags struct {
	ckpt, model, modelConfig, dataDir string
	label, task, submission           string
	pid, testIndex, versions          int
	seed                              uint64
}

func newSolveCmd() *cobra.Command {
	var f solveFlags
	c := &cobra.Command{
		Use:   "solve (--checkpoint DIR | --model FILE --model-config PRESET|FILE) [PUZZLE... | FILE | -] [--label ANSWER] | --task FILE [--test-index K]",
		Short: "solve one puzzle, showing the answer after each supervision step",
		Long: `Runs every supervision step on one puzzle on the CPU, echoes the puzzle, prints
the answer after each step with the halting head's confidence sigmoid(q_halt)
and the step where it would halt (q_halt > 0), and judges the last step's
answer (the one evaluation scores): whether it is valid (Sudoku rules and
givens; a maze path from S to G that changes nothing else) and, with --label,
whether it matches the label.

The puzzle is read from the arguments (several are joined as lines), from a
file named by the only argument, or from stdin ('-' or none). The model's
sequence length and vocabulary choose how it is read:
  Sudoku (4x4, 9x9)  its cells in row order, one line or a grid: digits, and
                     '.', '0' or '_' for blanks ('|', '-', '+' and spaces are
                     ignored)
  maze (N x N)       N lines of '#' (wall), ' ' (open), 'S' (start), 'G' (goal)
  ARC                --task FILE: a task JSON ({"train": [...], "test": [...]},
                     or a challenges file holding one task); every test input,
                     or only --test-index K's, is put to the model in up to
                     --versions augmented versions (the task's versions in the
                     model's dataset, or drawn ones when the dataset lacks the
                     task) and the predictions vote on two attempts, as in
                     evaluation; the task's test outputs, when given, are the
                     labels
  anything else      space- or comma-separated tokens
--label takes the expected answer in the same form as the puzzle.` + envHelp("TRM_CPU_GEMM", "TRM_CPU_ACTIVATIONS"),
		Example: `  trm-train solve --checkpoint runs/sudoku4 1.3..2.......1.2
  trm-train solve --checkpoint runs/sudoku4 1.3..2.......1.2 --label 1234341223414123`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runSolve(c.OutOrStdout(), c.ErrOrStderr(), c.InOrStdin(), &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.ckpt, "checkpoint", "", "checkpoint directory (its best/ or newest step_* is used when given a root)")
	fl.StringVar(&f.model, "model", "", "model weights (with --model-config)")
	fl.StringVar(&f.modelConfig, "model-config", "", "architecture of --model: a preset, a model config JSON or a reference YAML (config/arch/NAME.yaml, all_config.yaml)")
	fl.StringVar(&f.dataDir, "data", "", "the model's dataset (its metadata and, for ARC, puzzle identifiers; default: the checkpoint's data_paths_test)")
	fl.IntVar(&f.pid, "puzzle-id", 0, "puzzle identifier (row of the puzzle embedding; 0 for Sudoku and mazes)")
	fl.StringVar(&f.label, "label", "", "the expected answer, in the puzzle's form: the verdict says whether the answer matches it")
	fl.StringVar(&f.task, "task", "", "ARC task JSON file")
	fl.IntVar(&f.testIndex, "test-index", -1, "with --task: solve only this test input (from 0; default: all)")
	fl.IntVar(&f.versions, "versions", defaultARCVersions, "with --task: the most augmented versions to run per test input (0: all the dataset holds, or 8 drawn ones)")
	fl.Uint64Var(&f.seed, "seed", 0, "with --task: seed of the drawn versions when the dataset lacks the task")
	fl.StringVar(&f.submission, "submission", "", "with --task: write the two attempts to this file (the Kaggle submission.json form)")
	return c
}

// puzzleText reads the puzzle from the arguments, a file named by the
// only argument, or stdin.
func puzzleText(stdin io.Reader, args []string) (string, error) {
	switch {
	case len(args) == 0 || (len(args) == 1 && args[0] == "-"):
		b, err := io.ReadAll(stdin)
		if err != nil {
			return "", fmt.Errorf("reading the puzzle from stdin: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case len(args) == 1:
		if st, err := os.Stat(args[0]); err == nil && st.Mode().IsRegular() {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return "", err
			}
			return strings.TrimRight(string(b), "\r\n"), nil
		}
	}
	return strings.Join(args, "\n"), nil
}

func runSolve(stdout, stderr io.Writer, stdin io.Reader, f *solveFlags, args []string) error {
	if f.task != "" && len(args) > 0 {
		return usageErrorf("give a puzzle or --task FILE, not both")
	}
	if f.task == "" && (f.testIndex >= 0 || f.submission != "") {
		return usageErrorf("--test-index and --submission go with --task FILE")
	}
	if f.versions < 0 {
		return usageErrorf("--versions %d is negative", f.versions)
	}
	var dirs []string
	if f.dataDir != "" {
		dirs = []string{f.dataDir}
	}
	m, cfg, err := loadModel(f.ckpt, f.model, f.modelConfig, dirs, nil, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.task != "" {
		return solveARC(ctx, stdout, m, cfg.DataPathsTest, f)
	}
	text, err := puzzleText(stdin, args)
	if err != nil {
		return err
	}
	cd := m.Codec()
	if sc, ok := cd.(puzzle.SudokuCodec); ok {
		if n := sudokuCells(text); n != sc.SeqLen() {
			return usageErrorf("a %s has %d cells, got %d", sc.Name(), sc.SeqLen(), n)
		}
	}
	tokens, err := cd.Encode(text)
	if err != nil {
		return usageErrorf("the model reads %s puzzles: %v", cd.Name(), err)
	}
	var label []int32
	if f.label != "" {
		if label, err = cd.Encode(f.label); err != nil {
			return usageErrorf("--label: %v", err)
		}
	}
	fmt.Fprintln(stdout, puzzle.Describe(cd, tokens))
	what := cd.Name()
	if _, ok := cd.(puzzle.TokensCodec); ok {
		what = "token sequence"
	}
	fmt.Fprintf(stdout, "%s, %d supervision steps\n", what, m.HaltMaxSteps())
	if f.pid < 0 || (f.pid > 0 && f.pid >= m.NumPuzzleIdentifiers()) {
		return usageErrorf("--puzzle-id %d: the model has puzzle identifiers [0, %d)", f.pid, max(m.NumPuzzleIdentifiers(), 1))
	}
	sols, err := m.Solve(ctx, []trm.Puzzle{{Tokens: tokens, ID: int32(f.pid)}}, trm.Request{FullSteps: true, Trace: true})
	if err != nil {
		return err
	}
	sol := sols[0]
	for k, preds := range sol.Trace {
		step := k + 1
		mark := ""
		if step == sol.HaltStep {
			mark = "  <- halts here (q_halt > 0)"
		}
		unchanged := k > 0 && slices.Equal(sol.Trace[k-1], preds)
		note := ""
		if unchanged {
			note = " (unchanged)"
		}
		fmt.Fprintf(stdout, "\nstep %d: confidence %.3f%s%s\n", step, sol.HaltProb[k], note, mark)
		if !unchanged {
			fmt.Fprintln(stdout, indent2(cd.Render(preds)))
		}
	}
	if sol.HaltStep == 0 {
		fmt.Fprintf(stdout, "\nthe halting head never fired (q_halt > 0 at no step)\n")
	}
	fmt.Fprintf(stdout, "\nanswer after step %d: %s\n", sol.Steps, cd.Check(tokens, sol.Answer, label))
	return nil
}

// solveARC puts every selected test input of an ARC task to the model in
// its augmented versions and votes on two attempts per test input.
func solveARC(ctx context.Context, stdout io.Writer, m *trm.Model, dataDirs []string, f *solveFlags) error {
	if m.SeqLen() != puzzle.ARCSide*puzzle.ARCSide {
		return usageErrorf("--task: the model reads %s puzzles (%d tokens), not ARC's %dx%d canvas", m.Codec().Name(), m.SeqLen(), puzzle.ARCSide, puzzle.ARCSide)
	}
	task, err := puzzle.ReadARCTask(f.task, "")
	if err != nil {
		return err
	}
	if f.testIndex >= 0 {
		if task, err = puzzle.SelectTest(task, f.testIndex); err != nil {
			return usageErrorf("--test-index: %v", err)
		}
	}
	fmt.Fprintln(stdout, puzzle.DescribeARCTask(task))
	var versions []puzzle.ARCVersion
	how := ""
	if len(dataDirs) > 0 {
		ds, err := data.Open("test", dataDirs...)
		if err != nil {
			return err
		}
		versions, err = puzzle.ARCVersions(ds.Identifiers, task.Name)
		ds.Close()
		if err == nil {
			how = "from the dataset's puzzle identifiers"
		}
	}
	if versions == nil {
		n := f.versions
		if n == 0 {
			n = defaultARCVersions
		}
		versions = puzzle.DrawARCVersions(f.seed, n-1)
		how = fmt.Sprintf("drawn with seed %d, blank puzzle identifier (the model's dataset lacks the task)", f.seed)
	}
	total := len(versions)
	if f.versions > 0 && len(versions) > f.versions {
		versions = versions[:f.versions]
	}
	queries := puzzle.ARCQueries(task, versions)
	fmt.Fprintf(stdout, "\n%d of %d versions (%s), %d queries, %d supervision steps\n", len(versions), total, how, len(queries), m.HaltMaxSteps())
	ps := make([]trm.Puzzle, len(queries))
	for i, q := range queries {
		ps[i] = trm.Puzzle{Tokens: q.Input, ID: q.Version.Identifier}
	}
	sols, err := m.Solve(ctx, ps, trm.Request{FullSteps: true})
	if err != nil {
		return err
	}
	for k := range m.HaltMaxSteps() {
		positive := 0
		for _, s := range sols {
			if s.QHalt[k] > 0 {
				positive++
			}
		}
		fmt.Fprintf(stdout, "step %d: q_halt > 0 on %d of %d queries\n", k+1, positive, len(queries))
	}
	// The vote weighs each version by its last step's q_halt, as
	// evaluation does.
	vote := puzzle.NewARCVote(task, versions)
	for i, q := range queries {
		if err := vote.Add(q, sols[i].Answer, float64(sols[i].QHalt[len(sols[i].QHalt)-1])); err != nil {
			return err
		}
	}
	res := vote.Result()
	fmt.Fprintf(stdout, "\n%s\n", puzzle.DescribeARCResult(res))
	if f.submission != "" {
		if err := os.WriteFile(f.submission, res.Submission.MarshalPy(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.submission)
	}
	return nil
}

// sudokuCells counts the cells of a Sudoku as typed: every character but
// the separators puzzle.ParseSudoku skips (spaces, line breaks, '|', '-',
// '+'), so a puzzle of the wrong size is reported by its size.
func sudokuCells(text string) int {
	n := 0
	for _, c := range text {
		if !strings.ContainsRune(" \t\n\r|-+", c) {
			n++
		}
	}
	return n
}

// indent2 indents every line of s by two spaces.
func indent2(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }
