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

// TestMazeMatchesBuilder: generated mazes written by the maze builder,
// typed as text, encode to the dataset's tokens; the dataset's labels are
// valid shortest paths, and Solve finds exactly them (the generator makes
// the shortest route unique).
func TestMazeMatchesBuilder(t *testing.T) {
	r := data.NewRNG(5, 0)
	var mazes []build.Maze
	for range 5 {
		m, err := build.GenerateMaze(r, 30, 0.1, 40)
		if err != nil {
			t.Fatal(err)
		}
		mazes = append(mazes, m)
	}
	dir := filepath.Join(t.TempDir(), "maze")
	if err := build.BuildMaze(build.MazeOptions{Out: dir, Train: mazes[:1], Test: mazes, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	ds, inputs, labels := examples(t, dir, "test")
	c := puzzle.For(ds.Meta.SeqLen, ds.Meta.VocabSize)
	if c != (puzzle.MazeCodec{N: 30}) {
		t.Fatalf("For picks %#v", c)
	}
	for i, m := range mazes {
		q := puzzle.Maze{N: m.N, Cells: m.Question}
		for _, text := range []string{q.String(), q.String() + "\n", m.Question, strings.ReplaceAll(q.String(), "\n", "\r\n")} {
			tok, err := c.Encode(text)
			if err != nil {
				t.Fatalf("maze %d: %v", i, err)
			}
			if !slices.Equal(tok, inputs[i]) {
				t.Fatalf("maze %d: encoding differs from the builder's", i)
			}
		}
		if c.Decode(labels[i]) != m.Answer || c.Render(inputs[i]) != q.String() {
			t.Fatalf("maze %d: decoding differs from the maze", i)
		}
		v := c.Check(inputs[i], labels[i], labels[i])
		steps := q.ShortestPath()
		if !v.Valid || !v.MatchesLabel || !strings.Contains(v.Detail, "the shortest is") || steps < 40 {
			t.Errorf("maze %d: the builder's answer judged %s (shortest %d)", i, v, steps)
		}
		solved, err := q.Solve()
		if err != nil || solved.Cells != m.Answer {
			t.Errorf("maze %d: Solve differs from the label (%v)", i, err)
		}
		if !strings.HasPrefix(c.Summary(inputs[i]), "30x30 maze, shortest path ") {
			t.Errorf("summary %q", c.Summary(inputs[i]))
		}
	}
	// Corrupted answers of a real maze.
	m := mazes[0]
	k := strings.IndexByte(m.Answer, 'o')
	wall := strings.IndexByte(m.Answer, '#')
	open := strings.IndexByte(m.Answer, ' ')
	set := func(s string, i int, ch byte) []int32 {
		b := []byte(s)
		b[i] = ch
		return puzzle.Maze{N: 30, Cells: string(b)}.Tokens()
	}
	q := puzzle.Maze{N: 30, Cells: m.Question}.Tokens()
	lab := puzzle.Maze{N: 30, Cells: m.Answer}.Tokens()
	for _, bad := range []struct {
		name   string
		answer []int32
		want   string
	}{
		{"broken path", set(m.Answer, k, ' '), "path breaks off"},
		{"stray mark", set(m.Answer, open, 'o'), "cells marked but the path from S to G has"},
		{"path through a wall", set(m.Answer, wall, 'o'), "answer has 'o' at row"},
		{"moved start", set(m.Answer, strings.IndexByte(m.Answer, 'S'), 'o'), "where the question has 'S'"},
		{"padding", append(slices.Clone(lab[:899]), 0), "row 30, column 30 holds token 0"},
	} {
		v := c.Check(q, bad.answer, lab)
		if v.Valid || !strings.Contains(v.Problem, bad.want) || v.MatchesLabel {
			t.Errorf("%s: %s, want invalid with %q", bad.name, v, bad.want)
		}
	}
}

// TestMazeLongerPath: a path that reaches G the long way is valid but not
// the label.
func TestMazeLongerPath(t *testing.T) {
	q := "#######\n" +
		"#S   G#\n" +
		"# ### #\n" +
		"#     #\n" +
		"#######\n#######\n#######"
	long := "#######\n" +
		"#S   G#\n" +
		"#o###o#\n" +
		"#ooooo#\n" +
		"#######\n#######\n#######"
	branch := "#######\n" +
		"#SoooG#\n" +
		"#o###o#\n" +
		"#ooooo#\n" +
		"#######\n#######\n#######"
	c := puzzle.MazeCodec{N: 7}
	qt := mustTokens(t, c, q)
	m, _ := puzzle.ParseMaze(q)
	short, err := m.Solve()
	if err != nil {
		t.Fatal(err)
	}
	if want := "#######\n#SoooG#\n# ### #\n#     #\n#######\n#######\n#######"; short.String() != want {
		t.Fatalf("shortest route:\n%s", short)
	}
	v := c.Check(qt, mustTokens(t, c, long), short.Tokens())
	if !v.Valid || v.MatchesLabel || v.Detail != "path of 8 steps, the shortest is 4" {
		t.Errorf("long way: %s", v)
	}
	if v := c.Check(qt, mustTokens(t, c, branch), short.Tokens()); v.Valid || !strings.Contains(v.Problem, "path branches at row 2, column 2") {
		t.Errorf("branching path: %s", v)
	}
	if v := c.Check(qt, short.Tokens(), short.Tokens()); !v.Valid || !v.MatchesLabel || v.Detail != "path of 4 steps, the shortest is 4" {
		t.Errorf("shortest: %s", v)
	}
}

func TestParseMazeRejects(t *testing.T) {
	for text, want := range map[string]string{
		"":                       "empty text",
		"#####":                  "one line of 5 characters is not a square",
		"###\n#S#\n##":           "line 3 has 2 characters",
		"####\n#SX#\n#G #\n####": `row 2, column 3: 'X' is not one of`,
	} {
		if _, err := puzzle.ParseMaze(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
	if _, err := (puzzle.MazeCodec{N: 30}).Encode("#####\n#S  #\n# # #\n#  G#\n#####"); err == nil || !strings.Contains(err.Error(), "5x5, the model reads 30x30") {
		t.Errorf("wrong size: %v", err)
	}
	if _, err := (puzzle.Maze{N: 3, Cells: "S#G######"}).Solve(); err == nil {
		t.Error("maze without a route solved")
	}
}
