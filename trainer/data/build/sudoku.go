package build

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"

	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer/data"
)

// SudokuPuzzle is a puzzle in digits: 0 blank, 1..n filled, row-major n*n
// cells (n = 9, or 4 for the small variant).
type SudokuPuzzle struct {
	Question, Answer []byte
	Rating           int
}

// ReadSudokuCSV reads a CSV in the reference layout (header, then
// source,question,answer,rating with '.' or '0' for blanks) keeping rows
// rated at least minRating. box is 3 for 9x9 puzzles, 2 for 4x4. Every
// row is checked: the answer must be a complete grid obeying the rules
// and agree with every given of the question; errors name the file and
// line. A file without rows, or without a row rated minRating or more,
// is an error rather than an empty split. path must be a regular file.
func ReadSudokuCSV(path string, box, minRating int) ([]SudokuPuzzle, error) {
	return ReadSudokuCSVContext(context.Background(), path, box, minRating)
}

// ReadSudokuCSVContext is ReadSudokuCSV stopping when ctx ends (checked
// every row: a full reference CSV has millions), with an error wrapping
// ctx.Err() that names the file and line reached.
func ReadSudokuCSVContext(ctx context.Context, path string, box, minRating int) ([]SudokuPuzzle, error) {
	f, _, err := safetensors.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = 4
	cr.ReuseRecord = true
	if _, err := cr.Read(); err == io.EOF {
		return nil, fmt.Errorf("%s: empty file (want a header line, then source,question,answer,rating rows)", path)
	} else if err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	var out []SudokuPuzzle
	rows := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rows++
		line, _ := cr.FieldPos(0)
		if err := interrupted(ctx, "reading %s at line %d", path, line); err != nil {
			return nil, err
		}
		rating, err := strconv.Atoi(rec[3])
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: rating %q is not an integer", path, line, rec[3])
		}
		if rating < minRating {
			continue
		}
		q, err := puzzle.SudokuDigits(rec[1], box, true)
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: question: %w", path, line, err)
		}
		a, err := puzzle.SudokuDigits(rec[2], box, false)
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: answer: %w", path, line, err)
		}
		if err := puzzle.CheckSudokuAnswer(box, q, a); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, line, err)
		}
		out = append(out, SudokuPuzzle{q, a, rating})
	}
	switch {
	case rows == 0:
		return nil, fmt.Errorf("%s: no puzzles after the header line", path)
	case len(out) == 0:
		return nil, fmt.Errorf("%s: none of the %d puzzles is rated %d or more", path, rows, minRating)
	}
	return out, nil
}

// sudokuTokens maps digits to tokens with puzzle.SudokuToken (digit + 1,
// blank -> 1, 0 stays PAD).
func sudokuTokens(p SudokuPuzzle) Example {
	in, out := make([]byte, len(p.Question)), make([]byte, len(p.Answer))
	for i := range in {
		in[i], out[i] = puzzle.SudokuToken(p.Question[i]), puzzle.SudokuToken(p.Answer[i])
	}
	return Example{in, out}
}

// AugmentSudoku applies one random validity-preserving transform to a
// puzzle and its answer, as the reference's shuffle_sudoku: a permutation
// of the digits 1..n, a transpose with probability 1/2, then a permutation
// of the bands and of the rows inside each band, and likewise of stacks
// and columns.
func AugmentSudoku(r *data.RNG, box int, q, a []byte) ([]byte, []byte) {
	n := box * box
	digit := make([]byte, n+1)
	for i, v := range r.Perm(n) {
		digit[i+1] = byte(v + 1)
	}
	transpose := r.Float64() < 0.5
	lines := func() []int {
		perm := make([]int, 0, n)
		for _, b := range r.Perm(box) {
			for _, k := range r.Perm(box) {
				perm = append(perm, b*box+k)
			}
		}
		return perm
	}
	rows := lines()
	cols := lines()
	apply := func(x []byte) []byte {
		src := x
		if transpose {
			src = make([]byte, n*n)
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					src[i*n+j] = x[j*n+i]
				}
			}
		}
		out := make([]byte, n*n)
		for i := range out {
			out[i] = digit[src[rows[i/n]*n+cols[i%n]]]
		}
		return out
	}
	return apply(q), apply(a)
}

// SudokuOptions configures BuildSudoku.
type SudokuOptions struct {
	Out   string
	Force bool
	// Box is 3 for 9x9 Sudoku, 2 for the 4x4 variant.
	Box int
	// Train and Test are the puzzles of each split (from CSV or generated).
	Train, Test []SudokuPuzzle
	// Subsample keeps this many training puzzles (0: all), drawn seeded.
	Subsample int
	// NumAug augmentations per training puzzle.
	NumAug int
	Seed   uint64
	Log    io.Writer
}

// BuildSudoku writes a Sudoku dataset (vocab n+2, seq n*n): every puzzle
// its own one-example puzzle with identifier 0, a group an original then
// its augmentations (training only).
func BuildSudoku(o SudokuOptions) error {
	return BuildSudokuContext(context.Background(), o)
}

// BuildSudokuContext is BuildSudoku stopping when ctx ends: checked per
// training puzzle while augmenting and per group while writing, it
// returns an error wrapping ctx.Err() and leaves neither o.Out nor its
// temporary directory behind.
func BuildSudokuContext(ctx context.Context, o SudokuOptions) error {
	if o.Box != 2 && o.Box != 3 {
		return fmt.Errorf("build: box %d, want 3 (9x9) or 2 (4x4)", o.Box)
	}
	if o.NumAug < 0 || o.Subsample < 0 {
		return errors.New("build: negative augmentation or subsample count")
	}
	n := o.Box * o.Box
	r := data.NewRNG(o.Seed, 1)
	keep := subsample(r, len(o.Train), o.Subsample)
	pr := newProgress(o.Log, "sudoku train", len(keep))
	train := make([][]Example, 0, len(keep))
	for i, k := range keep {
		if err := interrupted(ctx, "sudoku dataset %s (augmenting puzzle %d of %d)", o.Out, i, len(keep)); err != nil {
			return err
		}
		p := o.Train[k]
		g := []Example{sudokuTokens(p)}
		for a := 0; a < o.NumAug; a++ {
			q, ans := AugmentSudoku(r, o.Box, p.Question, p.Answer)
			g = append(g, sudokuTokens(SudokuPuzzle{q, ans, p.Rating}))
		}
		train = append(train, g)
		pr.update(i + 1)
	}
	pr.finish()
	test := make([][]Example, len(o.Test))
	for i, p := range o.Test {
		test[i] = []Example{sudokuTokens(p)}
	}
	return writeSimple(ctx, o.Out, o.Force, simpleLayout{seqLen: n * n, vocab: n + 2}, train, test)
}

// sudokuSolver is a bitmask backtracking solver: it fills the empty cell
// with the fewest candidates first (first in row-major order on ties) and
// tries candidates in increasing order. A guess is a placement at a cell
// with two or more candidates; their number, until the first solution, is
// the difficulty rating. It is deterministic, so a rating is reproducible.
type sudokuSolver struct {
	box, n            int
	grid              []byte
	rows, cols, boxes []uint16
	guesses           int
	solutions, limit  int
	solution          []byte
	maxGuesses        int
}

func newSudokuSolver(box int, grid []byte) (*sudokuSolver, bool) {
	n := box * box
	s := &sudokuSolver{box: box, n: n, grid: append([]byte(nil), grid...),
		rows: make([]uint16, n), cols: make([]uint16, n), boxes: make([]uint16, n)}
	for i, v := range s.grid {
		if v == 0 {
			continue
		}
		bit := uint16(1) << v
		r, c, b := s.at(i)
		if s.rows[r]&bit != 0 || s.cols[c]&bit != 0 || s.boxes[b]&bit != 0 {
			return nil, false // clues already conflict
		}
		s.rows[r] |= bit
		s.cols[c] |= bit
		s.boxes[b] |= bit
	}
	return s, true
}

func (s *sudokuSolver) at(i int) (r, c, b int) {
	r, c = i/s.n, i%s.n
	return r, c, (r/s.box)*s.box + c/s.box
}

func (s *sudokuSolver) candidates(i int) uint16 {
	r, c, b := s.at(i)
	all := uint16(1<<(s.n+1)) - 2
	return all &^ (s.rows[r] | s.cols[c] | s.boxes[b])
}

// search returns true when it should stop (limit reached or out of budget).
func (s *sudokuSolver) search() bool {
	best, bestCount := -1, 100
	var bestCand uint16
	for i, v := range s.grid {
		if v != 0 {
			continue
		}
		cand := s.candidates(i)
		if k := bits.OnesCount16(cand); k < bestCount {
			best, bestCount, bestCand = i, k, cand
			if k <= 1 {
				break
			}
		}
	}
	if best < 0 {
		s.solutions++
		if s.solution == nil {
			s.solution = append([]byte(nil), s.grid...)
		}
		return s.solutions >= s.limit
	}
	r, c, b := s.at(best)
	for cand := bestCand; cand != 0; cand &= cand - 1 {
		v := byte(bits.TrailingZeros16(cand))
		if bestCount > 1 {
			s.guesses++
			if s.maxGuesses > 0 && s.guesses > s.maxGuesses {
				return true
			}
		}
		bit := uint16(1) << v
		s.grid[best] = v
		s.rows[r] |= bit
		s.cols[c] |= bit
		s.boxes[b] |= bit
		stop := s.search()
		s.grid[best] = 0
		s.rows[r] &^= bit
		s.cols[c] &^= bit
		s.boxes[b] &^= bit
		if stop {
			return true
		}
	}
	return false
}

// SolveSudoku returns the first solution of a puzzle (box 3 for 9x9, 2 for
// 4x4), the number of solutions counted up to limit, and the rating: the
// guesses made before the first solution was found.
func SolveSudoku(box int, puzzle []byte, limit int) (solution []byte, solutions, rating int) {
	s, ok := newSudokuSolver(box, puzzle)
	if !ok {
		return nil, 0, 0
	}
	s.limit = 1
	s.search()
	if s.solutions == 0 {
		return nil, 0, s.guesses
	}
	rating, solution = s.guesses, s.solution
	if limit > 1 {
		c, _ := newSudokuSolver(box, puzzle)
		c.limit = limit
		c.search()
		solutions = c.solutions
	} else {
		solutions = 1
	}
	return solution, solutions, rating
}

// uniqueSolution reports whether puzzle has exactly one solution.
func uniqueSolution(box int, puzzle []byte) bool {
	s, ok := newSudokuSolver(box, puzzle)
	if !ok {
		return false
	}
	s.limit = 2
	s.search()
	return s.solutions == 1
}

// maxSudokuAttempts bounds the retries of GenerateSudoku so an
// unreachable minimum rating fails instead of spinning forever.
var maxSudokuAttempts = 200000

// GenerateSudoku makes a puzzle with a unique solution: a random full
// grid, then clues removed in random order while the solution stays
// unique (so the puzzle is minimal), retried until its rating is at least
// minRating; an error after maxSudokuAttempts tries.
func GenerateSudoku(r *data.RNG, box, minRating int) (SudokuPuzzle, error) {
	return GenerateSudokuContext(context.Background(), r, box, minRating)
}

// GenerateSudokuContext is GenerateSudoku stopping when ctx ends, checked
// before every attempt (one attempt takes about a millisecond; a high
// minRating can need many thousands).
func GenerateSudokuContext(ctx context.Context, r *data.RNG, box, minRating int) (SudokuPuzzle, error) {
	n := box * box
	for attempt := 0; attempt < maxSudokuAttempts; attempt++ {
		if err := interrupted(ctx, "generating a %dx%d Sudoku rated %d or more (attempt %d)", n, n, minRating, attempt); err != nil {
			return SudokuPuzzle{}, err
		}
		full := randomFullGrid(r, box)
		q := append([]byte(nil), full...)
		for _, i := range r.Perm(n * n) {
			v := q[i]
			q[i] = 0
			if !uniqueSolution(box, q) {
				q[i] = v
			}
		}
		if _, _, rating := SolveSudoku(box, q, 1); rating >= minRating {
			return SudokuPuzzle{Question: q, Answer: full, Rating: rating}, nil
		}
	}
	return SudokuPuzzle{}, fmt.Errorf("build: no %dx%d Sudoku rated %d or more in %d tries", n, n, minRating, maxSudokuAttempts)
}

// GenerateSudokus generates count puzzles with GenerateSudokuContext from
// r in order (so the result is the same as count calls of GenerateSudoku),
// printing "what: done/count" to log (nil: silent) at most every second.
func GenerateSudokus(ctx context.Context, r *data.RNG, box, minRating, count int, what string, log io.Writer) ([]SudokuPuzzle, error) {
	out := make([]SudokuPuzzle, count)
	pr := newProgress(log, what, count)
	for i := range out {
		var err error
		if out[i], err = GenerateSudokuContext(ctx, r, box, minRating); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w, after %d of %d puzzles", err, i, count)
			}
			return nil, err
		}
		pr.update(i + 1)
	}
	return out, nil
}

// randomFullGrid fills an empty grid by backtracking with candidates in a
// random order per cell; the first fill found is uniformly seeded but not
// uniform over all grids, which the generator does not need.
func randomFullGrid(r *data.RNG, box int) []byte {
	n := box * box
	s, _ := newSudokuSolver(box, make([]byte, n*n))
	var fill func(i int) bool
	fill = func(i int) bool {
		if i == n*n {
			return true
		}
		rr, c, b := s.at(i)
		for _, k := range r.Perm(n) {
			v := byte(k + 1)
			bit := uint16(1) << v
			if (s.rows[rr]|s.cols[c]|s.boxes[b])&bit != 0 {
				continue
			}
			s.grid[i] = v
			s.rows[rr] |= bit
			s.cols[c] |= bit
			s.boxes[b] |= bit
			if fill(i + 1) {
				return true
			}
			s.grid[i] = 0
			s.rows[rr] &^= bit
			s.cols[c] &^= bit
			s.boxes[b] &^= bit
		}
		return false
	}
	fill(0)
	return s.grid
}

// ValidSudokuSolution reports whether a is a complete grid obeying the
// rules and agreeing with every clue of q (puzzle.CheckSudokuAnswer).
func ValidSudokuSolution(box int, q, a []byte) bool {
	return puzzle.CheckSudokuAnswer(box, q, a) == nil
}
