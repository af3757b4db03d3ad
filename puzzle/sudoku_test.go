package puzzle_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/build"
)

// examples reads every example of a dataset split as int32 tokens.
func examples(t *testing.T, dir, split string) (ds *data.Dataset, inputs, labels [][]int32) {
	t.Helper()
	ds, err := data.Open(split, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	L := ds.Meta.SeqLen
	for _, s := range ds.Sets {
		for e := 0; e < s.NumExamples(); e++ {
			in, lab := make([]int32, L), make([]int32, L)
			s.Inputs.CopyInt32(in, e*L)
			s.Labels.CopyInt32(lab, e*L)
			inputs, labels = append(inputs, in), append(labels, lab)
		}
	}
	return ds, inputs, labels
}

// digitsText writes digits as puzzle text, blank as blank.
func digitsText(d []byte, blank byte) string {
	b := make([]byte, len(d))
	for i, v := range d {
		b[i] = blank
		if v != 0 {
			b[i] = '0' + v
		}
	}
	return string(b)
}

// TestSudokuMatchesBuilder: puzzles generated and written by the Sudoku
// builder, typed as text in every accepted form, encode to the tokens the
// dataset holds; the dataset's labels decode to valid answers matching
// themselves.
func TestSudokuMatchesBuilder(t *testing.T) {
	for _, box := range []int{2, 3} {
		r := data.NewRNG(uint64(11+box), 0)
		var ps []build.SudokuPuzzle
		for range 6 {
			p, err := build.GenerateSudoku(r, box, 0)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		dir := filepath.Join(t.TempDir(), "sudoku")
		if err := build.BuildSudoku(build.SudokuOptions{Out: dir, Box: box, Train: ps[:1], Test: ps, Seed: 1}); err != nil {
			t.Fatal(err)
		}
		ds, inputs, labels := examples(t, dir, "test")
		c := puzzle.For(ds.Meta.SeqLen, ds.Meta.VocabSize)
		if want := (puzzle.SudokuCodec{Box: box}); c != want {
			t.Fatalf("box %d: For picks %#v", box, c)
		}
		if len(inputs) != len(ps) {
			t.Fatalf("box %d: %d test examples for %d puzzles", box, len(inputs), len(ps))
		}
		for i, p := range ps {
			n := box * box
			dotted := digitsText(p.Question, '.')
			var lines []string
			for k := 0; k < n; k++ {
				lines = append(lines, digitsText(p.Question[k*n:(k+1)*n], '0'))
			}
			for _, text := range []string{dotted, strings.Join(lines, "\n"), digitsText(p.Question, '_'),
				(puzzle.Sudoku{Box: box, Cells: p.Question}).Render()} {
				tok, err := c.Encode(text)
				if err != nil {
					t.Fatalf("box %d puzzle %d: %q: %v", box, i, text, err)
				}
				if !slices.Equal(tok, inputs[i]) {
					t.Fatalf("box %d puzzle %d: %q encodes to %v, the builder wrote %v", box, i, text, tok, inputs[i])
				}
			}
			if got := c.Decode(inputs[i]); got != dotted {
				t.Errorf("box %d puzzle %d: decodes to %q, want %q", box, i, got, dotted)
			}
			a, err := puzzle.DecodeSudoku(box, labels[i])
			if err != nil || !slices.Equal(a.Cells, p.Answer) {
				t.Fatalf("box %d puzzle %d: label decodes to %v (%v)", box, i, a.Cells, err)
			}
			v := c.Check(inputs[i], labels[i], labels[i])
			if !v.Valid || !v.MatchesLabel || !v.HasLabel {
				t.Errorf("box %d puzzle %d: the builder's own answer judged %s", box, i, v)
			}
		}
	}
}

const (
	sudokuQ = "4.....8.5.3..........7......2.....6.....8.4......1.......6.3.7.5..2.....1.4......"
	sudokuA = "417369825632158947958724316825437169791586432346912758289643571573291684164875293"
)

// TestSudokuCheck: wrong answers are refused with the reason, a valid
// answer other than the label is valid but does not match it.
func TestSudokuCheck(t *testing.T) {
	c := puzzle.SudokuCodec{Box: 3}
	q, err := c.Encode(sudokuQ)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.Encode(sudokuA)
	if v := c.Check(q, a, a); !v.Valid || !v.MatchesLabel {
		t.Fatalf("the solution judged %s", v)
	}
	if _, n, _ := build.SolveSudoku(3, mustSudoku(t, sudokuQ).Cells, 2); n != 1 {
		t.Fatalf("test puzzle has %d solutions, want 1", n)
	}
	with := func(s string, i int, ch byte) []int32 {
		b := []byte(s)
		b[i] = ch
		tok, err := c.Encode(string(b))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	swapped := []byte(sudokuA)
	swapped[1], swapped[2] = swapped[2], swapped[1] // row intact, columns repeat
	for _, bad := range []struct {
		name   string
		answer []int32
		want   string
	}{
		{"contradicts a given", with(sudokuA, 0, '9'), "answer has 9 at row 1, column 1, where the question gives 4"},
		{"repeats a digit", mustTokens(t, c, string(swapped)), "answer repeats"},
		{"leaves a cell empty", with(sudokuA, 80, '.'), "answer leaves row 9, column 9 empty"},
		{"holds padding", append(slices.Clone(a[:80]), 0), "row 9, column 9 holds token 0"},
	} {
		v := c.Check(q, bad.answer, a)
		if v.Valid || !strings.Contains(v.Problem, bad.want) || v.MatchesLabel {
			t.Errorf("%s: %s, want invalid with %q", bad.name, v, bad.want)
		}
	}
	// The empty 4x4 grid has 288 solutions: two of them differ, both valid.
	c4 := puzzle.SudokuCodec{Box: 2}
	empty, _ := c4.Encode("................")
	one, _ := c4.Encode("1234341221434321")
	other, _ := c4.Encode("2143341212344321")
	if v := c4.Check(empty, one, other); !v.Valid || v.MatchesLabel || !v.HasLabel {
		t.Errorf("another solution: %s", v)
	}
	if v := c4.Check(empty, one, nil); !v.Valid || v.HasLabel || v.String() != "valid (Sudoku rules and givens)" {
		t.Errorf("without label: %q", v)
	}
}

func mustSudoku(t *testing.T, s string) puzzle.Sudoku {
	t.Helper()
	p, err := puzzle.ParseSudoku(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustTokens(t *testing.T, c puzzle.Codec, s string) []int32 {
	t.Helper()
	tok, err := c.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestParseSudokuRejects(t *testing.T) {
	for text, want := range map[string]string{
		"123":                           "3 cells is neither",
		strings.Repeat("1", 80) + "x":   `character 'x' at 80`,
		strings.Repeat("1", 15) + "5":   `character '5' at 15 is not a digit 1..4`,
		strings.Repeat(".", 81) + "\n1": "82 cells",
	} {
		if _, err := puzzle.ParseSudoku(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.20q: %v, want %q", text, err, want)
		}
	}
	if _, err := (puzzle.SudokuCodec{Box: 3}).Encode("................"); err == nil || !strings.Contains(err.Error(), "a 9x9 Sudoku has 81") {
		t.Errorf("4x4 puzzle for a 9x9 model: %v", err)
	}
}
