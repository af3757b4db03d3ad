package data

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// SetReport summarises one set found by Check.
type SetReport struct {
	Split    string
	Name     string
	Examples int
	Puzzles  int
	Groups   int
	// InputsDType and LabelsDType are the element types on disk.
	InputsDType, LabelsDType DType
	// Supervised counts label tokens that carry loss (not ignore_label_id).
	Supervised int64
	// DistinctIdentifiers counts the distinct puzzle identifiers used.
	DistinctIdentifiers int
	// MaxToken is the largest token of inputs and labels; every token is
	// checked to be below vocab_size, and a vocab_size far above
	// MaxToken+1 wastes embedding rows.
	MaxToken int32
}

// Check opens every split of dir that exists (train, test) and reads every
// token of every set, which Open deliberately does not do: it returns a
// report per set, or the first problem found, naming the file.
func Check(dir string) ([]SetReport, error) {
	return CheckContext(context.Background(), dir)
}

// checkEvery is how many examples CheckContext reads between two checks
// of its context: about a millisecond of work at ARC's 900 tokens.
const checkEvery = 1024

// CheckContext is Check stopping when ctx ends (checked every checkEvery
// examples and between sets): a check of a multi-gigabyte dataset reads
// every token and takes minutes. The error then names the file and the
// example reached and wraps ctx.Err(); the reports of the sets finished
// before are returned with it.
func CheckContext(ctx context.Context, dir string) ([]SetReport, error) {
	var out []SetReport
	found := false
	for _, split := range []string{"train", "test"} {
		if _, err := os.Stat(filepath.Join(dir, split)); os.IsNotExist(err) {
			continue
		}
		found = true
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("checking %s interrupted before the %s split: %w", dir, split, err)
		}
		ds, err := Open(split, dir)
		if err != nil {
			return out, err
		}
		for _, s := range ds.Sets {
			r, err := checkSet(ctx, ds.Meta, split, s)
			if err != nil {
				ds.Close()
				return out, err
			}
			out = append(out, r)
		}
		if err := ds.Close(); err != nil {
			return out, err
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: neither a train nor a test split directory", dir)
	}
	return out, nil
}

func checkSet(ctx context.Context, m Metadata, split string, s *Set) (_ SetReport, err error) {
	defer guardFaults()()
	defer recoverFault(&err, func() []*Array { return []*Array{s.Inputs, s.Labels} })
	r := SetReport{Split: split, Name: s.Name, Examples: s.NumExamples(), Puzzles: s.NumPuzzles(), Groups: s.NumGroups(),
		InputsDType: s.Inputs.DType, LabelsDType: s.Labels.DType}
	L := m.SeqLen
	row := make([]int32, L)
	for ex := 0; ex < s.NumExamples(); ex++ {
		if ex%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return r, fmt.Errorf("checking %s__inputs.npy interrupted at example %d of %d: %w", s.Path, ex, s.NumExamples(), err)
			}
		}
		s.Inputs.CopyInt32(row, ex*L)
		if err := checkTokens(s.Inputs, ex*L, row, m.VocabSize); err != nil {
			return r, fmt.Errorf("%s__inputs.npy: example %d %w", s.Path, ex, err)
		}
		r.MaxToken = max(r.MaxToken, slices.Max(row))
		s.Labels.CopyInt32(row, ex*L)
		if err := checkTokens(s.Labels, ex*L, row, m.VocabSize); err != nil {
			return r, fmt.Errorf("%s__labels.npy: example %d %w", s.Path, ex, err)
		}
		r.MaxToken = max(r.MaxToken, slices.Max(row))
		for _, v := range row {
			if m.IgnoreLabelID == nil || int(v) != *m.IgnoreLabelID {
				r.Supervised++
			}
		}
	}
	ids := map[int32]bool{}
	for _, id := range s.PuzzleIdentifiers {
		ids[id] = true
	}
	r.DistinctIdentifiers = len(ids)
	return r, nil
}
