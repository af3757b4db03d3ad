package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/puzzle"
)

// newDataShowCmd prints one dataset example decoded, so that a user can
// see what the model is asked and what it must answer in the puzzle's own
// form (a Sudoku grid, a maze, an ARC canvas) rather than as token arrays.
func newDataShowCmd() *cobra.Command {
	c := dataCmd("show", "DIR [--set train|test] [--index N]", "print one example of a dataset decoded",
		"Reads one example of a dataset directory and prints where it lies (split, set,\n"+
			"puzzle identifier and its name), the input decoded and echoed (a Sudoku or maze grid,\n"+
			"an ARC canvas, otherwise tokens), the label rendered, and the label judged as an\n"+
			"answer to the input by the puzzle's rules (a check of the dataset itself).\n"+
			"--index counts from 0 through the split's sets in order.")
	c.Example = "  trm-train data show data/sudoku4 --set train --index 3"
	fs := c.Flags()
	set := fs.String("set", "test", "the split to read: train or test")
	index := fs.Int("index", 0, "the example's index in the split, from 0")
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageErrorf("want one dataset directory, got %d arguments", len(args))
		}
		if *set != "train" && *set != "test" {
			return usageErrorf("--set %q: want train or test", *set)
		}
		if *index < 0 {
			return usageErrorf("--index %d is negative", *index)
		}
		ex, err := puzzle.ReadExample(args[0], *set, *index)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.OutOrStdout(), ex)
		return nil
	}
	return c
}
