package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/engine"
)

func init() { register(newParamsCmd) }

func newParamsCmd() *cobra.Command {
	var puzzles int
	c := &cobra.Command{
		Use:   "params [--puzzles N] PRESET|CONFIG",
		Short: "print a model's parameter keys, shapes and counts",
		Long: "Prints every state key of the model with its shape, what trains it, and the totals.\n" +
			"Presets: " + strings.Join(engine.PresetNames(), ", ") + ".",
		Example: `  trm-train params sudoku-mlp --puzzles 5`,
		Args:    cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runParams(c.OutOrStdout(), c.ErrOrStderr(), puzzles, args)
		},
	}
	c.Flags().IntVar(&puzzles, "puzzles", 0, "rows of the puzzle embedding table (default: the config's num_puzzle_identifiers)")
	return c
}

func runParams(stdout, stderr io.Writer, puzzles int, args []string) error {
	if len(args) != 1 {
		return usageErrorf("want exactly one preset name or config path, got %d arguments", len(args))
	}
	cfg, arch, err := resolveModelConfig(args[0], stderr)
	if err != nil {
		return err
	}
	if puzzles < 0 {
		return usageErrorf("--puzzles must not be negative")
	}
	if puzzles > 0 {
		cfg.NumPuzzleIdentifiers = puzzles
	}
	l, err := engine.NewArchLayout(cfg, arch)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "key\tshape\telements\ttrained by\t")
	kinds := map[engine.Kind]string{engine.Trained: "AdamATan2", engine.PuzzleEmb: "sign-SGD", engine.Buffer: "(buffer)"}
	for _, e := range l.Entries {
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t\n", e.Key, e.Shape, group(e.Size()), kinds[e.Kind])
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\ntrained parameters (AdamATan2): %s\n", group(l.NumTrained))
	fmt.Fprintf(stdout, "puzzle embedding (sign-SGD):    %s (%d rows x %d)\n", group(l.NumPuzzle), cfg.NumPuzzleIdentifiers*btoi(cfg.PuzzleEmbNdim > 0), cfg.PuzzleEmbNdim)
	fmt.Fprintf(stdout, "buffers (init states):          %s\n", group(l.NumBuffer))
	fmt.Fprintf(stdout, "sequence: L %d + P %d = S %d; hidden %d, heads %d x %d; inter(H) %d", cfg.SeqLen, cfg.PuzzleLen(), cfg.SeqTotal(), cfg.HiddenSize, cfg.NumHeads, cfg.HeadDim(), cfg.Inter(cfg.HiddenSize))
	if cfg.MLPT {
		fmt.Fprintf(stdout, ", inter(S) %d", cfg.Inter(cfg.SeqTotal()))
	}
	fmt.Fprintln(stdout)
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// group writes n with thousands separators: 5,028,866.
func group(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
