// Package build writes datasets in the reference layout (docs/data.md):
// Sudoku and Maze from CSV files or from the built-in generators, and ARC
// from the challenge/solution JSON files. Every builder is seeded and
// reproducible, reports progress, and writes into a temporary directory
// that is renamed into place only when complete, so an interrupted build
// never leaves a half-written dataset behind.
//
// Every builder and generator has a variant taking a context.Context
// (BuildARCContext, GenerateSudokus, ...), which the command line cancels
// on SIGINT and SIGTERM: it stops within milliseconds (checks per puzzle,
// row or version written), removes its temporary directory and returns
// an error wrapping ctx.Err() that names what was interrupted. A process
// killed outright (SIGKILL) leaves its temporary directory, named
// ".<out>.tmp-*" beside the output, for the user to delete.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tinyrecursive/trm/trainer/data"
)

// stage is a dataset being written: dir is a fresh temporary directory
// beside the final one (same file system, so the final rename is atomic).
type stage struct {
	dir, out string
	force    bool
}

// newStage creates the temporary directory for out. An existing out is an
// error unless force is set (then it is replaced at commit).
func newStage(out string, force bool) (*stage, error) {
	if out == "" {
		return nil, fmt.Errorf("build: no output directory given")
	}
	if _, err := os.Stat(out); err == nil && !force {
		return nil, fmt.Errorf("build: %s already exists (use --force to replace it)", out)
	}
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return nil, err
	}
	return &stage{dir: dir, out: out, force: force}, nil
}

// split returns (creating it) the temporary directory of a split.
func (s *stage) split(name string) (string, error) {
	d := filepath.Join(s.dir, name)
	return d, os.MkdirAll(d, 0o755)
}

// commit moves the finished dataset into place. A dataset being replaced
// (force) is first renamed aside and deleted only once the new one is in
// place: deleting a large dataset takes seconds, and a process killed
// meanwhile must leave either the old dataset whole or the new one, never
// a half-deleted directory under the output name.
func (s *stage) commit() error {
	if err := os.Chmod(s.dir, 0o755); err != nil { // MkdirTemp makes it 0700
		return err
	}
	if !s.force {
		return os.Rename(s.dir, s.out)
	}
	if _, err := os.Lstat(s.out); os.IsNotExist(err) {
		return os.Rename(s.dir, s.out)
	}
	old, err := os.MkdirTemp(filepath.Dir(filepath.Clean(s.out)), "."+filepath.Base(s.out)+".old-")
	if err != nil {
		return err
	}
	if err := os.Remove(old); err != nil { // only the unique name is wanted
		return err
	}
	if err := os.Rename(s.out, old); err != nil {
		return fmt.Errorf("build: moving the old %s aside: %w", s.out, err)
	}
	if err := os.Rename(s.dir, s.out); err != nil {
		return errors.Join(err, os.Rename(old, s.out))
	}
	return os.RemoveAll(old)
}

// abort removes the temporary directory; called on every failure path,
// cancellation included.
func (s *stage) abort() { os.RemoveAll(s.dir) }

// interrupted returns nil while ctx is live, and once it is done an error
// that names what was stopped and wraps ctx.Err(), so callers can tell an
// interruption (errors.Is(err, context.Canceled)) from a failure.
func interrupted(ctx context.Context, format string, args ...any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("build: %s interrupted: %w", fmt.Sprintf(format, args...), err)
	}
	return nil
}

// progress prints "what: done/total" to w at most every interval, and
// once at the end; w may be nil (silent).
type progress struct {
	w     io.Writer
	what  string
	total int
	last  time.Time
	start time.Time
}

func newProgress(w io.Writer, what string, total int) *progress {
	now := time.Now()
	return &progress{w: w, what: what, total: total, start: now, last: now}
}

func (p *progress) update(done int) {
	if p.w == nil || time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "%s: %d/%d\n", p.what, done, p.total)
}

func (p *progress) finish() {
	if p.w != nil {
		fmt.Fprintf(p.w, "%s: %d done in %.1fs\n", p.what, p.total, time.Since(p.start).Seconds())
	}
}

// Example is one tokenised (input, label) pair of seq_len tokens each.
type Example struct{ Input, Label []byte }

// simpleLayout describes a dataset where every puzzle is one example, all
// puzzles share identifier 0 and a group is an original with its
// augmentations (the Sudoku and Maze layout of docs/data.md#maze).
type simpleLayout struct {
	seqLen, vocab int
}

// writeSimpleSplit writes one split: groups[i] is original i followed by
// its augmentations. total_groups = total_puzzles = number of originals
// and mean_puzzle_examples 1, as the reference writes them.
func writeSimpleSplit(ctx context.Context, what, dir string, lay simpleLayout, groups [][]Example) error {
	var in, lab []byte
	pidx, gidx, ids := []int32{0}, []int32{0}, []int32{}
	for i, g := range groups {
		if err := interrupted(ctx, "writing %s (group %d of %d)", what, i, len(groups)); err != nil {
			return err
		}
		for _, ex := range g {
			if len(ex.Input) != lay.seqLen || len(ex.Label) != lay.seqLen {
				return fmt.Errorf("build: example of %d/%d tokens, want %d", len(ex.Input), len(ex.Label), lay.seqLen)
			}
			in = append(in, ex.Input...)
			lab = append(lab, ex.Label...)
			ids = append(ids, 0)
			pidx = append(pidx, int32(len(ids)))
		}
		gidx = append(gidx, int32(len(ids)))
	}
	n := len(ids)
	ia, err := data.NewArray(data.Uint8, []int{n, lay.seqLen}, in)
	if err != nil {
		return err
	}
	la, err := data.NewArray(data.Uint8, []int{n, lay.seqLen}, lab)
	if err != nil {
		return err
	}
	arrays := data.SetArrays{Inputs: ia, Labels: la, PuzzleIdentifiers: data.Int32Array(ids),
		PuzzleIndices: data.Int32Array(pidx), GroupIndices: data.Int32Array(gidx)}
	if err := data.WriteSet(dir, "all", arrays); err != nil {
		return err
	}
	if err := interrupted(ctx, "writing %s", what); err != nil {
		return err
	}
	zero := 0
	return data.WriteMetadata(dir, data.Metadata{PadID: 0, IgnoreLabelID: &zero, BlankIdentifierID: 0,
		VocabSize: lay.vocab, SeqLen: lay.seqLen, NumPuzzleIdentifiers: 1, TotalGroups: len(groups),
		MeanPuzzleExamples: 1, TotalPuzzles: len(groups), Sets: []string{"all"}})
}

// writeSimple writes a whole Sudoku/Maze-style dataset atomically; when
// ctx ends first, the temporary directory is removed and nothing appears
// at out.
func writeSimple(ctx context.Context, out string, force bool, lay simpleLayout, train, test [][]Example) (err error) {
	st, err := newStage(out, force)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			st.abort()
		}
	}()
	for _, sp := range []struct {
		name   string
		groups [][]Example
	}{{"train", train}, {"test", test}} {
		d, err := st.split(sp.name)
		if err == nil {
			err = writeSimpleSplit(ctx, out+" "+sp.name+" split", d, lay, sp.groups)
		}
		if err != nil {
			return err
		}
	}
	if err := data.WriteIdentifiers(st.dir, []string{"<blank>"}); err != nil {
		return err
	}
	if err := interrupted(ctx, "writing %s", out); err != nil {
		return err
	}
	return st.commit()
}

// subsample draws k of n indices without replacement (all n, in order,
// when k <= 0 or k >= n), seeded; the chosen indices are returned in draw
// order, as the reference's np.random.choice does.
func subsample(r *data.RNG, n, k int) []int {
	if k <= 0 || k >= n {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	p := r.Perm(n)
	return p[:k]
}
