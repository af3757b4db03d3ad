package puzzle

import (
	"fmt"
	"strings"
)

// Sudoku is a square Sudoku grid of Box*Box rows and columns, row-major:
// 0 is an empty cell, 1..Box*Box a digit. A puzzle and an answer are both
// a Sudoku; an answer is complete (no 0).
type Sudoku struct {
	// Box is the side of a box: 3 for 9x9 Sudoku, 2 for 4x4.
	Box int
	// Cells holds Box^4 digits, 0 for empty.
	Cells []byte
}

// N is the number of rows (and columns and digits).
func (s Sudoku) N() int { return s.Box * s.Box }

// SudokuBox returns the box side of a Sudoku with the given number of
// cells: 2 for 16, 3 for 81 (the sizes the builders write), or an error.
func SudokuBox(cells int) (int, error) {
	switch cells {
	case 16:
		return 2, nil
	case 81:
		return 3, nil
	}
	return 0, fmt.Errorf("%d cells is neither a 4x4 (16) nor a 9x9 (81) Sudoku", cells)
}

// isSudokuBlank reports whether c marks an empty cell in puzzle text.
func isSudokuBlank(c byte) bool { return c == '.' || c == '0' || c == '_' }

// SudokuDigits reads exactly box^4 characters of s as digits 1..box^2.
// With blanks, '.', '0' and '_' are empty cells (0); without, every cell
// must be filled. It is the strict form of the reference's CSV files,
// which the dataset builders read through it.
func SudokuDigits(s string, box int, blanks bool) ([]byte, error) {
	n := box * box
	if len(s) != n*n {
		return nil, fmt.Errorf("%d characters, want %d", len(s), n*n)
	}
	d := make([]byte, n*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case blanks && isSudokuBlank(c):
			d[i] = 0
		case c >= '1' && c <= '0'+byte(n):
			d[i] = c - '0'
		default:
			if blanks {
				return nil, fmt.Errorf("character %q at %d is not a digit 1..%d or a blank ('.', '0', '_')", c, i, n)
			}
			return nil, fmt.Errorf("character %q at %d is not a digit 1..%d", c, i, n)
		}
	}
	return d, nil
}

// ParseSudoku reads a Sudoku as people write it: the cells in row order,
// digits with '.', '0' or '_' for blanks, on one line or several, with
// any whitespace and the '|', '-', '+' rulings of Render ignored. The
// size follows from the number of cells (16 or 81).
func ParseSudoku(text string) (Sudoku, error) {
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case ' ', '\t', '\n', '\r', '|', '-', '+':
		default:
			b.WriteByte(c)
		}
	}
	s := b.String()
	box, err := SudokuBox(len(s))
	if err != nil {
		return Sudoku{}, fmt.Errorf("sudoku: %w", err)
	}
	d, err := SudokuDigits(s, box, true)
	if err != nil {
		return Sudoku{}, fmt.Errorf("sudoku: %w", err)
	}
	return Sudoku{Box: box, Cells: d}, nil
}

// SudokuToken is the token of a Sudoku cell: digit + 1, so an empty cell
// is 1 and 0 stays free for padding (the reference's encoding).
func SudokuToken(digit byte) byte { return digit + 1 }

// Tokens encodes the grid for the model (SudokuToken of every cell).
func (s Sudoku) Tokens() []int32 {
	t := make([]int32, len(s.Cells))
	for i, d := range s.Cells {
		t[i] = int32(SudokuToken(d))
	}
	return t
}

// DecodeSudoku reads a token sequence of a box-sized Sudoku: token 1 is
// an empty cell, 2..n+1 the digits. Any other token (padding, or a
// prediction outside the vocabulary) is an error naming the cell.
func DecodeSudoku(box int, tokens []int32) (Sudoku, error) {
	n := box * box
	if len(tokens) != n*n {
		return Sudoku{}, fmt.Errorf("sudoku: %d tokens, a %dx%d Sudoku has %d", len(tokens), n, n, n*n)
	}
	d := make([]byte, n*n)
	for i, t := range tokens {
		if t < 1 || t > int32(n)+1 {
			return Sudoku{}, fmt.Errorf("sudoku: row %d, column %d holds token %d, not a digit or a blank (1..%d)", i/n+1, i%n+1, t, n+1)
		}
		d[i] = byte(t - 1)
	}
	return Sudoku{Box: box, Cells: d}, nil
}

// String is the compact form: the cells in row order, '.' for empty.
// ParseSudoku reads it back.
func (s Sudoku) String() string {
	b := make([]byte, len(s.Cells))
	for i, d := range s.Cells {
		b[i] = sudokuChar(d)
	}
	return string(b)
}

// sudokuChar is the character of a cell: '.' when empty, '?' for a value
// no digit (a decoded token outside the vocabulary).
func sudokuChar(d byte) byte {
	switch {
	case d == 0:
		return '.'
	case d > 9:
		return '?'
	}
	return '0' + d
}

// Render draws the grid one row per line with the boxes ruled off, for
// people to read; ParseSudoku reads it back.
func (s Sudoku) Render() string {
	n, box := s.N(), s.Box
	var b strings.Builder
	dashes := strings.Repeat("-", 2*box-1)
	rule := dashes + strings.Repeat("-+-"+dashes, box-1)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte('\n')
			if i%box == 0 {
				b.WriteString(rule + "\n")
			}
		}
		for j := 0; j < n; j++ {
			switch {
			case j == 0:
			case j%box == 0:
				b.WriteString(" | ")
			default:
				b.WriteByte(' ')
			}
			b.WriteByte(sudokuChar(s.Cells[i*n+j]))
		}
	}
	return b.String()
}

// Givens counts the filled cells.
func (s Sudoku) Givens() int {
	k := 0
	for _, d := range s.Cells {
		if d != 0 && d <= 9 {
			k++
		}
	}
	return k
}

// CheckSudokuAnswer explains why answer a is not a solution of puzzle q
// (both box-sized, digits 0..n): an empty cell, a given it contradicts,
// or a digit repeated in a row, column or box. nil means a solves q.
func CheckSudokuAnswer(box int, q, a []byte) error {
	n := box * box
	if len(q) != n*n || len(a) != n*n {
		return fmt.Errorf("question/answer of %d/%d cells, want %d", len(q), len(a), n*n)
	}
	for i, v := range a {
		if v == 0 || int(v) > n {
			return fmt.Errorf("answer leaves row %d, column %d empty", i/n+1, i%n+1)
		}
	}
	for i := range q {
		if q[i] != 0 && a[i] != q[i] {
			return fmt.Errorf("answer has %d at row %d, column %d, where the question gives %d", a[i], i/n+1, i%n+1, q[i])
		}
	}
	for i := 0; i < n; i++ {
		var row, col, blk uint32
		for j := 0; j < n; j++ {
			r := (i/box)*box + j/box
			c := (i%box)*box + j%box
			for _, u := range []struct {
				seen *uint32
				cell int
				what string
			}{{&row, i*n + j, "row"}, {&col, j*n + i, "column"}, {&blk, r*n + c, "box"}} {
				bit := uint32(1) << a[u.cell]
				if *u.seen&bit != 0 {
					return fmt.Errorf("answer repeats %d in %s %d", a[u.cell], u.what, i+1)
				}
				*u.seen |= bit
			}
		}
	}
	return nil
}

// Check is CheckSudokuAnswer of answer against the puzzle s.
func (s Sudoku) Check(answer Sudoku) error {
	if answer.Box != s.Box {
		return fmt.Errorf("a %dx%d answer to a %dx%d puzzle", answer.N(), answer.N(), s.N(), s.N())
	}
	return CheckSudokuAnswer(s.Box, s.Cells, answer.Cells)
}
