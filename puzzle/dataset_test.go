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

// TestReadExample shows examples of a built Sudoku dataset, through the
// training split's augmentations too.
func TestReadExample(t *testing.T) {
	r := data.NewRNG(8, 0)
	var ps []build.SudokuPuzzle
	for range 4 {
		p, err := build.GenerateSudoku(r, 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	dir := filepath.Join(t.TempDir(), "sudoku4")
	if err := build.BuildSudoku(build.SudokuOptions{Out: dir, Box: 2, Train: ps[:2], Test: ps[2:], NumAug: 2, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	_, inputs, labels := examples(t, dir, "train")
	if len(inputs) != 6 {
		t.Fatalf("%d training examples, want 2 puzzles x 3", len(inputs))
	}
	for i := range inputs {
		ex, err := puzzle.ReadExample(dir, "train", i)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ex.Input, inputs[i]) || !slices.Equal(ex.Label, labels[i]) || ex.Count != 6 || ex.Puzzle != "<blank>" || ex.Set != "all" {
			t.Fatalf("example %d: %+v", i, ex)
		}
		s := ex.String()
		for _, want := range []string{dir + " train example ", " of 6 (set all, puzzle <blank>, identifier 0)", "input: 4x4 Sudoku, ", "label:\n  ", "label as an answer: valid (Sudoku rules and givens)"} {
			if !strings.Contains(s, want) {
				t.Fatalf("example %d shown as\n%s\nwithout %q", i, s, want)
			}
		}
	}
	ex, err := puzzle.ReadExample(dir, "test", 1)
	if err != nil || ex.Codec.Decode(ex.Input) != (puzzle.Sudoku{Box: 2, Cells: ps[3].Question}).String() {
		t.Fatalf("test example 1: %v", err)
	}
	for _, c := range []struct {
		split string
		index int
		want  string
	}{{"test", 2, "example 2, the test split has 2 (0..1)"}, {"test", -1, "example -1"}, {"valid", 0, "dataset.json"}} {
		if _, err := puzzle.ReadExample(dir, c.split, c.index); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %d: %v, want %q", c.split, c.index, err, c.want)
		}
	}
}
