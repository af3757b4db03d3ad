package arc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/tinyrecursive/trm/trainer/data"
)

// Pair is one (input, output) example of a task.
type Pair struct {
	Input  Grid `json:"input"`
	Output Grid `json:"output"`
}

// Task is an ARC task: demonstration pairs and test pairs.
type Task struct {
	Train []Pair `json:"train"`
	Test  []Pair `json:"test"`
}

// NamedTask is a task with its id, for order-preserving lists.
type NamedTask struct {
	Name string
	Task
}

// LoadSubset reads <prefix>_<subset>_challenges.json and, when it exists,
// <prefix>_<subset>_solutions.json (test outputs by position); without a
// solutions file every test output is [[0]], as the reference does. Tasks
// come back in file order.
func LoadSubset(prefix, subset string) ([]NamedTask, error) {
	cpath := prefix + "_" + subset + "_challenges.json"
	b, err := os.ReadFile(cpath)
	if err != nil {
		return nil, err
	}
	tasks, err := decodeOrderedTasks(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cpath, err)
	}
	spath := prefix + "_" + subset + "_solutions.json"
	sb, err := os.ReadFile(spath)
	switch {
	case os.IsNotExist(err):
		for i := range tasks {
			for j := range tasks[i].Test {
				tasks[i].Test[j].Output = Grid{H: 1, W: 1, Cells: []byte{0}}
			}
		}
		return tasks, nil
	case err != nil:
		return nil, err
	}
	var sols map[string][]Grid
	if err := json.Unmarshal(sb, &sols); err != nil {
		return nil, fmt.Errorf("%s: %w", spath, err)
	}
	for i, t := range tasks {
		s, ok := sols[t.Name]
		if !ok || len(s) != len(t.Test) {
			return nil, fmt.Errorf("%s: task %s has %d solutions for %d test inputs", spath, t.Name, len(s), len(t.Test))
		}
		for j := range t.Test {
			tasks[i].Test[j].Output = s[j]
		}
	}
	return tasks, nil
}

// decodeOrderedTasks decodes a JSON object of tasks keeping key order
// (Go maps would lose it; the order is part of test_puzzles.json).
func decodeOrderedTasks(b []byte) ([]NamedTask, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("want a JSON object of tasks")
	}
	var out []NamedTask
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var t Task
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("task %s: %w", name, err)
		}
		out = append(out, NamedTask{name, t})
	}
	return out, nil
}

// LoadTestPuzzles reads a dataset's test_puzzles.json in file order.
func LoadTestPuzzles(path string) ([]NamedTask, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := decodeOrderedTasks(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// appendGridPy appends a grid as Python's json.dump writes a list of lists.
func appendGridPy(b []byte, g Grid) []byte {
	b = append(b, '[')
	for i := 0; i < g.H; i++ {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '[')
		for j := 0; j < g.W; j++ {
			if j > 0 {
				b = append(b, ", "...)
			}
			b = strconv.AppendInt(b, int64(g.At(i, j)), 10)
		}
		b = append(b, ']')
	}
	return append(b, ']')
}

func appendPairsPy(b []byte, ps []Pair) []byte {
	b = append(b, '[')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, `{"input": `...)
		b = appendGridPy(b, p.Input)
		b = append(b, `, "output": `...)
		b = appendGridPy(b, p.Output)
		b = append(b, '}')
	}
	return append(b, ']')
}

// MarshalTasksPy renders tasks as the reference's json.dump of its
// test_puzzles dict: {"id": {"train": [...], "test": [...]}, ...}.
func MarshalTasksPy(tasks []NamedTask) []byte {
	b := []byte{'{'}
	for i, t := range tasks {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, data.PythonString(t.Name)...)
		b = append(b, `: {"train": `...)
		b = appendPairsPy(b, t.Train)
		b = append(b, `, "test": `...)
		b = appendPairsPy(b, t.Test)
		b = append(b, '}')
	}
	return append(b, '}')
}
