package puzzle_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/arc"
	"github.com/tinyrecursive/trm/trainer/data/build"
)

// arcPrefix points at the real ARC task files shipped with the project.
const arcPrefix = "../testdata/arc-agi/arc-agi"

// evaluationTasks reads ARC-AGI-1's evaluation tasks with their solutions.
func evaluationTasks(t *testing.T) []puzzle.ARCTask {
	t.Helper()
	tasks, err := puzzle.ReadARCTasks(arcPrefix + "_evaluation_challenges.json")
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

// TestReadARCTasks: a challenges file gets its outputs from the solutions
// beside it, a single task file is named after the file, outputs are
// optional, and --test-index picks one test input.
func TestReadARCTasks(t *testing.T) {
	tasks := evaluationTasks(t)
	ref, err := arc.LoadSubset(arcPrefix, "evaluation")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 400 || len(ref) != 400 {
		t.Fatalf("%d tasks, want 400", len(tasks))
	}
	for i := range tasks {
		if tasks[i].Name != ref[i].Name || !tasks[i].Test[0].Output.Equal(ref[i].Test[0].Output) || tasks[i].Test[0].Output.H == 0 {
			t.Fatalf("task %d (%s) differs from the dataset builder's reading", i, tasks[i].Name)
		}
	}
	dir := t.TempDir()
	// The challenges file alone: no outputs, and a name needed.
	b, err := os.ReadFile(arcPrefix + "_evaluation_challenges.json")
	if err != nil {
		t.Fatal(err)
	}
	alone := filepath.Join(dir, "copy_evaluation_challenges.json")
	os.WriteFile(alone, b, 0o644)
	if _, err := puzzle.ReadARCTask(alone, ""); err == nil || !strings.Contains(err.Error(), "400 tasks") || !strings.Contains(err.Error(), alone) {
		t.Errorf("a file of 400 tasks without a name: %v", err)
	}
	name := tasks[7].Name
	one, err := puzzle.ReadARCTask(alone, name)
	if err != nil || one.Name != name || one.Test[0].Output.H != 0 || !one.Train[0].Output.Equal(tasks[7].Train[0].Output) {
		t.Fatalf("task %s from the challenges alone: %v", name, err)
	}
	if _, err := puzzle.ReadARCTask(alone, "nosuchtask"); err == nil || !strings.Contains(err.Error(), `no task "nosuchtask"`) {
		t.Errorf("unknown task: %v", err)
	}
	// One task per file, as the ARC repositories keep them, with and
	// without test outputs.
	var multi puzzle.ARCTask
	for _, tk := range tasks {
		if len(tk.Test) > 1 {
			multi = tk
			break
		}
	}
	if multi.Name == "" {
		t.Fatal("no evaluation task with two test inputs")
	}
	withOut, _ := json.Marshal(multi.Task)
	path := filepath.Join(dir, "mytask.json")
	os.WriteFile(path, withOut, 0o644)
	got, err := puzzle.ReadARCTask(path, "")
	if err != nil || got.Name != "mytask" || len(got.Test) != len(multi.Test) || !got.Test[1].Output.Equal(multi.Test[1].Output) {
		t.Fatalf("single task file: %v", err)
	}
	var raw map[string][]map[string]json.RawMessage
	json.Unmarshal(withOut, &raw)
	for _, p := range raw["test"] {
		delete(p, "output")
	}
	noOut, _ := json.Marshal(raw)
	os.WriteFile(path, noOut, 0o644)
	got, err = puzzle.ReadARCTask(path, "")
	if err != nil || got.Test[0].Output.H != 0 || !got.Test[0].Input.Equal(multi.Test[0].Input) {
		t.Fatalf("single task without outputs: %v", err)
	}
	sel, err := puzzle.SelectTest(multi, 1)
	if err != nil || len(sel.Test) != 1 || !sel.Test[0].Input.Equal(multi.Test[1].Input) || len(sel.Train) != len(multi.Train) {
		t.Errorf("SelectTest(1): %v", err)
	}
	if _, err := puzzle.SelectTest(multi, len(multi.Test)); err == nil || !strings.Contains(err.Error(), "test index") {
		t.Errorf("SelectTest past the end: %v", err)
	}
	for body, want := range map[string]string{
		`[1, 2]`: "want a JSON object",
		`{"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}`:                   "train pair 0 has no output",
		`{"train": [], "test": [{"input": [[1]]}]}`:                                   "0 train and 1 test pairs",
		`{"train": [{"input": [[1]], "output": [[12]]}], "test": [{"input": [[1]]}]}`: "colour 12 outside 0..9",
	} {
		os.WriteFile(path, []byte(body), 0o644)
		if _, err := puzzle.ReadARCTask(path, ""); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want %q and the file", body, err, want)
		}
	}
}

// TestARCMatchesBuilder builds an augmented ARC dataset from real tasks
// and checks that the queries made for each task from the dataset's
// identifiers are exactly the dataset's test inputs, and its labels the
// augmented outputs encoded here.
func TestARCMatchesBuilder(t *testing.T) {
	tasks := evaluationTasks(t)[:12]
	dir := t.TempDir()
	prefix := filepath.Join(dir, "few")
	sols := map[string][]puzzle.Grid{}
	for _, tk := range tasks {
		for _, p := range tk.Test {
			sols[tk.Name] = append(sols[tk.Name], p.Output)
		}
	}
	sb, _ := json.Marshal(sols)
	os.WriteFile(prefix+"_evaluation_challenges.json", arc.MarshalTasksPy(tasks), 0o644)
	os.WriteFile(prefix+"_evaluation_solutions.json", sb, 0o644)
	out := filepath.Join(dir, "ds")
	if _, err := build.BuildARC(build.ARCOptions{Out: out, Prefix: prefix, Subsets: []string{"evaluation"},
		TestSets: []string{"evaluation"}, NumAug: 3, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	ds, inputs, labels := examples(t, out, "test")
	if c := puzzle.For(ds.Meta.SeqLen, ds.Meta.VocabSize); c != (puzzle.ARCCodec{}) {
		t.Fatalf("For picks %#v", c)
	}
	s := ds.Sets[0]
	row := map[[2]int32]int{} // (identifier, test index) -> example
	for p, id := range s.PuzzleIdentifiers {
		for e := s.PuzzleIndices[p]; e < s.PuzzleIndices[p+1]; e++ {
			row[[2]int32{id, e - s.PuzzleIndices[p]}] = int(e)
		}
	}
	checked := 0
	for _, tk := range tasks {
		versions, err := puzzle.ARCVersions(ds.Identifiers, tk.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(versions) < 2 || versions[0].Aug != arc.Identity {
			t.Fatalf("%s: versions %v, want the identity and augmentations", tk.Name, versions)
		}
		for _, q := range puzzle.ARCQueries(tk, versions) {
			e, ok := row[[2]int32{q.Version.Identifier, int32(q.Test)}]
			if !ok {
				t.Fatalf("%s: no example for identifier %d test %d", q.Name, q.Version.Identifier, q.Test)
			}
			if ds.Identifiers[q.Version.Identifier] != q.Name {
				t.Fatalf("identifier %d is %s, the query says %s", q.Version.Identifier, ds.Identifiers[q.Version.Identifier], q.Name)
			}
			if !slices.Equal(q.Input, inputs[e]) {
				t.Fatalf("%s test %d: query input differs from the builder's", q.Name, q.Test)
			}
			if want := puzzle.ARCTokens(q.Version.Aug.Apply(tk.Test[q.Test].Output)); !slices.Equal(want, labels[e]) {
				t.Fatalf("%s test %d: encoded output differs from the builder's label", q.Name, q.Test)
			}
			checked++
		}
	}
	if checked != s.NumExamples() {
		t.Errorf("queries covered %d of %d test examples", checked, s.NumExamples())
	}
	// Training examples are translated: shown where they lie, their labels
	// valid answers at the input's offset.
	trainDS, trainIn, _ := examples(t, out, "train")
	translated := 0
	for i := 0; i < len(trainIn); i += 7 {
		ex, err := puzzle.ReadExample(out, "train", i)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ex.Input, trainIn[i]) || ex.Puzzle != trainDS.Identifiers[ex.Identifier] {
			t.Fatalf("train example %d read differently", i)
		}
		if v := ex.Codec.Check(ex.Input, ex.Label, ex.Label); !v.Valid || !v.MatchesLabel {
			t.Fatalf("train example %d (%s): label judged %s", i, ex.Puzzle, v)
		}
		if _, r, c := puzzle.LocateARC(ex.Input); r != 0 || c != 0 {
			translated++
		}
		if s := ex.String(); !strings.Contains(s, "label as an answer: valid") || !strings.Contains(s, "puzzle "+ex.Puzzle) {
			t.Fatalf("train example %d shown as\n%s", i, s)
		}
	}
	if translated == 0 {
		t.Error("no translated training example seen")
	}
	if _, err := puzzle.ARCVersions(ds.Identifiers, "00000000"); err == nil || !strings.Contains(err.Error(), "no puzzle embedding") {
		t.Errorf("unknown task: %v", err)
	}
}

// TestARCInverseRoundTrip: every grid of the real evaluation tasks, under
// augmentations drawn as the builder draws them, comes back unchanged
// through encoding, cropping and the inverse augmentation, and is found
// again when translated on the canvas.
func TestARCInverseRoundTrip(t *testing.T) {
	r := data.NewRNG(21, 0)
	grids := 0
	canvas := make([]int32, puzzle.ARCSeqLen)
	for _, tk := range evaluationTasks(t) {
		for _, p := range append(slices.Clone(tk.Train), tk.Test...) {
			for _, g := range []puzzle.Grid{p.Input, p.Output} {
				a := puzzle.DrawARCAug(r)
				enc := puzzle.ARCTokens(a.Apply(g))
				if back := a.Invert(puzzle.CropARC(enc)); !back.Equal(g) {
					t.Fatalf("%s: %dx%d grid under %s does not come back", tk.Name, g.H, g.W, a.Name(""))
				}
				row, col := r.IntN(puzzle.ARCSide-g.H+1), r.IntN(puzzle.ARCSide-g.W+1)
				puzzle.EncodeARCGrid(canvas, g, row, col)
				if got, gr, gc := puzzle.LocateARC(canvas); !got.Equal(g) || gr != row || gc != col {
					t.Fatalf("%s: grid at (%d, %d) located at (%d, %d)", tk.Name, row, col, gr, gc)
				}
				grids++
			}
		}
	}
	if grids < 3000 {
		t.Errorf("only %d grids checked", grids)
	}
}

// TestARCVote votes over augmented predictions of a real task: the
// attempts are the most voted grids mapped back, correct or not against
// the real outputs, and the submission carries them.
func TestARCVote(t *testing.T) {
	var tk puzzle.ARCTask
	for _, x := range evaluationTasks(t) {
		if len(x.Test) == 2 {
			tk = x
			break
		}
	}
	versions := puzzle.DrawARCVersions(3, 7)
	if len(versions) != 8 || versions[0].Aug != arc.Identity {
		t.Fatalf("%d versions", len(versions))
	}
	wrong := func(g puzzle.Grid) puzzle.Grid {
		w := puzzle.Grid{H: g.H, W: g.W, Cells: slices.Clone(g.Cells)}
		w.Cells[0] = (w.Cells[0] + 1) % 10
		return w
	}
	v := puzzle.NewARCVote(tk, versions)
	for i, q := range puzzle.ARCQueries(tk, versions) {
		out := tk.Test[q.Test].Output
		// Pair 0: 5 of 8 versions right. Pair 1: 5 of 8 wrong.
		k := i % len(versions)
		if (q.Test == 0) != (k < 5) {
			out = wrong(out)
		}
		if err := v.Add(q, puzzle.ARCTokens(q.Version.Aug.Apply(out)), float64(k)); err != nil {
			t.Fatal(err)
		}
	}
	res := v.Result()
	if len(res.Tests) != 2 || res.Task != tk.Name {
		t.Fatalf("result %+v", res)
	}
	t0, t1 := res.Tests[0], res.Tests[1]
	right0, right1 := tk.Test[0].Output, tk.Test[1].Output
	if !t0.Answered || !t0.Correct || !t0.Attempts.Attempt1.Equal(right0) || !t0.Attempts.Attempt2.Equal(wrong(right0)) || t0.Pass["ARC/pass@1"] != 1 {
		t.Errorf("pair 0: %+v", t0)
	}
	if !t1.Correct || !t1.Attempts.Attempt1.Equal(wrong(right1)) || !t1.Attempts.Attempt2.Equal(right1) || t1.Pass["ARC/pass@1"] != 0 || t1.Pass["ARC/pass@2"] != 1 {
		t.Errorf("pair 1: %+v", t1)
	}
	shown := puzzle.DescribeARCResult(res)
	for _, want := range []string{"test 0: correct: attempt 1 is the expected output", "test 1: correct: attempt 2 is the expected output"} {
		if !strings.Contains(shown, want) {
			t.Errorf("result shown as\n%s\nwithout %q", shown, want)
		}
	}
	echo := puzzle.DescribeARCTask(tk)
	if !strings.HasPrefix(echo, "ARC task "+tk.Name+": ") || strings.Count(echo, "\ndemonstration ") != len(tk.Train) || strings.Count(echo, "\ntest ") != 2 {
		t.Errorf("task echoed as\n%s", echo)
	}
	var sub map[string][]map[string]puzzle.Grid
	if err := json.Unmarshal(res.Submission.MarshalPy(), &sub); err != nil {
		t.Fatal(err)
	}
	if e := sub[tk.Name]; len(e) != 2 || !e[0]["attempt_1"].Equal(right0) || !e[1]["attempt_2"].Equal(right1) {
		t.Errorf("submission %v", sub)
	}
	// Without the outputs there is nothing to be correct against; a
	// selected test input answers only that pair.
	blind := tk
	blind.Test = []puzzle.Pair{{Input: tk.Test[1].Input}}
	bv := puzzle.NewARCVote(blind, versions[:1])
	q := puzzle.ARCQueries(blind, versions[:1])[0]
	if err := bv.Add(q, puzzle.ARCTokens(right1), 0); err != nil {
		t.Fatal(err)
	}
	if r := bv.Result().Tests[0]; r.HasOutput || r.Correct || !r.Attempts.Attempt1.Equal(right1) || r.Pass != nil {
		t.Errorf("without outputs: %+v", r)
	}
	if s := puzzle.DescribeARCResult(bv.Result()); !strings.Contains(s, "test 0: no expected output to compare") {
		t.Errorf("without outputs shown as\n%s", s)
	}
	if s := puzzle.DescribeARCTask(blind); !strings.Contains(s, "no expected output given") {
		t.Errorf("task without outputs echoed as\n%s", s)
	}
	if err := bv.Add(puzzle.ARCQueries(blind, versions[1:2])[0], q.Input, 0); err == nil {
		t.Error("a query of another version was accepted")
	}
}

// TestARCCodec: grids typed as JSON or digit rows, rendered and checked.
func TestARCCodec(t *testing.T) {
	c := puzzle.ARCCodec{}
	a, err := c.Encode("[[1, 2, 0], [3, 4, 5]]")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Encode("120\n345\n")
	if err != nil || !slices.Equal(a, b) {
		t.Fatalf("digit rows encode differently: %v", err)
	}
	if c.Decode(a) != "[[1,2,0],[3,4,5]]" || c.Render(a) != "120\n345" || c.Summary(a) != "ARC grid 2x3" {
		t.Errorf("decode %q render %q summary %q", c.Decode(a), c.Render(a), c.Summary(a))
	}
	if v := c.Check(a, a, a); !v.Valid || !v.MatchesLabel {
		t.Errorf("identical answer: %s", v)
	}
	shifted := make([]int32, puzzle.ARCSeqLen)
	g, _ := puzzle.ParseGrid("120\n345")
	puzzle.EncodeARCGrid(shifted, g, 4, 9)
	if c.Summary(shifted) != "ARC grid 2x3 at row 4, column 9" || c.Render(shifted) != "120\n345" {
		t.Errorf("translated: %q", c.Summary(shifted))
	}
	if v := c.Check(a, shifted, a); v.Valid || v.MatchesLabel || !strings.Contains(v.Problem, "no colour at row 1, column 1") {
		t.Errorf("an answer off the corner: %s", v)
	}
	if v := c.Check(shifted, shifted, nil); !v.Valid || v.String() != "valid (a grid where the input's starts)" {
		t.Errorf("an answer where a translated input is: %s", v)
	}
	for text, want := range map[string]string{"12\n3": "row 2 has 1 cells", "1a": "'a' is not a colour", "[[10]]": "colour 10"} {
		if _, err := c.Encode(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}
