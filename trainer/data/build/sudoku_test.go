package build

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/trainer/data"
)

func TestGenerateSudoku(t *testing.T) {
	r := data.NewRNG(3, 0)
	hist := map[int]int{}
	for _, c := range []struct{ box, n, minRating int }{{3, 20, 20}, {3, 10, 0}, {2, 200, 0}} {
		for i := 0; i < c.n; i++ {
			p, err := GenerateSudoku(r, c.box, c.minRating)
			if err != nil {
				t.Fatal(err)
			}
			if c.box == 2 {
				hist[p.Rating]++
			}
			if !ValidSudokuSolution(c.box, p.Question, p.Answer) {
				t.Fatalf("box %d: answer does not solve the question", c.box)
			}
			sol, count, rating := SolveSudoku(c.box, p.Question, 2)
			if count != 1 || !bytes.Equal(sol, p.Answer) {
				t.Fatalf("box %d: %d solutions (want exactly 1)", c.box, count)
			}
			if rating != p.Rating || rating < c.minRating {
				t.Fatalf("box %d: rating %d (recorded %d), minimum %d", c.box, rating, p.Rating, c.minRating)
			}
			// Minimal: removing any clue breaks uniqueness.
			if i == 0 {
				for k, v := range p.Question {
					if v == 0 {
						continue
					}
					q := append([]byte(nil), p.Question...)
					q[k] = 0
					if uniqueSolution(c.box, q) {
						t.Fatalf("box %d: clue %d is redundant", c.box, k)
					}
				}
			}
		}
	}
	t.Logf("4x4 ratings: %v", hist)
	defer func(n int) { maxSudokuAttempts = n }(maxSudokuAttempts)
	maxSudokuAttempts = 50
	if _, err := GenerateSudoku(r, 2, 1000); err == nil {
		t.Error("unreachable rating did not fail")
	}
}

func TestSolverCounts(t *testing.T) {
	empty := make([]byte, 16)
	if _, n, _ := SolveSudoku(2, empty, 1000); n != 288 {
		t.Errorf("empty 4x4 has %d solutions, want 288", n)
	}
	bad := make([]byte, 81)
	bad[0], bad[1] = 5, 5
	if sol, n, _ := SolveSudoku(3, bad, 2); sol != nil || n != 0 {
		t.Error("conflicting clues solved")
	}
}

// TestAugmentSudokuKeepsValidity: an augmented puzzle's augmented answer
// is its unique solution, for both sizes.
func TestAugmentSudokuKeepsValidity(t *testing.T) {
	r := data.NewRNG(4, 0)
	for _, box := range []int{2, 3} {
		p, _ := GenerateSudoku(r, box, 0)
		changed := false
		for i := 0; i < 50; i++ {
			q, a := AugmentSudoku(r, box, p.Question, p.Answer)
			if !ValidSudokuSolution(box, q, a) || !uniqueSolution(box, q) {
				t.Fatalf("box %d: augmentation broke the puzzle", box)
			}
			changed = changed || !bytes.Equal(q, p.Question)
		}
		if !changed {
			t.Errorf("box %d: 50 augmentations changed nothing", box)
		}
	}
}

func writeSudokuCSV(t *testing.T, path string, ps []SudokuPuzzle) {
	var sb strings.Builder
	sb.WriteString("source,question,answer,rating\n")
	for _, p := range ps {
		q := []byte{}
		a := []byte{}
		for i := range p.Question {
			if p.Question[i] == 0 {
				q = append(q, '.')
			} else {
				q = append(q, '0'+p.Question[i])
			}
			a = append(a, '0'+p.Answer[i])
		}
		fmt.Fprintf(&sb, "gen,%s,%s,%d\n", q, a, p.Rating)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBuildSudokuFromCSV: CSV -> dataset with subsample, rating filter and
// augmentation; the layout, metadata and tokens are the reference's.
func TestBuildSudokuFromCSV(t *testing.T) {
	dir := t.TempDir()
	r := data.NewRNG(9, 0)
	var train, test []SudokuPuzzle
	for i := 0; i < 12; i++ {
		p, _ := GenerateSudoku(r, 3, 0)
		train = append(train, p)
	}
	for i := 0; i < 4; i++ {
		p, _ := GenerateSudoku(r, 3, 0)
		test = append(test, p)
	}
	writeSudokuCSV(t, filepath.Join(dir, "train.csv"), train)
	writeSudokuCSV(t, filepath.Join(dir, "test.csv"), test)
	minRating := train[0].Rating
	tr, err := ReadSudokuCSV(filepath.Join(dir, "train.csv"), 3, minRating)
	if err != nil {
		t.Fatal(err)
	}
	te, _ := ReadSudokuCSV(filepath.Join(dir, "test.csv"), 3, 0)
	for _, p := range tr {
		if p.Rating < minRating {
			t.Fatal("rating filter let a puzzle through")
		}
	}
	out := filepath.Join(dir, "ds")
	opts := SudokuOptions{Out: out, Box: 3, Train: tr, Test: te, Subsample: 5, NumAug: 3, Seed: 1}
	if len(tr) < 5 {
		opts.Subsample = 0
	}
	if err := BuildSudoku(opts); err != nil {
		t.Fatal(err)
	}
	groups := min(len(tr), 5)
	meta, _ := os.ReadFile(filepath.Join(out, "train", "dataset.json"))
	wantMeta := fmt.Sprintf(`{"pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": 0, "vocab_size": 11, "seq_len": 81, "num_puzzle_identifiers": 1, "total_groups": %d, "mean_puzzle_examples": 1.0, "total_puzzles": %d, "sets": ["all"]}`, groups, groups)
	if string(meta) != wantMeta {
		t.Errorf("dataset.json\n%s\nwant\n%s", meta, wantMeta)
	}
	if ids, _ := os.ReadFile(filepath.Join(out, "identifiers.json")); string(ids) != `["<blank>"]` {
		t.Errorf("identifiers.json %s", ids)
	}
	ds, err := data.Open("train", out)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	s := ds.Sets[0]
	if s.NumGroups() != groups || s.NumPuzzles() != groups*4 || s.NumExamples() != groups*4 || s.Inputs.DType != data.Uint8 {
		t.Fatalf("train set: %d groups %d puzzles %d examples", s.NumGroups(), s.NumPuzzles(), s.NumExamples())
	}
	for e := 0; e < s.NumExamples(); e++ {
		q, a := make([]byte, 81), make([]byte, 81)
		for k := 0; k < 81; k++ {
			q[k], a[k] = byte(s.Inputs.At(e*81+k))-1, byte(s.Labels.At(e*81+k))-1
		}
		if !ValidSudokuSolution(3, q, a) || !uniqueSolution(3, q) {
			t.Fatalf("example %d is not a valid uniquely solvable puzzle", e)
		}
		if s.PuzzleIdentifiers[e] != 0 {
			t.Fatal("Sudoku puzzle identifier is not 0")
		}
	}
	// Group originals come first and are CSV puzzles.
	for g := 0; g < groups; g++ {
		e := int(s.PuzzleIndices[s.GroupIndices[g]])
		q := make([]byte, 81)
		for k := range q {
			q[k] = byte(s.Inputs.At(e*81+k)) - 1
		}
		found := false
		for _, p := range tr {
			found = found || bytes.Equal(p.Question, q)
		}
		if !found {
			t.Errorf("group %d does not start with an original", g)
		}
	}
	// Building again over an existing directory needs Force.
	if err := BuildSudoku(opts); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("overwrite without force: %v", err)
	}
	opts.Force = true
	if err := BuildSudoku(opts); err != nil {
		t.Fatal(err)
	}
}

func TestReadSudokuCSVRejects(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"short":  "source,question,answer,rating\nx,123,456,0\n",
		"rating": "source,question,answer,rating\nx," + strings.Repeat(".", 81) + "," + strings.Repeat("1", 81) + ",hard\n",
		"char":   "source,question,answer,rating\nx," + strings.Repeat("x", 81) + "," + strings.Repeat("1", 81) + ",1\n",
	} {
		p := filepath.Join(dir, name+".csv")
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := ReadSudokuCSV(p, 3, 0); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMazeGenerateAndBuild(t *testing.T) {
	r := data.NewRNG(2, 0)
	var mazes []Maze
	for i := 0; i < 10; i++ {
		m, err := GenerateMaze(r, 30, 0.1, 60)
		if err != nil {
			t.Fatal(err)
		}
		steps, err := MazePath(m)
		if err != nil {
			t.Fatalf("maze %d: %v\n%s", i, err, m.Question)
		}
		if steps < 60 {
			t.Fatalf("maze %d: path of %d steps, minimum 60", i, steps)
		}
		mazes = append(mazes, m)
	}
	// A corrupted answer (one path cell removed) fails the check.
	bad := mazes[0]
	k := strings.IndexByte(bad.Answer, 'o')
	bad.Answer = bad.Answer[:k] + " " + bad.Answer[k+1:]
	if _, err := MazePath(bad); err == nil {
		t.Error("broken path accepted")
	}
	// CSV round trip and build with the 8 dihedral versions.
	dir := t.TempDir()
	var sb strings.Builder
	sb.WriteString("source,question,answer,rating\n")
	for _, m := range mazes {
		fmt.Fprintf(&sb, "gen,%s,%s,0\n", m.Question, m.Answer)
	}
	os.WriteFile(filepath.Join(dir, "all.csv"), []byte(sb.String()), 0o644)
	read, err := ReadMazeCSV(filepath.Join(dir, "all.csv"))
	if err != nil || len(read) != 10 || read[3] != mazes[3] {
		t.Fatalf("CSV round trip: %v", err)
	}
	out := filepath.Join(dir, "ds")
	if err := BuildMaze(MazeOptions{Out: out, Train: read[:8], Test: read[8:], Aug: true, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open("train", out)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	s := ds.Sets[0]
	if s.NumGroups() != 8 || s.NumExamples() != 64 || ds.Meta.VocabSize != 6 || ds.Meta.SeqLen != 900 || ds.Meta.TotalPuzzles != 8 {
		t.Fatalf("maze train: %d groups %d examples meta %+v", s.NumGroups(), s.NumExamples(), ds.Meta)
	}
	// Every version of a maze is still a maze with a shortest path.
	for e := 0; e < s.NumExamples(); e++ {
		q, a := make([]byte, 900), make([]byte, 900)
		for k := range q {
			q[k], a[k] = MazeCharset[s.Inputs.At(e*900+k)-1], MazeCharset[s.Labels.At(e*900+k)-1]
		}
		if _, err := MazePath(Maze{N: 30, Question: string(q), Answer: string(a)}); err != nil {
			t.Fatalf("example %d: %v", e, err)
		}
	}
	if _, err := GenerateMaze(r, 10, 0, 200); err == nil {
		t.Error("impossible path length accepted")
	}
}
