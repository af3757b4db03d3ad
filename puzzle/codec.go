package puzzle

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Codec converts the puzzles of one dataset shape between text and the
// model's tokens and checks answers. For picks the codec of a model or
// dataset from its sequence length and vocabulary.
type Codec interface {
	// Name says what the codec reads, e.g. "9x9 Sudoku".
	Name() string
	// SeqLen is the number of tokens of a puzzle.
	SeqLen() int
	// Encode reads a puzzle as people write it and returns its tokens.
	Encode(text string) ([]int32, error)
	// Decode writes tokens back in a compact text form; for well-formed
	// tokens Encode reads it back to the same tokens.
	Decode(tokens []int32) string
	// Render draws tokens for people to read, over several lines where
	// the puzzle is a grid; tokens outside the vocabulary show as '?'.
	Render(tokens []int32) string
	// Summary describes a puzzle in one line, e.g. "9x9 Sudoku, 27 givens".
	Summary(input []int32) string
	// Check judges answer to the puzzle input: against the puzzle's rules
	// and, when label is not nil, against the label.
	Check(input, answer, label []int32) Verdict
}

// For returns the codec of a model or dataset with the given sequence
// length and vocabulary size: a Sudoku (n*n tokens, vocabulary n+2, n 4
// or 9), a maze (vocabulary 6, a square number of tokens), ARC (900
// tokens, vocabulary 12), otherwise raw tokens. A 4x4 Sudoku and a 4x4
// maze share their shape; it is taken for the Sudoku (the maze builder
// makes mazes of 5x5 and up).
func For(seqLen, vocab int) Codec {
	n := int(math.Round(math.Sqrt(float64(seqLen))))
	square := n*n == seqLen && n > 0
	switch {
	case square && (n == 4 || n == 9) && vocab == n+2:
		return SudokuCodec{Box: int(math.Round(math.Sqrt(float64(n))))}
	case square && vocab == len(MazeCharset)+1:
		return MazeCodec{N: n}
	case seqLen == ARCSeqLen && vocab == ARCVocab:
		return ARCCodec{}
	}
	return TokensCodec{Len: seqLen, Vocab: vocab}
}

// Verdict is the judgement of an answer.
type Verdict struct {
	// Rules names what Valid checks ("" when the format has no rules).
	Rules string
	// Valid is true when the answer obeys the rules.
	Valid bool
	// Problem says why the answer is not valid.
	Problem string
	// Detail adds what else was measured, e.g. a maze path's length
	// against the shortest.
	Detail string
	// HasLabel tells whether a label was given.
	HasLabel bool
	// MatchesLabel is true when the answer equals the label on every
	// supervised position (MatchesLabel).
	MatchesLabel bool
}

// String is the verdict in one line, e.g. "valid (Sudoku rules and
// givens); matches the label" (without the label clause when no label
// was given).
func (v Verdict) String() string {
	var b strings.Builder
	switch {
	case v.Rules == "":
		b.WriteString("no rules to check")
	case v.Valid:
		fmt.Fprintf(&b, "valid (%s)", v.Rules)
	default:
		fmt.Fprintf(&b, "not valid (%s): %s", v.Rules, v.Problem)
	}
	if v.Detail != "" {
		b.WriteString("; " + v.Detail)
	}
	switch {
	case !v.HasLabel:
	case v.MatchesLabel:
		b.WriteString("; matches the label")
	default:
		b.WriteString("; does not match the label")
	}
	return b.String()
}

// MatchesLabel reports whether answer equals label on every supervised
// position: positions whose label is padding (0, the ignore_label_id of
// every builder's dataset) or negative (the trainer's IgnoreLabel) do not
// count. It is the trainer's exact accuracy for one example.
func MatchesLabel(answer, label []int32) bool {
	if len(answer) != len(label) {
		return false
	}
	for i, l := range label {
		if l > 0 && answer[i] != l {
			return false
		}
	}
	return true
}

// labelled fills the label half of a verdict.
func labelled(v Verdict, answer, label []int32) Verdict {
	if label != nil {
		v.HasLabel = true
		v.MatchesLabel = MatchesLabel(answer, label)
	}
	return v
}

// Describe echoes a puzzle: the codec's one-line summary, then the
// rendering indented by two spaces.
func Describe(c Codec, input []int32) string {
	return c.Summary(input) + ":\n" + indent(c.Render(input))
}

// DescribeAnswer shows an answer to input: the rendering indented by two
// spaces, then the verdict (Codec.Check against label, nil for none).
func DescribeAnswer(c Codec, input, answer, label []int32) string {
	return indent(c.Render(answer)) + "\n" + c.Check(input, answer, label).String()
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// SudokuCodec is the codec of a Box*Box Sudoku dataset.
type SudokuCodec struct {
	// Box is 3 for 9x9, 2 for 4x4.
	Box int
}

// Name is e.g. "9x9 Sudoku".
func (c SudokuCodec) Name() string { n := c.Box * c.Box; return fmt.Sprintf("%dx%d Sudoku", n, n) }

// SeqLen is the number of cells.
func (c SudokuCodec) SeqLen() int { n := c.Box * c.Box; return n * n }

// Encode reads a puzzle with ParseSudoku; it must be of the codec's size.
func (c SudokuCodec) Encode(text string) ([]int32, error) {
	s, err := ParseSudoku(text)
	if err != nil {
		return nil, err
	}
	if s.Box != c.Box {
		return nil, fmt.Errorf("sudoku: %d cells, a %s has %d", len(s.Cells), c.Name(), c.SeqLen())
	}
	return s.Tokens(), nil
}

// lenient decodes tokens as a grid, 0xff marking a token that is no cell.
func (c SudokuCodec) lenient(tokens []int32) Sudoku {
	n := c.Box * c.Box
	s := Sudoku{Box: c.Box, Cells: make([]byte, len(tokens))}
	for i, t := range tokens {
		if t >= 1 && t <= int32(n)+1 {
			s.Cells[i] = byte(t - 1)
		} else {
			s.Cells[i] = 0xff
		}
	}
	return s
}

// Decode is Sudoku.String of the tokens.
func (c SudokuCodec) Decode(tokens []int32) string { return c.lenient(tokens).String() }

// Render is Sudoku.Render of the tokens.
func (c SudokuCodec) Render(tokens []int32) string {
	if len(tokens) != c.SeqLen() {
		return TokensCodec{Len: len(tokens)}.Decode(tokens)
	}
	return c.lenient(tokens).Render()
}

// Summary is e.g. "9x9 Sudoku, 27 givens".
func (c SudokuCodec) Summary(input []int32) string {
	if len(input) != c.SeqLen() {
		return fmt.Sprintf("%s, but %d tokens", c.Name(), len(input))
	}
	return fmt.Sprintf("%s, %d givens", c.Name(), c.lenient(input).Givens())
}

// Check applies the Sudoku rules: a complete grid, each digit once per
// row, column and box, every given kept.
func (c SudokuCodec) Check(input, answer, label []int32) Verdict {
	v := Verdict{Rules: "Sudoku rules and givens"}
	q, err := DecodeSudoku(c.Box, input)
	if err != nil {
		v.Problem = "the puzzle: " + err.Error()
		return labelled(v, answer, label)
	}
	a, err := DecodeSudoku(c.Box, answer)
	if err == nil {
		err = q.Check(a)
	}
	if err != nil {
		v.Problem = err.Error()
	} else {
		v.Valid = true
	}
	return labelled(v, answer, label)
}

// MazeCodec is the codec of an N x N maze dataset.
type MazeCodec struct {
	// N is the side of the maze.
	N int
}

// Name is e.g. "30x30 maze".
func (c MazeCodec) Name() string { return fmt.Sprintf("%dx%d maze", c.N, c.N) }

// SeqLen is the number of cells.
func (c MazeCodec) SeqLen() int { return c.N * c.N }

// Encode reads a maze with ParseMaze; it must be of the codec's size.
func (c MazeCodec) Encode(text string) ([]int32, error) {
	m, err := ParseMaze(text)
	if err != nil {
		return nil, err
	}
	if m.N != c.N {
		return nil, fmt.Errorf("maze: %dx%d, the model reads %dx%d mazes", m.N, m.N, c.N, c.N)
	}
	return m.Tokens(), nil
}

func (c MazeCodec) lenient(tokens []int32) Maze {
	b := make([]byte, len(tokens))
	for i, t := range tokens {
		b[i] = '?'
		if t >= 1 && int(t) <= len(MazeCharset) {
			b[i] = MazeCharset[t-1]
		}
	}
	return Maze{N: c.N, Cells: string(b)}
}

// Decode is the maze on one line of N*N characters.
func (c MazeCodec) Decode(tokens []int32) string { return c.lenient(tokens).Cells }

// Render is the maze as N lines (Maze.String).
func (c MazeCodec) Render(tokens []int32) string {
	if len(tokens) != c.SeqLen() {
		return TokensCodec{Len: len(tokens)}.Decode(tokens)
	}
	return c.lenient(tokens).String()
}

// Summary is e.g. "30x30 maze, shortest path 57 steps".
func (c MazeCodec) Summary(input []int32) string {
	if len(input) != c.SeqLen() {
		return fmt.Sprintf("%s, but %d tokens", c.Name(), len(input))
	}
	m := c.lenient(input)
	if d := m.ShortestPath(); d >= 0 {
		return fmt.Sprintf("%s, shortest path %d steps", c.Name(), d)
	}
	return c.Name() + ", no route from S to G"
}

// Check requires a simple 4-connected path of 'o' from S to G through
// open cells that changes nothing else; Detail compares its length with
// the shortest route (the datasets' labels mark a shortest path).
func (c MazeCodec) Check(input, answer, label []int32) Verdict {
	v := Verdict{Rules: "a path from S to G through open cells, nothing else changed"}
	q, err := DecodeMaze(c.N, input)
	if err == nil {
		err = CheckMazeQuestion(q.N, q.Cells)
	}
	if err != nil {
		v.Problem = "the puzzle: " + err.Error()
		return labelled(v, answer, label)
	}
	a, err := DecodeMaze(c.N, answer)
	steps := 0
	if err == nil {
		steps, err = q.Check(a)
	}
	if err != nil {
		v.Problem = err.Error()
	} else {
		v.Valid = true
		v.Detail = fmt.Sprintf("path of %d steps, the shortest is %d", steps, q.ShortestPath())
	}
	return labelled(v, answer, label)
}

// ARCCodec is the codec of ARC datasets for single grids on the canvas;
// whole tasks go through ReadARCTask, ARCQueries and ARCVote.
type ARCCodec struct{}

// Name is "ARC grid".
func (ARCCodec) Name() string { return "ARC grid" }

// SeqLen is ARCSeqLen.
func (ARCCodec) SeqLen() int { return ARCSeqLen }

// Encode reads a grid with ParseGrid and places it at (0, 0).
func (ARCCodec) Encode(text string) ([]int32, error) {
	g, err := ParseGrid(text)
	if err != nil {
		return nil, err
	}
	return ARCTokens(g), nil
}

// Decode is the grid found on the canvas (LocateARC) as JSON rows.
func (ARCCodec) Decode(tokens []int32) string {
	g, _, _ := LocateARC(tokens)
	b, _ := json.Marshal(g.Lists())
	return string(b)
}

// Render is the grid found on the canvas (LocateARC), a digit per colour.
func (ARCCodec) Render(tokens []int32) string {
	g, _, _ := LocateARC(tokens)
	return RenderGrid(g)
}

// Summary is e.g. "ARC grid 3x4" (with its offset when translated).
func (ARCCodec) Summary(input []int32) string {
	g, r, c := LocateARC(input)
	s := fmt.Sprintf("ARC grid %dx%d", g.H, g.W)
	if r != 0 || c != 0 {
		s += fmt.Sprintf(" at row %d, column %d", r, c)
	}
	return s
}

// Check requires the answer to hold a grid where the input's grid
// starts: the top-left corner for test inputs, where evaluation reads it
// (CropARC); training examples are translated, answers with them.
func (ARCCodec) Check(input, answer, label []int32) Verdict {
	v := Verdict{Rules: "a grid where the input's starts"}
	_, row, col := LocateARC(input)
	if g := cropAt(answer, row, col); g.H == 0 || g.W == 0 {
		v.Problem = fmt.Sprintf("no colour at row %d, column %d: the answer crops to an empty grid", row+1, col+1)
	} else {
		v.Valid = true
	}
	return labelled(v, answer, label)
}

// TokensCodec is the codec of any other dataset: tokens as decimal
// numbers.
type TokensCodec struct {
	// Len is the sequence length.
	Len int
	// Vocab bounds the tokens read: 0..Vocab-1 (no bound when 0).
	Vocab int
}

// Name is e.g. "sequence of 81 tokens".
func (c TokensCodec) Name() string { return fmt.Sprintf("sequence of %d tokens", c.Len) }

// SeqLen is Len.
func (c TokensCodec) SeqLen() int { return c.Len }

// Encode reads Len integers separated by spaces, commas or newlines.
func (c TokensCodec) Encode(text string) ([]int32, error) {
	f := strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	if len(f) != c.Len {
		return nil, fmt.Errorf("tokens: want %d tokens, got %d", c.Len, len(f))
	}
	out := make([]int32, len(f))
	for i, w := range f {
		v, err := strconv.ParseInt(w, 10, 32)
		if err != nil || v < 0 || (c.Vocab > 0 && v >= int64(c.Vocab)) {
			return nil, fmt.Errorf("tokens: token %d: %q is not in 0..%d", i, w, c.Vocab-1)
		}
		out[i] = int32(v)
	}
	return out, nil
}

// Decode writes the tokens separated by spaces.
func (c TokensCodec) Decode(tokens []int32) string {
	s := make([]string, len(tokens))
	for i, x := range tokens {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, " ")
}

// Render is Decode.
func (c TokensCodec) Render(tokens []int32) string { return c.Decode(tokens) }

// Summary is the codec's name.
func (c TokensCodec) Summary(input []int32) string { return c.Name() }

// Check has no rules; it compares with the label.
func (c TokensCodec) Check(input, answer, label []int32) Verdict {
	return labelled(Verdict{Valid: true}, answer, label)
}
