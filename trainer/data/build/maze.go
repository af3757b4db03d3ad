package build

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"

	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/arc"
)

// MazeCharset lists the maze characters in token order: '#' is token 1,
// ' ' 2, 'S' 3, 'G' 4, 'o' 5 (0 is PAD), as the reference's CHARSET
// (puzzle.MazeCharset).
const MazeCharset = puzzle.MazeCharset

// Maze is a square maze as text: N*N characters from MazeCharset, the
// question without and the answer with the shortest path marked 'o'.
type Maze struct {
	N                int
	Question, Answer string
}

// ReadMazeCSV reads a CSV in the reference layout (header, then
// source,question,answer,rating); every maze must be square, non-empty
// and of one size, use only MazeCharset, have exactly one S and one G,
// and its answer may differ from the question only by path cells 'o' on
// open cells. Errors name the file and line; a file without mazes is an
// error. path must be a regular file.
func ReadMazeCSV(path string) ([]Maze, error) {
	return ReadMazeCSVContext(context.Background(), path)
}

// ReadMazeCSVContext is ReadMazeCSV stopping when ctx ends (checked every
// row), with an error wrapping ctx.Err() that names the file and line.
func ReadMazeCSVContext(ctx context.Context, path string) ([]Maze, error) {
	f, _, err := safetensors.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = 4
	if _, err := cr.Read(); err == io.EOF {
		return nil, fmt.Errorf("%s: empty file (want a header line, then source,question,answer,rating rows)", path)
	} else if err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	var out []Maze
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := cr.FieldPos(0)
		if err := interrupted(ctx, "reading %s at line %d", path, line); err != nil {
			return nil, err
		}
		q, a := rec[1], rec[2]
		n := 0
		for n*n < len(q) {
			n++
		}
		if len(q) == 0 {
			return nil, fmt.Errorf("%s: line %d: empty maze", path, line)
		}
		if n*n != len(q) || len(a) != len(q) || (len(out) > 0 && n != out[0].N) {
			return nil, fmt.Errorf("%s: line %d: question/answer of %d/%d characters is not one square size", path, line, len(q), len(a))
		}
		for _, s := range []string{q, a} {
			for i := 0; i < len(s); i++ {
				if puzzle.MazeToken(s[i]) == 0 {
					return nil, fmt.Errorf("%s: line %d: character %q is not in %q", path, line, s[i], MazeCharset)
				}
			}
		}
		if err := puzzle.CheckMazeCells(n, q, a); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, line, err)
		}
		out = append(out, Maze{N: n, Question: q, Answer: a})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no mazes after the header line", path)
	}
	return out, nil
}

// mazeExample tokenises a maze after dihedral transform t (0 = as is).
func mazeExample(m Maze, t int) Example {
	tok := func(s string) []byte {
		g := make([]byte, len(s))
		for i := 0; i < len(s); i++ {
			g[i] = puzzle.MazeToken(s[i])
		}
		return arc.Dihedral(arc.Grid{H: m.N, W: m.N, Cells: g}, t).Cells
	}
	return Example{tok(m.Question), tok(m.Answer)}
}

// MazeOptions configures BuildMaze.
type MazeOptions struct {
	Out         string
	Force       bool
	Train, Test []Maze
	// Subsample keeps this many training mazes (0: all), drawn seeded.
	Subsample int
	// Aug adds the 7 non-identity dihedral transforms of every training
	// maze to its group (off by default, as in the reference).
	Aug  bool
	Seed uint64
	Log  io.Writer
}

// BuildMaze writes a maze dataset (vocab 6, seq N*N).
func BuildMaze(o MazeOptions) error {
	return BuildMazeContext(context.Background(), o)
}

// BuildMazeContext is BuildMaze stopping when ctx ends: checked per
// training maze and per group written, it returns an error wrapping
// ctx.Err() and leaves neither o.Out nor its temporary directory behind.
func BuildMazeContext(ctx context.Context, o MazeOptions) error {
	if len(o.Train) == 0 && len(o.Test) == 0 {
		return errors.New("build: no mazes")
	}
	n := 0
	for _, m := range append(append([]Maze(nil), o.Train...), o.Test...) {
		if n == 0 {
			n = m.N
		}
		if m.N != n || len(m.Question) != n*n || len(m.Answer) != n*n {
			return fmt.Errorf("build: mazes of different sizes (%d and %d)", n, m.N)
		}
	}
	if n == 0 {
		return errors.New("build: empty maze (0 cells)")
	}
	r := data.NewRNG(o.Seed, 1)
	keep := subsample(r, len(o.Train), o.Subsample)
	pr := newProgress(o.Log, "maze train", len(keep))
	train := make([][]Example, 0, len(keep))
	for i, k := range keep {
		if err := interrupted(ctx, "maze dataset %s (maze %d of %d)", o.Out, i, len(keep)); err != nil {
			return err
		}
		g := []Example{mazeExample(o.Train[k], 0)}
		if o.Aug {
			for t := 1; t < 8; t++ {
				g = append(g, mazeExample(o.Train[k], t))
			}
		}
		train = append(train, g)
		pr.update(i + 1)
	}
	pr.finish()
	test := make([][]Example, len(o.Test))
	for i, m := range o.Test {
		test[i] = []Example{mazeExample(m, 0)}
	}
	return writeSimple(ctx, o.Out, o.Force, simpleLayout{seqLen: n * n, vocab: len(MazeCharset) + 1}, train, test)
}

// GenerateMaze makes an N x N maze: a perfect maze carved by a randomised
// depth-first search on the odd cells (the border is wall), then a
// fraction `loops` of the remaining inner walls that separate two open
// cells knocked down so routes can branch and rejoin. Start and goal are
// random open cells whose shortest path has at least minPath steps and is
// unique, so the answer (the path marked 'o', S and G kept) is well
// defined. It retries until such a pair exists.
func GenerateMaze(r *data.RNG, n int, loops float64, minPath int) (Maze, error) {
	return GenerateMazeContext(context.Background(), r, n, loops, minPath)
}

// GenerateMazeContext is GenerateMaze stopping when ctx ends, checked
// before every start tried (one breadth-first search each).
func GenerateMazeContext(ctx context.Context, r *data.RNG, n int, loops float64, minPath int) (Maze, error) {
	if n < 5 {
		return Maze{}, fmt.Errorf("build: maze size %d below 5", n)
	}
	if minPath > n*n {
		return Maze{}, fmt.Errorf("build: minimum path %d cannot fit a %dx%d maze", minPath, n, n)
	}
	for attempt := 0; attempt < 1000; attempt++ {
		g := carveMaze(r, n, loops)
		var open []int
		for i, c := range g {
			if c == ' ' {
				open = append(open, i)
			}
		}
		// Try a few starts per layout: the farthest unique goal from each.
		for try := 0; try < 20; try++ {
			if err := interrupted(ctx, "generating a %dx%d maze with a path of %d steps (attempt %d)", n, n, minPath, attempt); err != nil {
				return Maze{}, err
			}
			s := open[r.IntN(len(open))]
			dist, count := puzzle.MazeDistances(n, string(g), s)
			var cands []int
			for _, i := range open {
				if dist[i] >= minPath && count[i] == 1 && i != s {
					cands = append(cands, i)
				}
			}
			if len(cands) == 0 {
				continue
			}
			goal := cands[r.IntN(len(cands))]
			q := append([]byte(nil), g...)
			q[s], q[goal] = 'S', 'G'
			a := append([]byte(nil), q...)
			for _, i := range puzzle.MazeRoute(n, string(g), dist, goal) {
				if i != s && i != goal {
					a[i] = 'o'
				}
			}
			return Maze{N: n, Question: string(q), Answer: string(a)}, nil
		}
	}
	return Maze{}, fmt.Errorf("build: no %dx%d maze with a unique shortest path of %d steps found", n, n, minPath)
}

// GenerateMazes generates count mazes with GenerateMazeContext from r in
// order (the same result as count calls of GenerateMaze), printing
// "what: done/count" to log (nil: silent) at most every second.
func GenerateMazes(ctx context.Context, r *data.RNG, count, n int, loops float64, minPath int, what string, log io.Writer) ([]Maze, error) {
	out := make([]Maze, 0, count)
	pr := newProgress(log, what, count)
	for i := 0; i < count; i++ {
		m, err := GenerateMazeContext(ctx, r, n, loops, minPath)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w, after %d of %d mazes", err, i, count)
			}
			return nil, err
		}
		out = append(out, m)
		pr.update(i + 1)
	}
	return out, nil
}

// carveMaze returns an n*n grid of '#' and ' '.
func carveMaze(r *data.RNG, n int, loops float64) []byte {
	g := make([]byte, n*n)
	for i := range g {
		g[i] = '#'
	}
	// Cells live at odd coordinates 1..m where m is the largest odd < n-1;
	// with even n the last inner row/column stays wall.
	m := n - 2
	if m%2 == 0 {
		m--
	}
	stack := []int{1*n + 1}
	g[1*n+1] = ' '
	dirs := [4][2]int{{0, 2}, {2, 0}, {0, -2}, {-2, 0}}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		y, x := cur/n, cur%n
		var next []int
		for _, d := range dirs {
			ny, nx := y+d[0], x+d[1]
			if ny >= 1 && ny <= m && nx >= 1 && nx <= m && g[ny*n+nx] == '#' {
				next = append(next, ny*n+nx)
			}
		}
		if len(next) == 0 {
			stack = stack[:len(stack)-1]
			continue
		}
		nb := next[r.IntN(len(next))]
		g[nb] = ' '
		g[(cur+nb)/2] = ' ' // the wall between: average of the two indices
		stack = append(stack, nb)
	}
	if loops > 0 {
		for y := 1; y <= m; y++ {
			for x := 1; x <= m; x++ {
				i := y*n + x
				if g[i] != '#' || (y+x)%2 == 0 { // only walls between two cells, not pillars
					continue
				}
				horiz := x > 1 && x < m && g[i-1] == ' ' && g[i+1] == ' '
				vert := y > 1 && y < m && g[i-n] == ' ' && g[i+n] == ' '
				if (horiz != vert) && r.Float64() < loops {
					g[i] = ' '
				}
			}
		}
	}
	return g
}

// MazePath checks a maze's answer: the 'o' cells with S and G must form
// one simple 4-connected path from S to G through open cells
// (puzzle.MazePathSteps) whose length equals the shortest distance. It
// returns that length in steps.
func MazePath(m Maze) (int, error) {
	steps, err := puzzle.MazePathSteps(m.N, m.Question, m.Answer)
	if err != nil {
		return 0, err
	}
	if d := (puzzle.Maze{N: m.N, Cells: m.Question}).ShortestPath(); d != steps {
		return 0, fmt.Errorf("path of %d steps, shortest is %d", steps, d)
	}
	return steps, nil
}
