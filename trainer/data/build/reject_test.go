package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/trainer/data/arc"
)

// sudokuRow is a valid 9x9 puzzle and its solution in CSV form.
const (
	sudokuQ = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."
	sudokuA = "483921657967345821251876493548132976729564138136798245372689514814253769695417382"
)

// TestBuilderInputsRejected feeds each builder inputs that contradict
// themselves: each must be refused with the file, the line and the
// problem in the message.
func TestBuilderInputsRejected(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const hdr = "source,question,answer,rating\n"
	contradict := []byte(sudokuA)
	contradict[2] = '4' // the question gives 3 there
	broken := []byte(sudokuA)
	broken[0], broken[1] = broken[1], broken[0] // both unconstrained cells: rows repeat nothing, columns do
	maze := func(q, a string) string { return "x," + q + "," + a + ",0\n" }
	sq := "#####" + "#S  #" + "# # #" + "#  G#" + "#####"
	sa := "#####" + "#Soo#" + "# #o#" + "#  G#" + "#####"
	cases := []struct {
		name string
		read func(path string) error
		body string
		want string
	}{
		{"sudoku ok", readSudoku, hdr + "a," + sudokuQ + "," + sudokuA + ",3\n", ""},
		{"sudoku contradicts a given", readSudoku, hdr + "a," + sudokuQ + "," + sudokuA + ",3\nb," + sudokuQ + "," + string(contradict) + ",3\n",
			"line 3: answer has 4 at row 1, column 3, where the question gives 3"},
		{"sudoku breaks the rules", readSudoku, hdr + "a,...." + sudokuQ[4:] + "," + string(broken) + ",3\n", "line 2: answer repeats"},
		{"sudoku header only", readSudoku, hdr, "no puzzles after the header line"},
		{"sudoku empty file", readSudoku, "", "empty file"},
		{"sudoku all filtered", func(p string) error { _, err := ReadSudokuCSV(p, 3, 99); return err },
			hdr + "a," + sudokuQ + "," + sudokuA + ",3\n", "none of the 1 puzzles is rated 99 or more"},
		{"maze ok", readMaze, hdr + maze(sq, sa), ""},
		{"maze without S", readMaze, hdr + maze(sq, sa) + maze(strings.Replace(sq, "S", " ", 1), strings.Replace(sa, "S", " ", 1)), "line 3: question has no S"},
		{"maze without G", readMaze, hdr + maze(strings.Replace(sq, "G", " ", 1), strings.Replace(sa, "G", " ", 1)), "line 2: question has no G"},
		{"maze with two S", readMaze, hdr + maze(strings.Replace(sq, "#  G", "#S G", 1), strings.Replace(sa, "#  G", "#S G", 1)), "2 S cells"},
		{"maze answer moves a wall", readMaze, hdr + maze(sq, strings.Replace(sa, "# #o#", "#  o#", 1)), "line 2: answer has ' ' at row 3, column 3 where the question has '#'"},
		{"maze empty grid", readMaze, hdr + maze("", ""), "line 2: empty maze"},
		{"maze header only", readMaze, hdr, "no mazes after the header line"},
	}
	for _, c := range cases {
		p := write(strings.ReplaceAll(c.name, " ", "_")+".csv", c.body)
		err := c.read(p)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want %q and the file", c.name, err, c.want)
		}
	}
}

func readSudoku(p string) error { _, err := ReadSudokuCSV(p, 3, 0); return err }
func readMaze(p string) error   { _, err := ReadMazeCSV(p); return err }

// TestARCInputsRejected feeds task files with empty grids, missing pairs
// and mismatched solutions.
func TestARCInputsRejected(t *testing.T) {
	dir := t.TempDir()
	good := `{"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]}`
	cases := []struct {
		name, challenges, solutions, want string
	}{
		{"ok", "{\n\"a\": " + good + "\n}", `{"a": [[[4]]]}`, ""},
		{"empty grid", "{\n\"a\": " + good + ",\n\"b\": {\"train\": [{\"input\": [], \"output\": [[2]]}], \"test\": [{\"input\": [[3]]}]}\n}", "", "line 3: task b: arc: empty grid (0 rows of 0 cells)"},
		{"empty row", "{\"b\": {\"train\": [{\"input\": [[]], \"output\": [[2]]}], \"test\": [{\"input\": [[3]]}]}}", "", "line 1: task b: arc: empty grid (1 rows of 0 cells)"},
		{"no test pairs", "{\n\n\"c\": {\"train\": [{\"input\": [[1]], \"output\": [[2]]}], \"test\": []}}", "", "line 3: task c: 1 train and 0 test pairs"},
		{"duplicate task", "{\"a\": " + good + ",\n\"a\": " + good + "}", "", "line 2: task a given twice"},
		{"solution count", "{\"a\": " + good + "}", "{\n\"a\": [[[4]], [[5]]]}", "line 2: task a has 2 solutions for 1 test inputs"},
		{"empty solution", "{\"a\": " + good + "}", "{\"a\": [[]]}", "task a: arc: empty grid"},
	}
	for _, c := range cases {
		prefix := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
		os.WriteFile(prefix+"_s_challenges.json", []byte(c.challenges), 0o644)
		if c.solutions != "" {
			os.WriteFile(prefix+"_s_solutions.json", []byte(c.solutions), 0o644)
		}
		tasks, err := arc.LoadSubset(prefix, "s")
		if c.want == "" {
			if err != nil || len(tasks) != 1 || tasks[0].Test[0].Output.Cells[0] != 4 {
				t.Errorf("%s: %v %v", c.name, tasks, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), prefix+"_s_") {
			t.Errorf("%s: err = %v, want %q and the file", c.name, err, c.want)
		}
	}
}
