package build

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/arc"
)

// ARC layout constants (docs/data.md#arc, package puzzle's ARC constants): 30x30
// canvas, PAD 0, end-of-grid marker 1, colours 0..9 as tokens 2..11.
const (
	arcSeqLen  = puzzle.ARCSeqLen
	arcVocab   = puzzle.ARCVocab
	arcRetries = 5 // candidates tried per wanted augmentation
)

// ARCOptions configures BuildARC.
type ARCOptions struct {
	Out   string
	Force bool
	// Prefix of the task files: <Prefix>_<subset>_challenges.json.
	Prefix string
	// Subsets in order, e.g. training, evaluation, concept.
	Subsets []string
	// TestSets names the subsets whose test pairs form the test split.
	TestSets []string
	// NumAug accepted augmentations wanted per puzzle.
	NumAug int
	Seed   uint64
	Log    io.Writer
}

// arcPuzzle is one original puzzle with its accepted augmentations; grids
// of augmented versions are recomputed when written, so a 1000x build
// holds only the augmentation parameters in memory.
type arcPuzzle struct {
	name        string
	train, test []arc.Pair // test is empty unless the puzzle is in a test set
	augs        []arc.Aug  // Identity first
}

// ARCStats reports what BuildARC wrote.
type ARCStats struct {
	Puzzles        int // original puzzles
	TestPuzzles    int // originals in the test sets
	Identifiers    int // including <blank>
	TrainExamples  int
	TestExamples   int
	ShortAugmented int // puzzles that got fewer augmentations than asked
}

// BuildARC builds an ARC dataset from task files. Puzzles of every subset
// are shuffled (seeded); a test-set puzzle sends its train pairs to the
// train split and its test pairs to the test split, other puzzles go
// wholly to the train split. Each puzzle gets up to NumAug distinct
// augmentations (dihedral + colour permutation, duplicates of an accepted
// version rejected, at most 5*NumAug candidates); training examples are
// translated at random except one per puzzle version.
func BuildARC(o ARCOptions) (ARCStats, error) {
	return BuildARCContext(context.Background(), o)
}

// BuildARCContext is BuildARC stopping when ctx ends: checked per puzzle
// while augmenting and per puzzle version while writing (a few thousand
// rows at most), it returns an error wrapping ctx.Err() and leaves
// neither o.Out nor its temporary directory (gigabytes at 1000
// augmentations) behind.
func BuildARCContext(ctx context.Context, o ARCOptions) (_ ARCStats, err error) {
	var st ARCStats
	if o.NumAug < 0 || len(o.Subsets) == 0 {
		return st, errors.New("build: need subsets and a non-negative augmentation count")
	}
	isTest := map[string]bool{}
	for _, s := range o.TestSets {
		isTest[s] = true
	}
	r := data.NewRNG(o.Seed, 2)
	var puzzles []*arcPuzzle
	var testTasks []arc.NamedTask
	seen := map[string]string{}
	for _, subset := range o.Subsets {
		if err := interrupted(ctx, "arc dataset %s (reading subset %s)", o.Out, subset); err != nil {
			return st, err
		}
		tasks, err := arc.LoadSubset(o.Prefix, subset)
		if err != nil {
			return st, err
		}
		// A fixed order before the seeded shuffle: sorted names.
		sort.Slice(tasks, func(i, j int) bool { return tasks[i].Name < tasks[j].Name })
		r.Shuffle(len(tasks), func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
		for _, t := range tasks {
			if prev, dup := seen[t.Name]; dup {
				return st, fmt.Errorf("build: task %s is in both %s and %s", t.Name, prev, subset)
			}
			seen[t.Name] = subset
			p := &arcPuzzle{name: t.Name}
			if isTest[subset] {
				p.train, p.test = t.Train, t.Test
				testTasks = append(testTasks, t)
			} else {
				p.train = append(append([]arc.Pair(nil), t.Train...), t.Test...)
			}
			puzzles = append(puzzles, p)
		}
	}
	pr := newProgress(o.Log, "arc augment", len(puzzles))
	for i, p := range puzzles {
		if err := interrupted(ctx, "arc dataset %s (augmenting puzzle %d of %d)", o.Out, i, len(puzzles)); err != nil {
			return st, err
		}
		p.augs = augmentARC(r, p, o.NumAug)
		if len(p.augs) < o.NumAug+1 {
			st.ShortAugmented++
		}
		pr.update(i + 1)
	}
	pr.finish()
	if o.NumAug > 0 && o.Log != nil && st.ShortAugmented > 0 {
		fmt.Fprintf(o.Log, "arc: %d puzzles got fewer than %d augmentations (too few distinct versions)\n", st.ShortAugmented, o.NumAug)
	}

	// Identifiers in order of first appearance: train split, then test.
	ids := map[string]int32{}
	names := []string{"<blank>"}
	for _, split := range []bool{false, true} {
		for _, p := range puzzles {
			if len(p.pairs(split)) == 0 {
				continue
			}
			for _, a := range p.augs {
				n := augName(p.name, a)
				if _, ok := ids[n]; !ok {
					ids[n] = int32(len(names))
					names = append(names, n)
				}
			}
		}
	}
	stg, err := newStage(o.Out, o.Force)
	if err != nil {
		return st, err
	}
	defer func() {
		if err != nil {
			stg.abort()
		}
	}()
	fail := func(err error) (ARCStats, error) { return st, err }
	for _, split := range []bool{false, true} {
		name := "train"
		if split {
			name = "test"
		}
		dir, err := stg.split(name)
		if err != nil {
			return fail(err)
		}
		n, err := writeARCSplit(ctx, o.Out, dir, r, puzzles, split, ids, len(names), o.Log)
		if err != nil {
			return fail(err)
		}
		if split {
			st.TestExamples = n
		} else {
			st.TrainExamples = n
		}
	}
	if err := data.WriteIdentifiers(stg.dir, names); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(stg.dir, "test_puzzles.json"), arc.MarshalTasksPy(testTasks), 0o644); err != nil {
		return fail(err)
	}
	st.Puzzles, st.TestPuzzles, st.Identifiers = len(puzzles), len(testTasks), len(names)
	if err := interrupted(ctx, "arc dataset %s", o.Out); err != nil {
		return fail(err)
	}
	return st, stg.commit()
}

func augName(name string, a arc.Aug) string { return puzzle.ARCName(name, a) }

// pairs returns the puzzle's pairs in the test split (test true) or train.
func (p *arcPuzzle) pairs(test bool) []arc.Pair {
	if test {
		return p.test
	}
	return p.train
}

// augmentARC draws augmentations until numAug distinct versions are
// accepted or 5*numAug candidates are spent. Versions are compared as the
// sorted multiset of all their (input, output) pairs across both splits.
func augmentARC(r *data.RNG, p *arcPuzzle, numAug int) []arc.Aug {
	out := []arc.Aug{arc.Identity}
	if numAug == 0 {
		return out
	}
	all := append(append([]arc.Pair(nil), p.train...), p.test...)
	seen := map[[32]byte]bool{versionKey(all, arc.Identity): true}
	for trial := 0; trial < arcRetries*numAug && len(out) < numAug+1; trial++ {
		a := puzzle.DrawARCAug(r)
		k := versionKey(all, a)
		if !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out
}

// versionKey hashes the sorted (input, output) pair keys of a version.
func versionKey(pairs []arc.Pair, a arc.Aug) [32]byte {
	keys := make([]string, len(pairs))
	for i, p := range pairs {
		keys[i] = a.Apply(p.Input).Key() + "|" + a.Apply(p.Output).Key()
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s", len(k), k)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// writeARCSplit streams one split's arrays and writes its dataset.json.
func writeARCSplit(ctx context.Context, out, dir string, r *data.RNG, puzzles []*arcPuzzle, test bool, ids map[string]int32, numIDs int, log io.Writer) (int, error) {
	examples, nPuzzles, groups := 0, 0, 0
	for _, p := range puzzles {
		if k := len(p.pairs(test)); k > 0 {
			examples += k * len(p.augs)
			nPuzzles += len(p.augs)
			groups++
		}
	}
	file := func(f string) string { return filepath.Join(dir, "all__"+f+".npy") }
	inW, err := data.CreateNPY(file("inputs"), data.Uint8, []int{examples, arcSeqLen})
	if err != nil {
		return 0, err
	}
	labW, err := data.CreateNPY(file("labels"), data.Uint8, []int{examples, arcSeqLen})
	if err != nil {
		inW.Close()
		return 0, err
	}
	pidx, gidx, pids := []int32{0}, []int32{0}, make([]int32, 0, nPuzzles)
	in, lab := make([]byte, arcSeqLen), make([]byte, arcSeqLen)
	written := 0
	what := "arc train split"
	if test {
		what = "arc test split"
	}
	pr := newProgress(log, what, examples)
	var werr error
	for _, p := range puzzles {
		pairs := p.pairs(test)
		if len(pairs) == 0 {
			continue
		}
		for _, a := range p.augs {
			if werr == nil {
				werr = interrupted(ctx, "arc dataset %s (%s: example %d of %d)", out, what, written, examples)
			}
			if werr != nil {
				break
			}
			// One example per version stays at (0, 0) in the train split.
			fixed := -1
			if !test {
				fixed = r.IntN(len(pairs))
			}
			for i, pair := range pairs {
				gi, go_ := a.Apply(pair.Input), a.Apply(pair.Output)
				row, col := 0, 0
				if !test && i != fixed {
					row = r.IntN(arc.MaxSize - max(gi.H, go_.H) + 1)
					col = r.IntN(arc.MaxSize - max(gi.W, go_.W) + 1)
				}
				EncodeARCGrid(in, gi, row, col)
				EncodeARCGrid(lab, go_, row, col)
				if _, err := inW.Write(in); err != nil && werr == nil {
					werr = err
				}
				if _, err := labW.Write(lab); err != nil && werr == nil {
					werr = err
				}
				written++
			}
			pidx = append(pidx, int32(written))
			pids = append(pids, ids[augName(p.name, a)])
		}
		if werr != nil {
			break
		}
		gidx = append(gidx, int32(len(pids)))
		pr.update(written)
	}
	if werr == nil {
		pr.finish()
	}
	// An interrupted split is short of its declared shape; the close error
	// saying so would only hide the interruption.
	if cerr := errors.Join(inW.Close(), labW.Close()); werr != nil {
		return 0, werr
	} else if cerr != nil {
		return 0, cerr
	}
	for _, f := range []struct {
		name string
		v    []int32
	}{{"puzzle_identifiers", pids}, {"puzzle_indices", pidx}, {"group_indices", gidx}} {
		if err := data.WriteNPYFile(file(f.name), data.Int32Array(f.v)); err != nil {
			return 0, err
		}
	}
	zero := 0
	mean := 0.0
	if nPuzzles > 0 {
		mean = float64(examples) / float64(nPuzzles)
	}
	return examples, data.WriteMetadata(dir, data.Metadata{PadID: 0, IgnoreLabelID: &zero, BlankIdentifierID: 0,
		VocabSize: arcVocab, SeqLen: arcSeqLen, NumPuzzleIdentifiers: numIDs, TotalGroups: groups,
		MeanPuzzleExamples: mean, TotalPuzzles: nPuzzles, Sets: []string{"all"}})
}

// EncodeARCGrid writes grid g at offset (row, col) of a 30x30 token canvas
// dst (puzzle.EncodeARCGrid): colours as tokens 2..11, the end-of-grid
// marker on row row+H (columns col..col+W-1) and on column col+W (rows
// row..row+H-1) where they fit, everything else PAD; the corner (row+H,
// col+W) stays PAD.
func EncodeARCGrid(dst []byte, g arc.Grid, row, col int) { puzzle.EncodeARCGrid(dst, g, row, col) }
