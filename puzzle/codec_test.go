package puzzle_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/puzzle"
)

func TestFor(t *testing.T) {
	for _, c := range []struct {
		seqLen, vocab int
		want          puzzle.Codec
	}{
		{81, 11, puzzle.SudokuCodec{Box: 3}},
		{16, 6, puzzle.SudokuCodec{Box: 2}},
		{900, 6, puzzle.MazeCodec{N: 30}},
		{25, 6, puzzle.MazeCodec{N: 5}},
		{900, 12, puzzle.ARCCodec{}},
		{81, 12, puzzle.TokensCodec{Len: 81, Vocab: 12}},
		{10, 6, puzzle.TokensCodec{Len: 10, Vocab: 6}},
	} {
		if got := puzzle.For(c.seqLen, c.vocab); got != c.want {
			t.Errorf("For(%d, %d) = %#v, want %#v", c.seqLen, c.vocab, got, c.want)
		}
	}
}

// TestReferenceVocabularies pins the token layouts to the reference's,
// independently of the code that implements them.
func TestReferenceVocabularies(t *testing.T) {
	s, err := puzzle.SudokuCodec{Box: 2}.Encode("1.3._..4 0000 2341")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{2, 1, 4, 1, 1, 1, 1, 5, 1, 1, 1, 1, 3, 4, 5, 2}; !slices.Equal(s, want) {
		t.Errorf("4x4 Sudoku tokens %v, want %v", s, want)
	}
	m, err := puzzle.MazeCodec{N: 3}.Encode("# S\nGo#\n   ")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{1, 2, 3, 4, 5, 1, 2, 2, 2}; !slices.Equal(m, want) {
		t.Errorf("maze tokens %v, want %v", m, want)
	}
	a, err := puzzle.ARCCodec{}.Encode("120\n345")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int32, puzzle.ARCSeqLen)
	copy(want[0:], []int32{3, 4, 2, 1})
	copy(want[30:], []int32{5, 6, 7, 1})
	copy(want[60:], []int32{1, 1, 1, 0})
	if !slices.Equal(a, want) {
		t.Errorf("ARC canvas starts %v %v %v", a[0:4], a[30:34], a[60:64])
	}
	full := puzzle.ARCTokens(puzzle.Grid{H: 30, W: 30, Cells: make([]byte, 900)})
	if slices.ContainsFunc(full, func(x int32) bool { return x != 2 }) {
		t.Error("a 30x30 grid has no room for end-of-grid markers, yet some token is not colour 0")
	}
}

func TestTokensCodec(t *testing.T) {
	c := puzzle.TokensCodec{Len: 4, Vocab: 7}
	tok, err := c.Encode("0, 6\n3 2")
	if err != nil || !slices.Equal(tok, []int32{0, 6, 3, 2}) {
		t.Fatalf("%v %v", tok, err)
	}
	if c.Decode(tok) != "0 6 3 2" {
		t.Errorf("decode %q", c.Decode(tok))
	}
	for text, want := range map[string]string{"1 2 3": "want 4 tokens, got 3", "1 2 3 7": `token 3: "7" is not in 0..6`, "1 2 x 3": `"x"`} {
		if _, err := c.Encode(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
	// Padding in the label is not supervised; everything else must match.
	if v := c.Check(tok, []int32{5, 6, 3, 2}, []int32{0, 6, 3, 2}); !v.MatchesLabel || v.Rules != "" {
		t.Errorf("padding label: %s", v)
	}
	if v := c.Check(tok, []int32{0, 6, 3, 1}, []int32{0, 6, 3, 2}); v.MatchesLabel || v.String() != "no rules to check; does not match the label" {
		t.Errorf("wrong answer: %q", v)
	}
}

func TestDescribe(t *testing.T) {
	c := puzzle.SudokuCodec{Box: 2}
	q, _ := c.Encode("1.3." + "...." + "...4" + "...2")
	a, _ := c.Encode("1234341221434321")
	got := puzzle.Describe(c, q)
	want := "4x4 Sudoku, 4 givens:\n" +
		"  1 . | 3 .\n" +
		"  . . | . .\n" +
		"  ----+----\n" +
		"  . . | . 4\n" +
		"  . . | . 2"
	if got != want {
		t.Errorf("Describe:\n%s\nwant\n%s", got, want)
	}
	// The rendering parses back to the same puzzle.
	back, err := c.Encode(c.Render(q))
	if err != nil || !slices.Equal(back, q) {
		t.Errorf("rendering does not parse back: %v", err)
	}
	ans := puzzle.DescribeAnswer(c, q, a, nil)
	if !strings.HasSuffix(ans, "\nnot valid (Sudoku rules and givens): answer has 3 at row 3, column 4, where the question gives 4") {
		t.Errorf("DescribeAnswer:\n%s", ans)
	}
	bad := slices.Clone(a)
	bad[5] = 0
	if r := c.Render(bad); !strings.Contains(r, "?") {
		t.Errorf("a padding token renders as %q", r)
	}
}

// TestCodecsTakeAnyTokens: tokens of the wrong length or outside the
// vocabulary (a server's hostile request, a model's stray prediction)
// give errors and invalid verdicts, never a panic.
func TestCodecsTakeAnyTokens(t *testing.T) {
	for _, c := range []puzzle.Codec{puzzle.SudokuCodec{Box: 3}, puzzle.SudokuCodec{Box: 2}, puzzle.MazeCodec{N: 30},
		puzzle.MazeCodec{N: 5}, puzzle.ARCCodec{}, puzzle.TokensCodec{Len: 8, Vocab: 4}} {
		L := c.SeqLen()
		for _, n := range []int{0, 1, L - 1, L, L + 1, 2 * L} {
			for _, fill := range []int32{-7, 0, 1, 3, 11, 1 << 30} {
				tok := make([]int32, n)
				for i := range tok {
					tok[i] = fill + int32(i%3)
				}
				_ = c.Render(tok) + c.Decode(tok) + c.Summary(tok)
				v := c.Check(tok, tok, tok)
				if n != L && v.Valid && v.Rules != "" {
					t.Errorf("%s: %d tokens judged valid", c.Name(), n)
				}
			}
		}
	}
}
