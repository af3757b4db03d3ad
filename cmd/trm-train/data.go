package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/arc"
	"github.com/tinyrecursive/trm/trainer/data/build"
)

func init() { register(newDataCmd) }

func newDataCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "data SUBCOMMAND [flags]",
		Short: "build (sudoku, maze, arc) or check a dataset",
		Long: `Builds datasets in the reference layout (identifiers.json, {train,test}/dataset.json
and the .npy arrays), bit-compatible with the reference's Python builders,
checks one, or shows one of its examples decoded. Builds are seeded and
reproducible and are written to a temporary directory renamed into place at
the end; --dry-run checks the arguments and inputs and prints what would be
built. SIGINT or SIGTERM stops a build or a check within seconds: the
temporary directory is removed, an existing output is left as it was, and
the command exits 1 saying what was interrupted.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("missing subcommand (sudoku, maze, arc, check or show)")
			}
			return usageErrorf("unknown subcommand %q", args[0])
		},
	}
	c.AddCommand(newDataSudokuCmd(), newDataMazeCmd(), newDataARCCmd(), newDataCheckCmd(), newDataShowCmd())
	return c
}

// dataCmd makes a data subcommand with its synopsis and description.
func dataCmd(name, synopsis, short, about string) *cobra.Command {
	return &cobra.Command{Use: name + " " + synopsis, Short: short, Long: about, Args: cobra.ArbitraryArgs}
}

// signalContext is the command's context, cancelled on SIGINT or SIGTERM,
// so that a long build or check stops cleanly (the builders remove their
// temporary directory when their context ends). stop releases the signals.
func signalContext(c *cobra.Command) (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
}

// checkOut is a dry run's check of an output directory: the build would
// refuse an existing one without --force.
func checkOut(out string, force bool) error {
	if _, err := os.Stat(out); err == nil && !force {
		return fmt.Errorf("%s already exists (use --force to replace it)", out)
	}
	return nil
}

// keepCount describes how many of n training items a subsample keeps.
func keepCount(subsample, n int) string {
	if subsample > 0 && subsample < n {
		return fmt.Sprint(subsample)
	}
	return fmt.Sprintf("all %d", n)
}

// progressTo returns stderr unless quiet.
func progressTo(quiet bool, stderr io.Writer) io.Writer {
	if quiet {
		return nil
	}
	return stderr
}

// csvPaths resolves the train and test CSV files from --csv-dir or the
// explicit flags.
func csvPaths(dir, train, test string) (string, string) {
	if dir != "" {
		if train == "" {
			train = filepath.Join(dir, "train.csv")
		}
		if test == "" {
			test = filepath.Join(dir, "test.csv")
		}
	}
	return train, test
}

func newDataSudokuCmd() *cobra.Command {
	c := dataCmd("sudoku", "--out DIR (--csv-dir DIR | --generate N) [flags]", "build a Sudoku dataset from CSV files or the generator",
		"Builds a Sudoku dataset in the reference layout (vocab n+2, seq n*n, one example per\n"+
			"puzzle, a group = an original then its augmentations), from CSV files\n"+
			"(source,question,answer,rating with a header; '.' blank) or from the built-in\n"+
			"generator of uniquely solvable puzzles rated by the guesses a backtracking solver needs.")
	fs := c.Flags()
	out := fs.String("out", "", "output dataset directory (required; written atomically)")
	csvDir := fs.String("csv-dir", "", "directory holding train.csv and test.csv")
	trainCSV := fs.String("train-csv", "", "training CSV (overrides --csv-dir's train.csv)")
	testCSV := fs.String("test-csv", "", "test CSV (overrides --csv-dir's test.csv)")
	generate := fs.Int("generate", 0, "generate this many training puzzles instead of reading CSV files")
	generateTest := fs.Int("generate-test", 0, "with --generate: this many generated test puzzles")
	minGuesses := fs.Int("min-guesses", 0, "with --generate: keep only puzzles whose rating (guesses of a fewest-candidates-first backtracking solver) is at least this; minimal 4x4 puzzles never need a guess")
	size := fs.Int("size", 9, "grid side: 9, or 4 for the small variant (CSV or generated)")
	subsample := fs.Int("subsample", 0, "keep this many training puzzles, drawn at random (0: all)")
	minRating := fs.Int("min-rating", 0, "drop CSV puzzles (both splits) rated below this")
	numAug := fs.Int("num-aug", 0, "augmentations per training puzzle (digit permutation, transpose, band/row and stack/column permutations)")
	seed := fs.Uint64("seed", 0, "seed of every random choice (subsample, augmentations, generator)")
	force := fs.Bool("force", false, "replace --out if it exists")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	dryRun := fs.Bool("dry-run", false, "check the arguments and inputs and print what would be built, without building")
	c.RunE = func(c *cobra.Command, args []string) error {
		stdout, stderr := c.OutOrStdout(), c.ErrOrStderr()
		ctx, stop := signalContext(c)
		defer stop()
		if len(args) > 0 {
			return usageErrorf("unexpected argument %q", args[0])
		}
		if *out == "" {
			return usageErrorf("--out is required")
		}
		box := 3
		switch *size {
		case 9:
		case 4:
			box = 2
		default:
			return usageErrorf("--size %d: want 9 or 4", *size)
		}
		opts := build.SudokuOptions{Out: *out, Force: *force, Box: box, Subsample: *subsample, NumAug: *numAug,
			Seed: *seed, Log: progressTo(*quiet, stderr)}
		trainPath, testPath := csvPaths(*csvDir, *trainCSV, *testCSV)
		switch {
		case *generate > 0 && trainPath != "":
			return usageErrorf("give either CSV files or --generate, not both")
		case *generate > 0 && *dryRun:
			if err := checkOut(*out, *force); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "dry run: would generate %d training and %d test %dx%d Sudoku puzzles (at least %d guesses each; seed %d), keep %s of the training ones with %d augmentations each, and write %s\n",
				*generate, *generateTest, box*box, box*box, *minGuesses, *seed, keepCount(*subsample, *generate), *numAug, *out)
			return nil
		case *generate > 0:
			r := data.NewRNG(*seed, 100)
			start := time.Now()
			var err error
			if opts.Train, err = build.GenerateSudokus(ctx, r, box, *minGuesses, *generate, "sudoku generate train", opts.Log); err != nil {
				return err
			}
			if opts.Test, err = build.GenerateSudokus(ctx, r, box, *minGuesses, *generateTest, "sudoku generate test", opts.Log); err != nil {
				return err
			}
			if opts.Log != nil {
				fmt.Fprintf(opts.Log, "generated %d puzzles in %.1fs\n", *generate+*generateTest, time.Since(start).Seconds())
			}
		case trainPath != "" && testPath != "":
			var err error
			if opts.Train, err = build.ReadSudokuCSVContext(ctx, trainPath, box, *minRating); err != nil {
				return err
			}
			if opts.Test, err = build.ReadSudokuCSVContext(ctx, testPath, box, *minRating); err != nil {
				return err
			}
		default:
			return usageErrorf("give --csv-dir (or --train-csv and --test-csv), or --generate N")
		}
		if *dryRun {
			if err := checkOut(*out, *force); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "dry run: read %d training puzzles from %s and %d test puzzles from %s (rated %d or more); would keep %s training puzzles with %d augmentations each and write %s\n",
				len(opts.Train), trainPath, len(opts.Test), testPath, *minRating, keepCount(*subsample, len(opts.Train)), *numAug, *out)
			return nil
		}
		if err := build.BuildSudokuContext(ctx, opts); err != nil {
			return err
		}
		kept := len(opts.Train)
		if *subsample > 0 {
			kept = min(kept, *subsample)
		}
		fmt.Fprintf(stdout, "wrote %s: %d training puzzles x %d versions, %d test puzzles\n", *out, kept, 1+*numAug, len(opts.Test))
		return nil
	}
	return c
}

func newDataMazeCmd() *cobra.Command {
	c := dataCmd("maze", "--out DIR (--csv-dir DIR | --generate N) [flags]", "build a maze dataset from CSV files or the generator",
		"Builds a maze dataset in the reference layout (characters '# SGo' as tokens 1..5,\n"+
			"vocab 6, seq N*N), from CSV files (source,question,answer,rating with a header) or\n"+
			"from the built-in generator: a carved maze with optional loops, start S and goal G\n"+
			"joined by a unique shortest path marked 'o' in the answer.")
	fs := c.Flags()
	out := fs.String("out", "", "output dataset directory (required; written atomically)")
	csvDir := fs.String("csv-dir", "", "directory holding train.csv and test.csv")
	trainCSV := fs.String("train-csv", "", "training CSV (overrides --csv-dir's train.csv)")
	testCSV := fs.String("test-csv", "", "test CSV (overrides --csv-dir's test.csv)")
	generate := fs.Int("generate", 0, "generate this many training mazes instead of reading CSV files")
	generateTest := fs.Int("generate-test", 0, "with --generate: this many generated test mazes")
	size := fs.Int("size", 30, "with --generate: maze side N (N x N cells)")
	minPath := fs.Int("min-path", 0, "with --generate: minimum shortest-path length in steps (hard mazes: e.g. 110)")
	loops := fs.Float64("loops", 0.1, "with --generate: fraction of inner walls knocked down to make loops")
	subsample := fs.Int("subsample", 0, "keep this many training mazes, drawn at random (0: all)")
	aug := fs.Bool("aug", false, "add the 7 other dihedral transforms of each training maze to its group")
	seed := fs.Uint64("seed", 0, "seed of every random choice (subsample, generator)")
	force := fs.Bool("force", false, "replace --out if it exists")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	dryRun := fs.Bool("dry-run", false, "check the arguments and inputs and print what would be built, without building")
	c.RunE = func(c *cobra.Command, args []string) error {
		stdout, stderr := c.OutOrStdout(), c.ErrOrStderr()
		if len(args) > 0 {
			return usageErrorf("unexpected argument %q", args[0])
		}
		if *out == "" {
			return usageErrorf("--out is required")
		}
		ctx, stop := signalContext(c)
		defer stop()
		opts := build.MazeOptions{Out: *out, Force: *force, Subsample: *subsample, Aug: *aug, Seed: *seed, Log: progressTo(*quiet, stderr)}
		trainPath, testPath := csvPaths(*csvDir, *trainCSV, *testCSV)
		switch {
		case *generate > 0 && trainPath != "":
			return usageErrorf("give either CSV files or --generate, not both")
		case *generate > 0:
			if *loops < 0 || *loops > 1 {
				return usageErrorf("--loops %v: want a fraction in [0, 1]", *loops)
			}
			if *dryRun {
				if err := checkOut(*out, *force); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "dry run: would generate %d training and %d test %dx%d mazes (shortest path at least %d, loops %g; seed %d), keep %s training mazes (dihedral augmentations: %v), and write %s\n",
					*generate, *generateTest, *size, *size, *minPath, *loops, *seed, keepCount(*subsample, *generate), *aug, *out)
				return nil
			}
			r := data.NewRNG(*seed, 200)
			var err error
			if opts.Train, err = build.GenerateMazes(ctx, r, *generate, *size, *loops, *minPath, "maze generate train", opts.Log); err != nil {
				return err
			}
			if opts.Test, err = build.GenerateMazes(ctx, r, *generateTest, *size, *loops, *minPath, "maze generate test", opts.Log); err != nil {
				return err
			}
		case trainPath != "" && testPath != "":
			var err error
			if opts.Train, err = build.ReadMazeCSVContext(ctx, trainPath); err != nil {
				return err
			}
			if opts.Test, err = build.ReadMazeCSVContext(ctx, testPath); err != nil {
				return err
			}
		default:
			return usageErrorf("give --csv-dir (or --train-csv and --test-csv), or --generate N")
		}
		if *dryRun {
			if err := checkOut(*out, *force); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "dry run: read %d training mazes from %s and %d test mazes from %s; would keep %s training mazes (dihedral augmentations: %v) and write %s\n",
				len(opts.Train), trainPath, len(opts.Test), testPath, keepCount(*subsample, len(opts.Train)), *aug, *out)
			return nil
		}
		if err := build.BuildMazeContext(ctx, opts); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: %d training mazes, %d test mazes\n", *out, len(opts.Train), len(opts.Test))
		return nil
	}
	return c
}

func newDataARCCmd() *cobra.Command {
	c := dataCmd("arc", "--prefix PATH --out DIR [flags]", "build an ARC dataset from challenge/solution JSON files",
		"Builds an ARC dataset in the reference layout (30x30 canvas, vocab 12, seq 900) from\n"+
			"<prefix>_<subset>_challenges.json and _solutions.json files: subsets are shuffled,\n"+
			"test-set puzzles send their test pairs to the test split, every puzzle gets dihedral +\n"+
			"colour augmentations (duplicates rejected), training examples are translated, and\n"+
			"identifiers.json and test_puzzles.json are written.\n"+
			"ARC-AGI-1: --subsets training,evaluation,concept --test-set evaluation.\n"+
			"ARC-AGI-2: --subsets training2,evaluation2,concept --test-set evaluation2.")
	fs := c.Flags()
	out := fs.String("out", "", "output dataset directory (required; written atomically)")
	prefix := fs.String("prefix", "", "task file prefix, e.g. data/arc-agi/arc-agi (required)")
	subsets := fs.String("subsets", "training,evaluation,concept", "comma-separated subsets, in order")
	testSets := fs.String("test-set", "evaluation", "comma-separated subsets whose test pairs form the test split")
	numAug := fs.Int("num-aug", 1000, "augmentations wanted per puzzle (at most 5x as many candidates are drawn)")
	seed := fs.Uint64("seed", 42, "seed of every random choice (shuffle, augmentations, translations)")
	force := fs.Bool("force", false, "replace --out if it exists")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	dryRun := fs.Bool("dry-run", false, "check the arguments and inputs and print what would be built, without building")
	c.RunE = func(c *cobra.Command, args []string) error {
		stdout, stderr := c.OutOrStdout(), c.ErrOrStderr()
		if len(args) > 0 {
			return usageErrorf("unexpected argument %q", args[0])
		}
		if *out == "" || *prefix == "" {
			return usageErrorf("--out and --prefix are required")
		}
		if *numAug < 0 {
			return usageErrorf("--num-aug %d is negative", *numAug)
		}
		if *dryRun {
			if err := checkOut(*out, *force); err != nil {
				return err
			}
			isTest := map[string]bool{}
			for _, t := range splitList(*testSets) {
				isTest[t] = true
			}
			for _, sub := range splitList(*subsets) {
				tasks, err := arc.LoadSubset(*prefix, sub)
				if err != nil {
					return err
				}
				role := "training examples only"
				if isTest[sub] {
					role = "test pairs to the test split"
				}
				fmt.Fprintf(stdout, "dry run: subset %s: %d tasks (%s)\n", sub, len(tasks), role)
			}
			fmt.Fprintf(stdout, "dry run: would write %s with up to %d augmentations per puzzle (seed %d)\n", *out, *numAug, *seed)
			return nil
		}
		ctx, stop := signalContext(c)
		defer stop()
		start := time.Now()
		st, err := build.BuildARCContext(ctx, build.ARCOptions{Out: *out, Force: *force, Prefix: *prefix, Subsets: splitList(*subsets),
			TestSets: splitList(*testSets), NumAug: *numAug, Seed: *seed, Log: progressTo(*quiet, stderr)})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s in %.1fs: %d puzzles (%d in the test set), %d identifiers, %d train and %d test examples\n",
			*out, time.Since(start).Seconds(), st.Puzzles, st.TestPuzzles, st.Identifiers, st.TrainExamples, st.TestExamples)
		return nil
	}
	return c
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func newDataCheckCmd() *cobra.Command {
	c := dataCmd("check", "DIR...", "read every token of datasets and report their contents",
		"Opens each dataset directory's train and test splits, validates every file and reads\n"+
			"every token (vocabulary, shapes, indices, identifiers), then prints one line per set,\n"+
			"with the largest token beside vocab_size (a vocab_size far above max token + 1\n"+
			"wastes embedding rows).")
	c.Example = `  trm-train data check data/sudoku4`
	c.RunE = func(c *cobra.Command, args []string) error {
		stdout := c.OutOrStdout()
		if len(args) == 0 {
			return usageErrorf("no dataset directory given")
		}
		ctx, stop := signalContext(c)
		defer stop()
		for _, dir := range args {
			rep, err := data.CheckContext(ctx, dir)
			if err != nil {
				return err
			}
			vocab := map[string]int{}
			for _, split := range []string{"train", "test"} {
				if m, err := data.ReadMetadata(filepath.Join(dir, split)); err == nil {
					vocab[split] = m.VocabSize
				}
			}
			for _, r := range rep {
				fmt.Fprintf(stdout, "%s %s/%s: %d examples, %d puzzles, %d groups, %d identifiers used, inputs %s labels %s, %d supervised label tokens, max token %d (vocab_size %d)\n",
					dir, r.Split, r.Name, r.Examples, r.Puzzles, r.Groups, r.DistinctIdentifiers, r.InputsDType, r.LabelsDType, r.Supervised, r.MaxToken, vocab[r.Split])
			}
			fmt.Fprintf(stdout, "%s: ok\n", dir)
		}
		return nil
	}
	return c
}
