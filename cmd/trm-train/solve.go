package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/engine"
)

func init() { register(newSolveCmd) }

// codec turns a puzzle's text into tokens and tokens back into text.
type codec struct {
	name   string
	encode func(string) ([]int32, error)
	decode func([]int32) string
	width  int // characters per printed row (0: one line)
}

// codecFor picks the encoding from the model's sequence length and
// vocabulary: Sudoku (n*n cells, vocab n+2: digit+1, blank 1), Maze (30x30,
// vocab 6: '#', ' ', 'S', 'G', 'o' -> 1..5), or raw tokens.
func codecFor(seqLen, vocab int) codec {
	n := int(math.Round(math.Sqrt(float64(seqLen))))
	if n*n == seqLen && vocab == n+2 && (n == 4 || n == 9) {
		return codec{name: fmt.Sprintf("%dx%d Sudoku", n, n), width: n,
			encode: func(s string) ([]int32, error) {
				s = strings.Join(strings.Fields(s), "")
				if len(s) != seqLen {
					return nil, fmt.Errorf("a %dx%d Sudoku has %d cells, got %d characters", n, n, seqLen, len(s))
				}
				out := make([]int32, seqLen)
				for i, c := range s {
					switch {
					case c == '.' || c == '0' || c == '_':
						out[i] = 1
					case c >= '1' && int(c-'0') <= n:
						out[i] = int32(c-'0') + 1
					default:
						return nil, fmt.Errorf("cell %d: %q is not a digit 1..%d or a blank ('.', '0', '_')", i, c, n)
					}
				}
				return out, nil
			},
			decode: func(t []int32) string {
				var b strings.Builder
				for _, x := range t {
					if x >= 2 {
						b.WriteByte(byte('0' + x - 1))
					} else {
						b.WriteByte('.')
					}
				}
				return b.String()
			}}
	}
	const maze = "?# SGo" // token 1..5 -> '#', ' ', 'S', 'G', 'o'; index 0 unused
	if seqLen == 900 && vocab == 6 {
		return codec{name: "30x30 maze", width: 30,
			encode: func(s string) ([]int32, error) {
				s = strings.ReplaceAll(s, "\n", "")
				if len(s) != seqLen {
					return nil, fmt.Errorf("a 30x30 maze has 900 cells, got %d characters", len(s))
				}
				out := make([]int32, seqLen)
				for i, c := range s {
					k := strings.IndexRune("_# SGo", c)
					if k < 1 {
						return nil, fmt.Errorf("cell %d: %q is not one of '#', ' ', 'S', 'G', 'o'", i, c)
					}
					out[i] = int32(k)
				}
				return out, nil
			},
			decode: func(t []int32) string {
				var b strings.Builder
				for _, x := range t {
					if x >= 1 && x <= 5 {
						b.WriteByte(maze[x])
					} else {
						b.WriteByte('?')
					}
				}
				return b.String()
			}}
	}
	return codec{name: "token sequence",
		encode: func(s string) ([]int32, error) {
			f := strings.Fields(s)
			if len(f) != seqLen {
				return nil, fmt.Errorf("want %d space-separated tokens, got %d", seqLen, len(f))
			}
			out := make([]int32, seqLen)
			for i, w := range f {
				v, err := strconv.Atoi(w)
				if err != nil || v < 0 || v >= vocab {
					return nil, fmt.Errorf("token %d: %q is not in 0..%d", i, w, vocab-1)
				}
				out[i] = int32(v)
			}
			return out, nil
		},
		decode: func(t []int32) string {
			s := make([]string, len(t))
			for i, x := range t {
				s[i] = strconv.Itoa(int(x))
			}
			return strings.Join(s, " ")
		}}
}

// solveFlags are the flags of solve.
type solveFlags struct {
	ckpt, model, modelConfig string
	pid                      int
}

func newSolveCmd() *cobra.Command {
	var f solveFlags
	c := &cobra.Command{
		Use:   "solve (--checkpoint DIR | --model FILE --model-config PRESET|FILE) [PUZZLE | -]",
		Short: "solve one puzzle, showing the answer after each supervision step",
		Long: `Runs every supervision step on one puzzle and prints the answer after each,
with the halting head's confidence sigmoid(q_halt), and the step where it would
halt (q_halt > 0). The puzzle is an argument or read from stdin ('-' or none):
Sudoku as its cells in row order (digits, '.' or '0' for blanks), a maze as
30 lines of '#', ' ', 'S', 'G', otherwise space-separated tokens.` + envHelp("TRM_CPU_GEMM"),
		Example: `  trm-train solve --checkpoint runs/sudoku4 1.3..2.......1.2`,
		Args:    cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runSolve(c.OutOrStdout(), c.ErrOrStderr(), c.InOrStdin(), &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.ckpt, "checkpoint", "", "checkpoint directory")
	fl.StringVar(&f.model, "model", "", "model weights (with --model-config)")
	fl.StringVar(&f.modelConfig, "model-config", "", "architecture of --model: a preset, a model config JSON or a reference YAML (config/arch/NAME.yaml, all_config.yaml)")
	fl.IntVar(&f.pid, "puzzle-id", 0, "puzzle identifier (row of the puzzle embedding; 0 for Sudoku and Maze)")
	return c
}

func runSolve(stdout, stderr io.Writer, stdin io.Reader, f *solveFlags, args []string) error {
	inf, err := loadInference(f.ckpt, f.model, f.modelConfig, nil, nil, stderr)
	if err != nil {
		return err
	}
	text := strings.Join(args, "")
	if text == "" || text == "-" {
		b, err := io.ReadAll(bufio.NewReader(stdin))
		if err != nil {
			return err
		}
		text = strings.TrimRight(string(b), "\n")
	}
	a := inf.cfg.Arch
	cd := codecFor(a.SeqLen, a.VocabSize)
	tokens, err := cd.encode(text)
	if err != nil {
		return usageErrorf("%s: %v", cd.name, err)
	}
	a.BatchSize = 1
	be, err := openBackend("cpu", 0)
	if err != nil {
		return err
	}
	m, err := engine.NewModel(a, be, engine.Options{})
	if err != nil {
		return err
	}
	if err := m.SetParams(inf.params); err != nil {
		return err
	}
	labels := make([]int32, a.SeqLen)
	for i := range labels {
		labels[i] = engine.IgnoreLabel
	}
	if err := m.SetBatch(tokens, labels, []int32{int32(f.pid)}); err != nil {
		return err
	}
	c := m.NewCarry()
	halted := 0
	fmt.Fprintf(stdout, "%s, %d supervision steps\n", cd.name, a.HaltMaxSteps)
	var prev string
	for k := 1; k <= a.HaltMaxSteps; k++ {
		if err := m.Step(c, engine.StepOptions{}); err != nil {
			return err
		}
		r, err := m.Result(c, false)
		if err != nil {
			return err
		}
		ans := cd.decode(r.Preds)
		conf := 1 / (1 + math.Exp(-float64(r.QHalt[0])))
		mark := ""
		if halted == 0 && r.QHalt[0] > 0 {
			halted = k
			mark = "  <- halts here (q_halt > 0)"
		}
		changed := ""
		if prev != "" && ans == prev {
			changed = " (unchanged)"
		}
		fmt.Fprintf(stdout, "\nstep %d: confidence %.3f%s%s\n", k, conf, changed, mark)
		if changed == "" {
			printGrid(stdout, ans, cd.width)
		}
		prev = ans
	}
	if halted == 0 {
		fmt.Fprintf(stdout, "\nthe halting head never fired: the answer is the last step's\n")
	}
	return nil
}

func printGrid(w io.Writer, s string, width int) {
	if width == 0 {
		fmt.Fprintln(w, s)
		return
	}
	for i := 0; i < len(s); i += width {
		fmt.Fprintln(w, "  "+s[i:min(i+width, len(s))])
	}
}
