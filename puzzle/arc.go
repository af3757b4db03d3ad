package puzzle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/arc"
)

// Grid is an ARC grid of colours 0..9, at most 30x30: trainer/data/arc's
// type, with its Equal, Key, Hash and JSON forms, so grids move between
// this package, the evaluator and submissions without conversion.
type Grid = arc.Grid

// Pair is one (input, output) example of an ARC task.
type Pair = arc.Pair

// Aug is one ARC augmentation: a colour permutation (0 fixed) then one of
// the 8 dihedral transforms, with Apply, Invert and the reference's
// augmented puzzle name (Name); arc.Identity changes nothing.
type Aug = arc.Aug

// ARCTask is a named ARC task: demonstration pairs (Train) and test pairs
// (Test). A test pair's Output is empty (H == 0) when the file gives none.
type ARCTask = arc.NamedTask

// The ARC token layout (the reference's, which the ARC builder writes):
// a 30x30 canvas, 0 padding, 1 the end-of-grid marker, colour c as token
// c + 2.
const (
	// ARCSide is the canvas side.
	ARCSide = arc.MaxSize
	// ARCSeqLen is the sequence length of an ARC dataset.
	ARCSeqLen = ARCSide * ARCSide
	// ARCVocab is the vocabulary size of an ARC dataset.
	ARCVocab = 12
	// ARCEOS is the end-of-grid marker.
	ARCEOS = 1
	// ARCColourOffset is added to a colour to make its token.
	ARCColourOffset = 2
)

// Token is an integer token type: bytes as datasets store them, int32 as
// the model reads them.
type Token interface{ ~uint8 | ~int32 }

// EncodeARCGrid writes grid g at offset (row, col) of a 30x30 token canvas
// dst: colours as tokens 2..11, the end-of-grid marker on row row+H
// (columns col..col+W-1) and on column col+W (rows row..row+H-1) where they
// fit, everything else padding; the corner (row+H, col+W) stays padding.
// The ARC builder writes every example through it (test examples at (0,
// 0), training examples translated).
func EncodeARCGrid[T Token](dst []T, g Grid, row, col int) {
	clear(dst)
	const n = ARCSide
	for i := 0; i < g.H; i++ {
		for j := 0; j < g.W; j++ {
			dst[(row+i)*n+col+j] = T(g.At(i, j) + ARCColourOffset)
		}
	}
	if er := row + g.H; er < n {
		for j := col; j < col+g.W; j++ {
			dst[er*n+j] = ARCEOS
		}
	}
	if ec := col + g.W; ec < n {
		for i := row; i < row+g.H; i++ {
			dst[i*n+ec] = ARCEOS
		}
	}
}

// ARCTokens encodes g at (0, 0), as the model sees a test input.
func ARCTokens(g Grid) []int32 {
	t := make([]int32, ARCSeqLen)
	EncodeARCGrid(t, g, 0, 0)
	return t
}

// CropARC reads the grid a predicted canvas encodes from its top-left
// corner, exactly as evaluation scores predictions (trainer/data/arc's
// Crop); a canvas without a colour at (0, 0), or of other than
// ARCSeqLen tokens, gives a 0x0 grid.
func CropARC(tokens []int32) Grid { return cropAt(tokens, 0, 0) }

// LocateARC finds a grid wherever it lies on a canvas (training examples
// are translated): its top-left is the first non-padding cell in row
// order, the grid is cropped from there. It returns the grid and its
// offset; an all-padding canvas, or one of other than ARCSeqLen tokens,
// gives a 0x0 grid at (0, 0).
func LocateARC(tokens []int32) (g Grid, row, col int) {
	if len(tokens) != ARCSeqLen {
		return Grid{}, 0, 0
	}
	for k, v := range tokens {
		if v != 0 {
			row, col = k/ARCSide, k%ARCSide
			return cropAt(tokens, row, col), row, col
		}
	}
	return Grid{}, 0, 0
}

// cropAt is CropARC of the canvas shifted so that (row, col) is its
// top-left corner.
func cropAt(tokens []int32, row, col int) Grid {
	if len(tokens) != ARCSeqLen {
		return Grid{}
	}
	if row == 0 && col == 0 {
		return arc.Crop(tokens)
	}
	const n = ARCSide
	shifted := make([]int32, n*n)
	for i := row; i < n; i++ {
		copy(shifted[(i-row)*n:(i-row+1)*n-col], tokens[i*n+col:(i+1)*n])
	}
	return arc.Crop(shifted)
}

// RenderGrid draws a grid one row per line, a digit per colour; a 0x0
// grid renders as "(empty grid)". ParseGrid reads it back.
func RenderGrid(g Grid) string {
	if g.H == 0 || g.W == 0 {
		return "(empty grid)"
	}
	var b strings.Builder
	for i := 0; i < g.H; i++ {
		if i > 0 {
			b.WriteByte('\n')
		}
		for j := 0; j < g.W; j++ {
			b.WriteByte('0' + g.At(i, j))
		}
	}
	return b.String()
}

// ParseGrid reads an ARC grid as JSON (a list of rows, [[0,1],[2,3]]) or
// as RenderGrid writes it (rows of digits, one per line).
func ParseGrid(text string) (Grid, error) {
	t := strings.TrimSpace(text)
	var g Grid
	if strings.HasPrefix(t, "[") {
		if err := json.Unmarshal([]byte(t), &g); err != nil {
			return Grid{}, err
		}
		return g, nil
	}
	rows := strings.Fields(t)
	if len(rows) == 0 {
		return Grid{}, errors.New("arc: empty grid")
	}
	var cells []byte
	for i, r := range rows {
		if len(r) != len(rows[0]) {
			return Grid{}, fmt.Errorf("arc: grid row %d has %d cells, row 1 has %d", i+1, len(r), len(rows[0]))
		}
		for j := 0; j < len(r); j++ {
			if r[j] < '0' || r[j] > '9' {
				return Grid{}, fmt.Errorf("arc: row %d, column %d: %q is not a colour 0..9", i+1, j+1, r[j])
			}
			cells = append(cells, r[j]-'0')
		}
	}
	if len(rows) > ARCSide || len(rows[0]) > ARCSide {
		return Grid{}, fmt.Errorf("arc: grid %dx%d larger than %dx%d", len(rows), len(rows[0]), ARCSide, ARCSide)
	}
	return Grid{H: len(rows), W: len(rows[0]), Cells: cells}, nil
}

// maxTaskBytes bounds a task file read by ReadARCTasks (the largest ARC
// challenges files are a few MB).
const maxTaskBytes = 1 << 28

// ParseARCTasks reads ARC tasks from JSON in either form: one task
// ({"train": [...], "test": [...]}, as the ARC repositories keep one task
// per file), named name, or an object of named tasks (a challenges file)
// in file order. Test outputs are optional. Every task needs train and
// test pairs and every grid at least one cell.
func ParseARCTasks(b []byte, name string) ([]ARCTask, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("want a JSON object (a task, or named tasks): %w", err)
	}
	if raw, ok := probe["train"]; ok && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		var t arc.Task
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, err
		}
		if len(t.Train) == 0 || len(t.Test) == 0 {
			return nil, fmt.Errorf("%d train and %d test pairs; want at least one of each", len(t.Train), len(t.Test))
		}
		tasks := []ARCTask{{Name: name, Task: t}}
		return tasks, checkTrainOutputs(tasks)
	}
	tasks, err := arc.DecodeTasks(b)
	if err != nil {
		return nil, err
	}
	if len(tasks) == 0 {
		return nil, errors.New("no tasks")
	}
	return tasks, checkTrainOutputs(tasks)
}

// checkTrainOutputs refuses demonstration pairs without an output: only
// test outputs may be missing.
func checkTrainOutputs(tasks []ARCTask) error {
	for _, t := range tasks {
		for i, p := range t.Train {
			if p.Output.H == 0 {
				return fmt.Errorf("task %s: train pair %d has no output", t.Name, i)
			}
		}
	}
	return nil
}

// ReadARCTasks reads the tasks of a JSON file (ParseARCTasks; a single
// task is named after the file, without .json). For a challenges file
// <prefix>_<subset>_challenges.json beside its
// <prefix>_<subset>_solutions.json, the test outputs come from the
// solutions, as the dataset builder reads them. Errors name the file.
func ReadARCTasks(path string) ([]ARCTask, error) {
	if stem, ok := strings.CutSuffix(path, "_challenges.json"); ok {
		if i := strings.LastIndexByte(stem, '_'); i > 0 && !strings.ContainsRune(stem[i:], filepath.Separator) {
			if _, err := os.Stat(stem + "_solutions.json"); err == nil {
				tasks, err := arc.LoadSubset(stem[:i], stem[i+1:])
				if err == nil {
					if err = checkTrainOutputs(tasks); err != nil {
						err = fmt.Errorf("%s: %w", path, err)
					}
				}
				return tasks, err
			}
		}
	}
	b, err := safetensors.ReadRegular(path, maxTaskBytes)
	if err != nil {
		return nil, err
	}
	tasks, err := ParseARCTasks(b, strings.TrimSuffix(filepath.Base(path), ".json"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tasks, nil
}

// ReadARCTask reads one task of a file (ReadARCTasks): the task called
// name, or with name "" the file's only task.
func ReadARCTask(path, name string) (ARCTask, error) {
	tasks, err := ReadARCTasks(path)
	if err != nil {
		return ARCTask{}, err
	}
	if name == "" {
		if len(tasks) != 1 {
			return ARCTask{}, fmt.Errorf("%s: %d tasks (%s, ...); name the one to solve", path, len(tasks), tasks[0].Name)
		}
		return tasks[0], nil
	}
	for _, t := range tasks {
		if t.Name == name {
			return t, nil
		}
	}
	return ARCTask{}, fmt.Errorf("%s: no task %q among its %d tasks", path, name, len(tasks))
}

// SelectTest keeps only test pair k (0-based) of a task: solving with
// --test-index K puts one test input to the model.
func SelectTest(t ARCTask, k int) (ARCTask, error) {
	if k < 0 || k >= len(t.Test) {
		return ARCTask{}, fmt.Errorf("task %s: test index %d, the task has %d test inputs (0..%d)", t.Name, k, len(t.Test), len(t.Test)-1)
	}
	out := t
	out.Test = []Pair{t.Test[k]}
	return out, nil
}

// DrawARCAug draws one random augmentation as the ARC builder does: a
// dihedral transform, then a permutation of the colours 1..9 (0, the
// background, stays). The builder draws through it, so a seed gives the
// same augmentations here and in a dataset.
func DrawARCAug(r *data.RNG) Aug {
	a := Aug{T: r.IntN(8)}
	for i, c := range r.Perm(9) {
		a.Colours[i+1] = byte(c + 1)
	}
	return a
}

// ARCName is the identifier of a task's version in identifiers.json: the
// task's name for arc.Identity, the reference's augmented name otherwise.
func ARCName(task string, a Aug) string {
	if a == arc.Identity {
		return task
	}
	return a.Name(task)
}

// ARCVersion is one augmented version of a task put to the model: the
// augmentation and the puzzle identifier (row of the puzzle embedding)
// the model learned for it.
type ARCVersion struct {
	// Aug maps the task into this version.
	Aug Aug
	// Identifier is the version's puzzle identifier; 0, the blank
	// identifier, for a version the model was not trained on.
	Identifier int32
}

// ARCVersions lists the versions of task that a dataset holds, from its
// identifiers (identifiers.json, index = identifier), in identifier
// order. A trained ARC model knows a task through the puzzle embeddings
// of these versions, so solving puts the task to it in each of them. An
// unknown task is an error.
func ARCVersions(identifiers []string, task string) ([]ARCVersion, error) {
	var out []ARCVersion
	for id, name := range identifiers {
		orig, a, err := arc.ParseName(name)
		if err != nil || orig != task {
			continue
		}
		out = append(out, ARCVersion{Aug: a, Identifier: int32(id)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("task %s is not among the dataset's %d puzzle identifiers (the model has no puzzle embedding for it)", task, len(identifiers))
	}
	return out, nil
}

// DrawARCVersions returns the identity and n more distinct augmentations
// drawn with seed, all with the blank identifier: the versions to vote
// over for a model without puzzle embeddings for the task.
func DrawARCVersions(seed uint64, n int) []ARCVersion {
	r := data.NewRNG(seed, 2)
	out := []ARCVersion{{Aug: arc.Identity}}
	seen := map[Aug]bool{arc.Identity: true}
	for tries := 0; len(out) < n+1 && tries < 100*(n+1); tries++ {
		if a := DrawARCAug(r); !seen[a] {
			seen[a] = true
			out = append(out, ARCVersion{Aug: a})
		}
	}
	return out
}

// ARCQuery is one model input for a task: a test input in one version.
type ARCQuery struct {
	// Test is the index of the test pair in the task.
	Test int
	// Name is the version's name (ARCName).
	Name string
	// Version is the augmentation and its puzzle identifier.
	Version ARCVersion
	// Input is the augmented test input on the canvas (ARCSeqLen tokens).
	Input []int32
}

// ARCQueries makes the model inputs of every test pair of t in every
// version, test pair by test pair.
func ARCQueries(t ARCTask, versions []ARCVersion) []ARCQuery {
	var out []ARCQuery
	for k, p := range t.Test {
		for _, v := range versions {
			out = append(out, ARCQuery{Test: k, Name: ARCName(t.Name, v.Aug), Version: v,
				Input: ARCTokens(v.Aug.Apply(p.Input))})
		}
	}
	return out
}

// ARCVote pools the predictions for the queries of one task and votes, as
// evaluation does (trainer/data/arc's Evaluator: each prediction mapped
// back through its version's inverse augmentation, grids ranked by votes
// then by mean sigmoid(q_halt)).
type ARCVote struct {
	task  ARCTask
	ids   map[string]int32
	evals []*arc.Evaluator // one per test pair
}

// NewARCVote starts a vote on task t over the given versions.
func NewARCVote(t ARCTask, versions []ARCVersion) *ARCVote {
	names := []string{"<blank>"}
	ids := map[string]int32{}
	for _, v := range versions {
		n := ARCName(t.Name, v.Aug)
		if _, ok := ids[n]; !ok {
			ids[n] = int32(len(names))
			names = append(names, n)
		}
	}
	v := &ARCVote{task: t, ids: ids}
	for _, p := range t.Test {
		one := ARCTask{Name: t.Name, Task: arc.Task{Train: t.Train, Test: []Pair{p}}}
		v.evals = append(v.evals, arc.NewEvaluator(names, []ARCTask{one}, 0, false))
	}
	return v
}

// Add records the model's predicted canvas for query q with the logit of
// its halting head.
func (v *ARCVote) Add(q ARCQuery, pred []int32, qHaltLogit float64) error {
	id, ok := v.ids[q.Name]
	if !ok {
		return fmt.Errorf("arc: query %s is not a version of this vote", q.Name)
	}
	if q.Test < 0 || q.Test >= len(v.evals) {
		return fmt.Errorf("arc: query for test pair %d of a task with %d", q.Test, len(v.evals))
	}
	return v.evals[q.Test].Add(id, q.Input, pred, qHaltLogit)
}

// ARCTestResult is the outcome of one test pair.
type ARCTestResult struct {
	// Index of the test pair in the task.
	Index int
	// Answered is false when no prediction was added for the pair.
	Answered bool
	// Attempts are the two most voted grids (the first twice when the
	// votes agree).
	Attempts arc.Attempts
	// HasOutput tells whether the task gives the expected output.
	HasOutput bool
	// Expected is the task's output for the pair (0x0 when not given).
	Expected Grid
	// Correct is true when an attempt equals the expected output: the
	// pass@2 of the competition.
	Correct bool
	// Pass holds ARC/pass@K for every K of trainer/data/arc's PassKs (0 or
	// 1 for one pair), as evaluation scores it.
	Pass map[string]float64
}

// ARCResult is the vote's outcome for the task.
type ARCResult struct {
	// Task is the task's name.
	Task string
	// Tests has one entry per test pair of the task.
	Tests []ARCTestResult
	// Submission holds the attempts of the answered pairs in the Kaggle
	// form (MarshalPy writes submission.json).
	Submission arc.Submission
}

// Result ranks the votes of every test pair.
func (v *ARCVote) Result() ARCResult {
	res := ARCResult{Task: v.task.Name, Submission: arc.Submission{Names: []string{v.task.Name}, Entries: map[string][]arc.Attempts{}}}
	entries := []arc.Attempts{}
	for k, ev := range v.evals {
		pass, sub := ev.Result()
		want := v.task.Test[k].Output
		r := ARCTestResult{Index: k, HasOutput: want.H > 0, Expected: want}
		if e := sub.Entries[v.task.Name]; len(e) == 1 {
			r.Answered, r.Attempts = true, e[0]
			entries = append(entries, e[0])
			if r.HasOutput {
				r.Pass = pass
				r.Correct = e[0].Attempt1.Equal(want) || e[0].Attempt2.Equal(want)
			}
		}
		res.Tests = append(res.Tests, r)
	}
	res.Submission.Entries[v.task.Name] = entries
	return res
}

// sideBySide renders grids next to each other, top-aligned, separated by
// sep (padded on the rows where a grid has ended).
func sideBySide(sep string, grids ...Grid) string {
	var cols [][]string
	h := 0
	for _, g := range grids {
		lines := strings.Split(RenderGrid(g), "\n")
		cols = append(cols, lines)
		h = max(h, len(lines))
	}
	var b strings.Builder
	for i := 0; i < h; i++ {
		if i > 0 {
			b.WriteByte('\n')
		}
		var row strings.Builder
		for k, lines := range cols {
			if k > 0 {
				if i == 0 {
					row.WriteString(sep)
				} else {
					row.WriteString(strings.Repeat(" ", len(sep)))
				}
			}
			w := len(lines[0])
			line := ""
			if i < len(lines) {
				line = lines[i]
			}
			row.WriteString(line + strings.Repeat(" ", w-len(line)))
		}
		b.WriteString(strings.TrimRight(row.String(), " "))
	}
	return b.String()
}

// DescribeARCTask echoes a task: its name and size, each demonstration
// pair (input -> output) and each test input, with its expected output
// when the task gives one.
func DescribeARCTask(t ARCTask) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ARC task %s: %d demonstration pairs, %d test inputs", t.Name, len(t.Train), len(t.Test))
	for i, p := range t.Train {
		fmt.Fprintf(&b, "\ndemonstration %d (%dx%d -> %dx%d):\n%s", i, p.Input.H, p.Input.W, p.Output.H, p.Output.W, indent(sideBySide("  ->  ", p.Input, p.Output)))
	}
	for i, p := range t.Test {
		if p.Output.H > 0 {
			fmt.Fprintf(&b, "\ntest %d (%dx%d, expected %dx%d):\n%s", i, p.Input.H, p.Input.W, p.Output.H, p.Output.W, indent(sideBySide("  ->  ", p.Input, p.Output)))
		} else {
			fmt.Fprintf(&b, "\ntest %d (%dx%d, no expected output given):\n%s", i, p.Input.H, p.Input.W, indent(RenderGrid(p.Input)))
		}
	}
	return b.String()
}

// DescribeARCResult shows the vote's two attempts for each answered test
// pair and whether one of them is the expected output (the
// competition's pass@2) when the task gives it.
func DescribeARCResult(r ARCResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ARC task %s", r.Task)
	for _, t := range r.Tests {
		fmt.Fprintf(&b, "\ntest %d: ", t.Index)
		switch {
		case !t.Answered:
			b.WriteString("no prediction")
			continue
		case !t.HasOutput:
			b.WriteString("no expected output to compare")
		case t.Attempts.Attempt1.Equal(t.Expected):
			b.WriteString("correct: attempt 1 is the expected output")
		case t.Correct:
			b.WriteString("correct: attempt 2 is the expected output")
		default:
			b.WriteString("wrong: neither attempt is the expected output")
		}
		a := t.Attempts
		fmt.Fprintf(&b, "\n  attempt 1 (%dx%d), attempt 2 (%dx%d):\n%s", a.Attempt1.H, a.Attempt1.W, a.Attempt2.H, a.Attempt2.W, indent(sideBySide("   |   ", a.Attempt1, a.Attempt2)))
	}
	return b.String()
}
