package arc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/tinyrecursive/trm/internal/safetensors"
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

// maxTaskFileBytes bounds a challenges, solutions or test_puzzles file
// (the largest ARC files are a few MB; a 1000-times augmented
// test_puzzles.json stays far below this).
const maxTaskFileBytes = 1 << 30

// LoadSubset reads <prefix>_<subset>_challenges.json and, when it exists,
// <prefix>_<subset>_solutions.json (test outputs by position); without a
// solutions file every test output is [[0]], as the reference does. Tasks
// come back in file order. Every task needs train and test pairs and every
// grid at least one cell; errors name the file, the line and the task.
// Both files must be regular files.
func LoadSubset(prefix, subset string) ([]NamedTask, error) {
	cpath := prefix + "_" + subset + "_challenges.json"
	b, err := safetensors.ReadRegular(cpath, maxTaskFileBytes)
	if err != nil {
		return nil, err
	}
	tasks, err := decodeOrderedTasks(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cpath, err)
	}
	spath := prefix + "_" + subset + "_solutions.json"
	sb, err := safetensors.ReadRegular(spath, maxTaskFileBytes)
	switch {
	case errors.Is(err, os.ErrNotExist):
		for i := range tasks {
			for j := range tasks[i].Test {
				tasks[i].Test[j].Output = Grid{H: 1, W: 1, Cells: []byte{0}}
			}
		}
		return tasks, nil
	case err != nil:
		return nil, err
	}
	sols := map[string][]Grid{}
	lines := map[string]int{}
	err = decodeOrdered(sb, func(name string, line int, dec *json.Decoder) error {
		var s []Grid
		if err := dec.Decode(&s); err != nil {
			return err
		}
		sols[name], lines[name] = s, line
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spath, err)
	}
	for i, t := range tasks {
		s, ok := sols[t.Name]
		if !ok {
			return nil, fmt.Errorf("%s: no solutions for task %s", spath, t.Name)
		}
		if len(s) != len(t.Test) {
			return nil, fmt.Errorf("%s: line %d: task %s has %d solutions for %d test inputs", spath, lines[t.Name], t.Name, len(s), len(t.Test))
		}
		for j := range t.Test {
			tasks[i].Test[j].Output = s[j]
		}
	}
	return tasks, nil
}

// decodeOrdered walks a JSON object key by key (Go maps would lose the
// order, which is part of test_puzzles.json), giving each value's decoder
// with the line the key is on, for error messages. A key given twice is
// an error: which value a reader keeps is undefined.
func decodeOrdered(b []byte, value func(name string, line int, dec *json.Decoder) error) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	lineAt := func(off int64) int { return 1 + bytes.Count(b[:min(int(off), len(b))], []byte{'\n'}) }
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("want a JSON object of tasks")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("line %d: %w", lineAt(dec.InputOffset()), err)
		}
		line := lineAt(dec.InputOffset())
		name, _ := tok.(string)
		if seen[name] {
			return fmt.Errorf("line %d: task %s given twice", line, name)
		}
		seen[name] = true
		if err := value(name, line, dec); err != nil {
			return fmt.Errorf("line %d: task %s: %w", line, name, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("line %d: %w", lineAt(dec.InputOffset()), err)
	}
	return nil
}

// decodeOrderedTasks decodes a JSON object of tasks in key order; every
// task needs train and test pairs.
func decodeOrderedTasks(b []byte) ([]NamedTask, error) {
	var out []NamedTask
	err := decodeOrdered(b, func(name string, line int, dec *json.Decoder) error {
		var t Task
		if err := dec.Decode(&t); err != nil {
			return err
		}
		if len(t.Train) == 0 || len(t.Test) == 0 {
			return fmt.Errorf("%d train and %d test pairs; want at least one of each", len(t.Train), len(t.Test))
		}
		out = append(out, NamedTask{name, t})
		return nil
	})
	return out, err
}

// DecodeTasks decodes a JSON object of tasks (a challenges file, or a
// test_puzzles.json) in file order, with the checks of LoadSubset; a
// test pair without "output" keeps an empty Output (H == 0).
func DecodeTasks(b []byte) ([]NamedTask, error) { return decodeOrderedTasks(b) }

// LoadTestPuzzles reads a dataset's test_puzzles.json in file order.
func LoadTestPuzzles(path string) ([]NamedTask, error) {
	b, err := safetensors.ReadRegular(path, maxTaskFileBytes)
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
