package data

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Set is one set of one split of one dataset directory: the five arrays of
// docs/data.md#layout, validated against each other on open. Inputs and Labels
// are memory-mapped [examples, seq_len]; the index arrays are small and
// live on the heap as int32.
type Set struct {
	// Name is the set's name in the merged dataset: the file prefix for the
	// first directory, prefix + directory number after it (the reference's
	// naming, so metrics keep its names).
	Name string
	// Path is the file prefix, DIR/split/set, for error messages.
	Path   string
	Inputs *Array // [examples, seq_len], any integer dtype
	Labels *Array // [examples, seq_len], any integer dtype
	// PuzzleIdentifiers [puzzles] already offset by the identifiers of the
	// directories merged before this one.
	PuzzleIdentifiers []int32
	PuzzleIndices     []int32 // [puzzles+1] example ranges
	GroupIndices      []int32 // [groups+1] puzzle ranges
}

// NumExamples, NumPuzzles and NumGroups size the set.
func (s *Set) NumExamples() int { return s.Inputs.Shape[0] }

// NumPuzzles is the number of puzzles (rows of puzzle_identifiers).
func (s *Set) NumPuzzles() int { return len(s.PuzzleIdentifiers) }

// NumGroups is the number of groups (an original and its augmentations).
func (s *Set) NumGroups() int { return len(s.GroupIndices) - 1 }

// Dataset is one split (train or test) of one or more dataset directories
// merged as docs/data.md#merging-directories says: the metadata must
// agree, counts are summed, and each directory's puzzle identifiers are
// offset past those of the directories before it so datasets never share
// embedding rows.
type Dataset struct {
	Split string
	Dirs  []string
	// Meta is the merged metadata: num_puzzle_identifiers, total_groups and
	// total_puzzles summed, mean_puzzle_examples weighted by total_puzzles.
	Meta Metadata
	// Sets in iteration order: for each set name, each directory in turn.
	Sets []*Set
	// Identifiers are the merged puzzle names by (offset) identifier.
	Identifiers []string
	// IdentifierOffsets[i] is added to directory i's identifiers.
	IdentifierOffsets []int
}

// Open opens split ("train" or "test") of the dataset directories dirs,
// memory-maps inputs and labels and checks everything that can be checked
// without reading every token (data check does that).
func Open(split string, dirs ...string) (_ *Dataset, err error) {
	if len(dirs) == 0 {
		return nil, errors.New("data: no dataset directory given")
	}
	ds := &Dataset{Split: split, Dirs: dirs}
	defer func() {
		if err != nil {
			ds.Close() // unmap the sets opened before the failure
		}
	}()
	metas := make([]Metadata, len(dirs))
	for i, dir := range dirs {
		if metas[i], err = ReadMetadata(filepath.Join(dir, split)); err != nil {
			return nil, err
		}
		if i > 0 {
			if err := agree(metas[0], metas[i], dirs[0], dir); err != nil {
				return nil, err
			}
		}
		ids, err := ReadIdentifiers(dir)
		if err != nil {
			return nil, err
		}
		if len(ids) != metas[i].NumPuzzleIdentifiers {
			return nil, fmt.Errorf("%s: %d names but %s says num_puzzle_identifiers %d", filepath.Join(dir, "identifiers.json"),
				len(ids), filepath.Join(dir, split, "dataset.json"), metas[i].NumPuzzleIdentifiers)
		}
		ds.IdentifierOffsets = append(ds.IdentifierOffsets, len(ds.Identifiers))
		ds.Identifiers = append(ds.Identifiers, ids...)
	}
	ds.Meta = mergeMetadata(metas)
	for _, name := range ds.Meta.Sets {
		for i, dir := range dirs {
			setName := name
			if i > 0 {
				setName += strconv.Itoa(i)
			}
			s, err := openSet(filepath.Join(dir, split), name, setName, metas[i], int32(ds.IdentifierOffsets[i]))
			if err != nil {
				return nil, err
			}
			ds.Sets = append(ds.Sets, s)
		}
	}
	if err := checkTotals(ds, metas); err != nil {
		return nil, err
	}
	return ds, nil
}

// checkTotals cross-checks the counts of each directory's dataset.json
// against its arrays, because the trainer plans its steps from them
// (total_groups * mean_puzzle_examples examples per epoch): total_groups
// must equal the groups of the group_indices files, mean_puzzle_examples
// the examples per puzzle of the puzzle_indices files, and total_puzzles
// lie between the groups and the puzzles (the Sudoku and Maze builders
// count only original puzzles there, ARC every version; docs/data.md#builders).
// Set files in the split directory that sets does not list are refused
// too: they would be silently ignored.
func checkTotals(ds *Dataset, metas []Metadata) error {
	per := len(ds.Dirs)
	for i, dir := range ds.Dirs {
		meta := filepath.Join(dir, ds.Split, "dataset.json")
		m := metas[i]
		groups, puzzles, examples := 0, 0, 0
		for j := i; j < len(ds.Sets); j += per {
			groups += ds.Sets[j].NumGroups()
			puzzles += ds.Sets[j].NumPuzzles()
			examples += ds.Sets[j].NumExamples()
		}
		if groups != m.TotalGroups {
			return fmt.Errorf("%s: total_groups %d but the group_indices files hold %d groups", meta, m.TotalGroups, groups)
		}
		if m.TotalPuzzles < groups || m.TotalPuzzles > puzzles {
			return fmt.Errorf("%s: total_puzzles %d but the arrays hold %d groups of %d puzzles (want a count between them)",
				meta, m.TotalPuzzles, groups, puzzles)
		}
		if puzzles > 0 {
			mean := float64(examples) / float64(puzzles)
			if math.Abs(m.MeanPuzzleExamples-mean) > 1e-6*mean {
				return fmt.Errorf("%s: mean_puzzle_examples %v but the puzzle_indices files hold %d examples in %d puzzles (%v per puzzle)",
					meta, m.MeanPuzzleExamples, examples, puzzles, mean)
			}
		}
		if err := checkListedSets(filepath.Join(dir, ds.Split), m.Sets, meta); err != nil {
			return err
		}
	}
	return nil
}

// checkListedSets refuses an inputs file of a set that dataset.json's
// sets does not name.
func checkListedSets(splitDir string, sets []string, meta string) error {
	found, err := filepath.Glob(filepath.Join(globEscape(splitDir), "*__inputs.npy"))
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, s := range sets {
		listed[s] = true
	}
	for _, f := range found {
		name := strings.TrimSuffix(filepath.Base(f), "__inputs.npy")
		if !listed[name] {
			return fmt.Errorf("%s: sets %v does not list set %q, whose files are in %s", meta, sets, name, splitDir)
		}
	}
	return nil
}

// globEscape quotes the pattern characters of a literal path.
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// agree checks the fields merged directories must share.
func agree(a, b Metadata, dirA, dirB string) error {
	bad := func(field string, x, y any) error {
		return fmt.Errorf("data: %w: %s is %v in %s but %v in %s", errMismatch, field, x, dirA, y, dirB)
	}
	ia, ib := "null", "null"
	if a.IgnoreLabelID != nil {
		ia = strconv.Itoa(*a.IgnoreLabelID)
	}
	if b.IgnoreLabelID != nil {
		ib = strconv.Itoa(*b.IgnoreLabelID)
	}
	switch {
	case a.SeqLen != b.SeqLen:
		return bad("seq_len", a.SeqLen, b.SeqLen)
	case a.VocabSize != b.VocabSize:
		return bad("vocab_size", a.VocabSize, b.VocabSize)
	case a.PadID != b.PadID:
		return bad("pad_id", a.PadID, b.PadID)
	case ia != ib:
		return bad("ignore_label_id", ia, ib)
	case a.BlankIdentifierID != b.BlankIdentifierID:
		return bad("blank_identifier_id", a.BlankIdentifierID, b.BlankIdentifierID)
	case a.NumPuzzleIdentifiers != b.NumPuzzleIdentifiers:
		return bad("num_puzzle_identifiers", a.NumPuzzleIdentifiers, b.NumPuzzleIdentifiers)
	case fmt.Sprint(a.Sets) != fmt.Sprint(b.Sets):
		return bad("sets", a.Sets, b.Sets)
	}
	return nil
}

// mergeMetadata sums the counts and weights mean_puzzle_examples by
// total_puzzles, as the reference does.
func mergeMetadata(ms []Metadata) Metadata {
	m := ms[0]
	m.Sets = append([]string(nil), ms[0].Sets...)
	if len(ms) == 1 {
		return m
	}
	m.NumPuzzleIdentifiers, m.TotalGroups, m.TotalPuzzles = 0, 0, 0
	weighted := 0.0
	for _, x := range ms {
		m.NumPuzzleIdentifiers += x.NumPuzzleIdentifiers
		m.TotalGroups += x.TotalGroups
		m.TotalPuzzles += x.TotalPuzzles
		weighted += x.MeanPuzzleExamples * float64(x.TotalPuzzles)
	}
	if m.TotalPuzzles > 0 {
		m.MeanPuzzleExamples = weighted / float64(m.TotalPuzzles)
	}
	return m
}

// openSet opens and cross-checks the five files of one set.
func openSet(splitDir, fileSet, name string, m Metadata, idOffset int32) (_ *Set, err error) {
	prefix := filepath.Join(splitDir, fileSet)
	s := &Set{Name: name, Path: prefix}
	defer func() {
		if err != nil {
			s.close() // unmap whatever was opened before the failure
		}
	}()
	file := func(field string) string { return prefix + "__" + field + ".npy" }
	if s.Inputs, err = OpenNPY(file("inputs")); err != nil {
		return nil, err
	}
	if s.Labels, err = OpenNPY(file("labels")); err != nil {
		return nil, err
	}
	for _, x := range []struct {
		a    *Array
		path string
	}{{s.Inputs, file("inputs")}, {s.Labels, file("labels")}} {
		if len(x.a.Shape) != 2 || x.a.Shape[1] != m.SeqLen {
			return nil, fmt.Errorf("%s: shape %v, want [examples, %d] (seq_len)", x.path, x.a.Shape, m.SeqLen)
		}
	}
	if s.Labels.Shape[0] != s.Inputs.Shape[0] {
		return nil, fmt.Errorf("%s: %d examples but %s has %d", file("labels"), s.Labels.Shape[0], file("inputs"), s.Inputs.Shape[0])
	}
	readIdx := func(field string) ([]int32, error) {
		a, err := ReadNPY(file(field))
		if err != nil {
			return nil, err
		}
		if a.DType != Int32 || len(a.Shape) != 1 {
			return nil, fmt.Errorf("%s: %s array of shape %v, want a 1-D int32 array", file(field), a.DType, a.Shape)
		}
		return a.Int32s(), nil
	}
	if s.PuzzleIdentifiers, err = readIdx("puzzle_identifiers"); err != nil {
		return nil, err
	}
	if s.PuzzleIndices, err = readIdx("puzzle_indices"); err != nil {
		return nil, err
	}
	if s.GroupIndices, err = readIdx("group_indices"); err != nil {
		return nil, err
	}
	if len(s.PuzzleIndices) != len(s.PuzzleIdentifiers)+1 {
		return nil, fmt.Errorf("%s: %d entries, want puzzles+1 = %d (from puzzle_identifiers)", file("puzzle_indices"), len(s.PuzzleIndices), len(s.PuzzleIdentifiers)+1)
	}
	if err := checkIndices(s.PuzzleIndices, s.NumExamples(), file("puzzle_indices"), "examples"); err != nil {
		return nil, err
	}
	if err := checkIndices(s.GroupIndices, s.NumPuzzles(), file("group_indices"), "puzzles"); err != nil {
		return nil, err
	}
	for i, id := range s.PuzzleIdentifiers {
		if id < 0 || int(id) >= m.NumPuzzleIdentifiers {
			return nil, fmt.Errorf("%s: puzzle %d has identifier %d outside 0..%d (num_puzzle_identifiers)", file("puzzle_identifiers"), i, id, m.NumPuzzleIdentifiers-1)
		}
		s.PuzzleIdentifiers[i] = id + idOffset
	}
	return s, nil
}

// checkIndices checks a range-index array: starts at 0, strictly
// increasing (no empty puzzle or group), ends at total.
func checkIndices(idx []int32, total int, path, what string) error {
	if len(idx) == 0 || idx[0] != 0 {
		return fmt.Errorf("%s: must start with 0", path)
	}
	for i := 1; i < len(idx); i++ {
		if idx[i] <= idx[i-1] {
			return fmt.Errorf("%s: not increasing at entry %d (%d after %d)", path, i, idx[i], idx[i-1])
		}
	}
	if int(idx[len(idx)-1]) != total {
		return fmt.Errorf("%s: ends at %d but there are %d %s", path, idx[len(idx)-1], total, what)
	}
	return nil
}

func (s *Set) close() error {
	var errs []error
	if s.Inputs != nil {
		errs = append(errs, s.Inputs.Close())
	}
	if s.Labels != nil {
		errs = append(errs, s.Labels.Close())
	}
	return errors.Join(errs...)
}

// Close unmaps every set; the dataset must not be used after.
func (d *Dataset) Close() error {
	if d == nil {
		return nil
	}
	var errs []error
	for _, s := range d.Sets {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}

// Exists reports whether DIR/split/dataset.json exists, for callers that
// treat a missing test split as "no evaluation".
func Exists(dir, split string) bool {
	_, err := os.Stat(filepath.Join(dir, split, "dataset.json"))
	return err == nil
}
