package puzzle

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tinyrecursive/trm/trainer/data"
)

// DatasetExample is one example of a dataset split with what is needed to
// show it: where it lies, the puzzle it belongs to, its tokens and the
// codec of the dataset's shape.
type DatasetExample struct {
	// Dir and Split locate the dataset split (e.g. data/sudoku, test).
	Dir, Split string
	// Set is the set holding the example (e.g. all).
	Set string
	// Index is the example's position in the split, counting through its
	// sets in order; Count is the number of examples in the split.
	Index, Count int
	// Identifier is the puzzle identifier (row of the puzzle embedding)
	// and Puzzle its name in identifiers.json: "<blank>" for Sudoku and
	// mazes, the task and its augmentation for ARC.
	Identifier int32
	// Puzzle is the name of Identifier.
	Puzzle string
	// Input and Label are the example's tokens; unsupervised label
	// positions (ignore_label_id) are -1.
	Input, Label []int32
	// Codec reads the dataset's puzzles (For of its seq_len and
	// vocab_size).
	Codec Codec
}

// ReadExample reads example index (0-based, through the split's sets in
// order) of split of the dataset directory dir.
func ReadExample(dir, split string, index int) (DatasetExample, error) {
	ds, err := data.Open(split, dir)
	if err != nil {
		return DatasetExample{}, err
	}
	defer ds.Close()
	total := 0
	for _, s := range ds.Sets {
		total += s.NumExamples()
	}
	if index < 0 || index >= total {
		return DatasetExample{}, fmt.Errorf("%s: example %d, the %s split has %d (0..%d)", dir, index, split, total, total-1)
	}
	L := ds.Meta.SeqLen
	e := index
	for _, s := range ds.Sets {
		if e >= s.NumExamples() {
			e -= s.NumExamples()
			continue
		}
		ex := DatasetExample{Dir: dir, Split: split, Set: s.Name, Index: index, Count: total,
			Input: make([]int32, L), Label: make([]int32, L), Codec: For(L, ds.Meta.VocabSize)}
		s.Inputs.CopyInt32(ex.Input, e*L)
		s.Labels.CopyInt32(ex.Label, e*L)
		if ig := ds.Meta.IgnoreLabelID; ig != nil {
			for i, v := range ex.Label {
				if v == int32(*ig) {
					ex.Label[i] = -1
				}
			}
		}
		// The puzzle whose example range [PuzzleIndices[p], PuzzleIndices[p+1]) holds e.
		p := sort.Search(s.NumPuzzles(), func(p int) bool { return int(s.PuzzleIndices[p+1]) > e })
		ex.Identifier = s.PuzzleIdentifiers[p]
		if int(ex.Identifier) < len(ds.Identifiers) {
			ex.Puzzle = ds.Identifiers[ex.Identifier]
		}
		return ex, nil
	}
	panic("unreachable: index checked against the sets' total")
}

// String shows the example: where it is, the puzzle echoed (Describe),
// the label rendered, and the label judged as an answer to the input, a
// check of the dataset itself.
func (e DatasetExample) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s example %d of %d (set %s, puzzle %s, identifier %d)\n", e.Dir, e.Split, e.Index, e.Count, e.Set, e.Puzzle, e.Identifier)
	fmt.Fprintf(&b, "input: %s\n", Describe(e.Codec, e.Input))
	label := make([]int32, len(e.Label))
	for i, v := range e.Label {
		label[i] = max(v, 0) // unsupervised positions show as padding
	}
	fmt.Fprintf(&b, "label:\n%s\n", indent(e.Codec.Render(label)))
	fmt.Fprintf(&b, "label as an answer: %s", e.Codec.Check(e.Input, label, nil))
	return b.String()
}
