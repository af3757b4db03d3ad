package data

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// IgnoreLabel is the label value that carries no loss in a batch (the
// reference's IGNORE_LABEL_ID); labels equal to ignore_label_id become it.
const IgnoreLabel = -100

// ErrEndOfPass is returned by TrainIterator.Next after the last batch of a
// pass (EpochsPerPass epochs over every set); the next call starts the
// following pass. It is io.EOF so simple loops can stop on it.
var ErrEndOfPass = io.EOF

// Batch is one replica's slice of a global batch, as the trainer consumes
// it. Inputs and Labels are [B*L] row-major with B the local batch size;
// PuzzleIdentifiers is [B]. The slices are reused by the next call to Next
// that is given the same Batch.
type Batch struct {
	Set               string
	Inputs            []int32 // [B*L] tokens; padding rows hold pad_id
	Labels            []int32 // [B*L] tokens; IgnoreLabel where unsupervised or padding
	PuzzleIdentifiers []int32 // [B]; padding rows hold blank_identifier_id
	// GlobalEffective is the number of real examples in the whole global
	// batch (the reference's global_effective_batch_size): the global batch
	// size in training, less for the last test batch.
	GlobalEffective int
	// Real is how many leading rows of this replica's slice are real
	// examples; rows from Real on are padding.
	Real int
}

// Sharding says which slice of each global batch this replica takes:
// rank r of R gets rows [r*B/R, (r+1)*B/R).
type Sharding struct {
	GlobalBatchSize int
	Rank            int
	WorldSize       int
}

// LocalBatchSize checks the sharding and returns B/R.
func (s Sharding) LocalBatchSize() (int, error) {
	w := s.WorldSize
	if w == 0 {
		w = 1
	}
	switch {
	case s.GlobalBatchSize <= 0:
		return 0, fmt.Errorf("data: global batch size %d must be positive", s.GlobalBatchSize)
	case w < 0 || s.Rank < 0 || s.Rank >= w:
		return 0, fmt.Errorf("data: rank %d outside world size %d", s.Rank, w)
	case s.GlobalBatchSize%w != 0:
		return 0, fmt.Errorf("data: global batch size %d is not divisible by the %d replicas", s.GlobalBatchSize, w)
	}
	return s.GlobalBatchSize / w, nil
}

// assembler copies examples into batch rows, casting to int32, checking
// the vocabulary and mapping ignore_label_id to IgnoreLabel.
type assembler struct {
	meta  Metadata
	local int
}

func (a *assembler) reset(b *Batch, set string) {
	n := a.local * a.meta.SeqLen
	if cap(b.Inputs) < n {
		b.Inputs, b.Labels = make([]int32, n), make([]int32, n)
	}
	if cap(b.PuzzleIdentifiers) < a.local {
		b.PuzzleIdentifiers = make([]int32, a.local)
	}
	b.Inputs, b.Labels, b.PuzzleIdentifiers = b.Inputs[:n], b.Labels[:n], b.PuzzleIdentifiers[:a.local]
	b.Set = set
}

// row fills batch row j with example ex of s and puzzle identifier id.
func (a *assembler) row(b *Batch, j int, s *Set, ex int, id int32) error {
	L := a.meta.SeqLen
	in, lab := b.Inputs[j*L:(j+1)*L], b.Labels[j*L:(j+1)*L]
	if err := copyTokens(in, s.Inputs, ex*L, a.meta.VocabSize, -1); err != nil {
		return fmt.Errorf("%s__inputs.npy: example %d %w", s.Path, ex, err)
	}
	ignore := int32(-1)
	if a.meta.IgnoreLabelID != nil {
		ignore = int32(*a.meta.IgnoreLabelID)
	}
	if err := copyTokens(lab, s.Labels, ex*L, a.meta.VocabSize, ignore); err != nil {
		return fmt.Errorf("%s__labels.npy: example %d %w", s.Path, ex, err)
	}
	b.PuzzleIdentifiers[j] = id
	return nil
}

// copyTokens casts elements [off, off+len(dst)) of arr into dst, checks
// them against the vocabulary and maps ignore (when >= 0) to IgnoreLabel.
// uint8, the builders' dtype, takes a fused single pass: batch assembly
// touches every token of every step.
func copyTokens(dst []int32, arr *Array, off, vocab int, ignore int32) error {
	if arr.DType == Uint8 {
		src := arr.data[off : off+len(dst)]
		for k, v := range src {
			t := int32(v)
			if int(v) >= vocab {
				return fmt.Errorf("position %d: token %d outside the vocabulary 0..%d", k, v, vocab-1)
			}
			if t == ignore {
				t = IgnoreLabel
			}
			dst[k] = t
		}
		return nil
	}
	arr.CopyInt32(dst, off)
	if err := checkTokens(arr, off, dst, vocab); err != nil {
		return err
	}
	if ignore >= 0 {
		for k, v := range dst {
			if v == ignore {
				dst[k] = IgnoreLabel
			}
		}
	}
	return nil
}

// pad fills rows [from, local) with padding.
func (a *assembler) pad(b *Batch, from int) {
	L := a.meta.SeqLen
	for k := from * L; k < a.local*L; k++ {
		b.Inputs[k], b.Labels[k] = int32(a.meta.PadID), IgnoreLabel
	}
	for j := from; j < a.local; j++ {
		b.PuzzleIdentifiers[j] = int32(a.meta.BlankIdentifierID)
	}
}

// TrainConfig sets up the training order.
type TrainConfig struct {
	Sharding
	// Seed makes the order reproducible; every replica must use the same.
	Seed uint64
	// EpochsPerPass is the number of epochs drawn per pass (the reference's
	// epochs_per_iter, i.e. eval_interval); at least 1.
	EpochsPerPass int
}

// TrainState is the complete position of a TrainIterator: saved with a
// checkpoint and given to Restore, it makes the iterator yield exactly the
// batches it would have yielded without the interruption. It marshals to
// JSON as is.
type TrainState struct {
	// Seed, GlobalBatchSize and EpochsPerPass are the settings the state
	// belongs to; Restore refuses a state made under other settings. The
	// world size may change: every replica draws the whole global batch.
	Seed            uint64 `json:"seed"`
	GlobalBatchSize int    `json:"global_batch_size"`
	EpochsPerPass   int    `json:"epochs_per_pass"`
	// Iters counts (pass, set) traversals started, like the reference's
	// _iters; it keys the random streams of the current traversal.
	Iters int64 `json:"iters"`
	// Pass counts completed passes.
	Pass int64 `json:"pass"`
	// Set indexes Dataset.Sets within the pass; Started says whether its
	// traversal has begun (its streams seeded).
	Set     int  `json:"set"`
	Started bool `json:"started"`
	// Epoch within the pass, and Pos the next position in that epoch's
	// group permutation.
	Epoch int `json:"epoch"`
	Pos   int `json:"pos"`
	// Batches counts batches yielded since the start (informational), and
	// PassBatches those of the current pass.
	Batches     int64 `json:"batches"`
	PassBatches int64 `json:"pass_batches"`
	// RNG is the state of the puzzle/example draws of this traversal.
	RNG []byte `json:"rng"`
}

// TrainIterator yields training batches in the order of
// docs/data.md#training-order: per pass and
// set, a group permutation per epoch, concatenated; each batch takes the
// next group, a random puzzle of it and a random subset, without
// replacement and in random order, of as many of its examples as still
// fit; the last incomplete batch is dropped. Permutations come from a
// generator keyed by (seed, traversal, epoch), so only the current epoch's
// permutation is held and a restored iterator regenerates it.
type TrainIterator struct {
	ds    *Dataset
	cfg   TrainConfig
	asm   assembler
	st    TrainState
	order []int32
	rng   *RNG
	ex    []int   // [global batch] example index per row
	pz    []int32 // [global batch] puzzle index per row
	pick  []int   // scratch for subset draws
}

// Train returns a training iterator over all sets of d, at the start.
func (d *Dataset) Train(cfg TrainConfig) (*TrainIterator, error) {
	local, err := cfg.LocalBatchSize()
	if err != nil {
		return nil, err
	}
	if cfg.EpochsPerPass < 1 {
		return nil, fmt.Errorf("data: epochs per pass %d must be at least 1", cfg.EpochsPerPass)
	}
	it := &TrainIterator{ds: d, cfg: cfg, asm: assembler{d.Meta, local},
		ex: make([]int, cfg.GlobalBatchSize), pz: make([]int32, cfg.GlobalBatchSize)}
	it.st = TrainState{Seed: cfg.Seed, GlobalBatchSize: cfg.GlobalBatchSize, EpochsPerPass: cfg.EpochsPerPass}
	return it, nil
}

// orderRNG keys the permutation of one epoch of one traversal. It uses the
// complemented seed so its streams never coincide with the draw streams.
func (it *TrainIterator) permutation(epoch int) {
	s := it.ds.Sets[it.st.Set]
	r := NewRNG(^it.cfg.Seed, uint64(it.st.Iters)<<32|uint64(epoch))
	g := s.NumGroups()
	if cap(it.order) < g {
		it.order = make([]int32, g)
	}
	it.order = it.order[:g]
	for i := range it.order {
		it.order[i] = int32(i)
	}
	r.Shuffle(g, func(i, j int) { it.order[i], it.order[j] = it.order[j], it.order[i] })
}

// State returns the iterator's position; see TrainState.
func (it *TrainIterator) State() TrainState {
	st := it.st
	st.RNG = nil
	if it.rng != nil {
		st.RNG, _ = it.rng.MarshalBinary() // PCG marshalling cannot fail
	}
	return st
}

// Restore moves the iterator to a position captured by State (possibly by
// another process or replica over the same dataset and settings).
func (it *TrainIterator) Restore(st TrainState) error {
	if st.Seed != it.cfg.Seed || st.GlobalBatchSize != it.cfg.GlobalBatchSize || st.EpochsPerPass != it.cfg.EpochsPerPass {
		return fmt.Errorf("data: train state made with seed %d, global batch %d, epochs per pass %d; iterator has %d, %d, %d",
			st.Seed, st.GlobalBatchSize, st.EpochsPerPass, it.cfg.Seed, it.cfg.GlobalBatchSize, it.cfg.EpochsPerPass)
	}
	if st.Set < 0 || st.Set > len(it.ds.Sets) || st.Epoch < 0 || st.Epoch >= it.cfg.EpochsPerPass || st.Pos < 0 || st.Iters < 0 {
		return errors.New("data: train state out of range for this dataset")
	}
	if st.Started {
		if st.Set >= len(it.ds.Sets) || st.Pos > it.ds.Sets[st.Set].NumGroups() {
			return errors.New("data: train state out of range for this dataset")
		}
		r := &RNG{}
		if err := r.UnmarshalBinary(st.RNG); err != nil {
			return fmt.Errorf("data: train state RNG: %w", err)
		}
		it.rng = r
	} else {
		it.rng = nil
	}
	it.st = st
	it.st.RNG = nil
	if st.Started {
		it.permutation(st.Epoch)
	}
	return nil
}

// Next fills b with this replica's slice of the next global batch. It
// returns ErrEndOfPass once a pass is over; calling it again starts the
// next pass. A fault while reading the memory-mapped files (one truncated
// under the running process) is returned as a *FaultError naming the
// file instead of killing the process.
func (it *TrainIterator) Next(b *Batch) (err error) {
	defer guardFaults()()
	defer recoverFault(&err, it.ds.arrays)
	gb := it.cfg.GlobalBatchSize
	for {
		if it.st.Set >= len(it.ds.Sets) {
			if it.st.PassBatches == 0 {
				// Every later pass would be empty too: say so rather than
				// let a training loop spin on empty passes.
				return fmt.Errorf("data: a pass of %d epochs yields no full batch of %d examples; lower the global batch size",
					it.cfg.EpochsPerPass, it.cfg.GlobalBatchSize)
			}
			it.st.Pass++
			it.st.Set, it.st.Started, it.st.PassBatches = 0, false, 0
			return ErrEndOfPass
		}
		s := it.ds.Sets[it.st.Set]
		if !it.st.Started {
			it.st.Iters++
			it.st.Started, it.st.Epoch, it.st.Pos = true, 0, 0
			it.rng = NewRNG(it.cfg.Seed, uint64(it.st.Iters))
			it.permutation(0)
		}
		n := it.fill(s)
		if n < gb {
			// Drop the last incomplete batch: this set is done for the pass.
			it.st.Set++
			it.st.Started = false
			continue
		}
		it.asm.reset(b, s.Name)
		lo := it.cfg.Rank * it.asm.local
		for j := 0; j < it.asm.local; j++ {
			if err := it.asm.row(b, j, s, it.ex[lo+j], s.PuzzleIdentifiers[it.pz[lo+j]]); err != nil {
				return err
			}
		}
		b.GlobalEffective, b.Real = gb, it.asm.local
		it.st.Batches++
		it.st.PassBatches++
		return nil
	}
}

// fill draws the next global batch's example indices into it.ex and it.pz
// and returns how many it found before the traversal's order ran out.
func (it *TrainIterator) fill(s *Set) int {
	gb, cur := it.cfg.GlobalBatchSize, 0
	for cur < gb {
		if it.st.Pos >= len(it.order) {
			if it.st.Epoch+1 >= it.cfg.EpochsPerPass {
				break
			}
			it.st.Epoch++
			it.st.Pos = 0
			it.permutation(it.st.Epoch)
			continue
		}
		g := it.order[it.st.Pos]
		it.st.Pos++
		p0, p1 := int(s.GroupIndices[g]), int(s.GroupIndices[g+1])
		p := p0 + it.rng.IntN(p1-p0)
		e0, size := int(s.PuzzleIndices[p]), int(s.PuzzleIndices[p+1]-s.PuzzleIndices[p])
		take := min(size, gb-cur)
		// Partial Fisher-Yates: the first `take` slots are a uniform
		// random subset in random order.
		if cap(it.pick) < size {
			it.pick = make([]int, size)
		}
		pick := it.pick[:size]
		for i := range pick {
			pick[i] = i
		}
		for i := 0; i < take; i++ {
			j := i + it.rng.IntN(size-i)
			pick[i], pick[j] = pick[j], pick[i]
			it.ex[cur+i] = e0 + pick[i]
			it.pz[cur+i] = int32(p)
		}
		cur += take
	}
	return cur
}

// TestIterator yields every example of every set in file order, batch by
// batch, the last batch of each set padded.
type TestIterator struct {
	ds    *Dataset
	sh    Sharding
	asm   assembler
	set   int
	start int
}

// Test returns a test-order iterator over all sets of d.
func (d *Dataset) Test(sh Sharding) (*TestIterator, error) {
	local, err := sh.LocalBatchSize()
	if err != nil {
		return nil, err
	}
	return &TestIterator{ds: d, sh: sh, asm: assembler{d.Meta, local}}, nil
}

// Next fills b with this replica's slice of the next test batch, or
// returns io.EOF after the last one. A fault while reading the mapped
// files is returned as a *FaultError, as TrainIterator.Next does.
func (it *TestIterator) Next(b *Batch) (err error) {
	defer guardFaults()()
	defer recoverFault(&err, it.ds.arrays)
	for it.set < len(it.ds.Sets) && it.start >= it.ds.Sets[it.set].NumExamples() {
		it.set++
		it.start = 0
	}
	if it.set >= len(it.ds.Sets) {
		return io.EOF
	}
	s := it.ds.Sets[it.set]
	total, gb, local := s.NumExamples(), it.sh.GlobalBatchSize, it.asm.local
	end := min(total, it.start+gb)
	lo := it.start + it.sh.Rank*local
	hi := min(it.start+(it.sh.Rank+1)*local, end)
	it.asm.reset(b, s.Name)
	real := max(0, hi-lo)
	if real > 0 {
		// The puzzle of example lo: the last puzzle starting at or before it.
		p := sort.Search(len(s.PuzzleIndices), func(i int) bool { return int(s.PuzzleIndices[i]) > lo }) - 1
		for j := 0; j < real; j++ {
			for int(s.PuzzleIndices[p+1]) <= lo+j {
				p++
			}
			if err := it.asm.row(b, j, s, lo+j, s.PuzzleIdentifiers[p]); err != nil {
				return err
			}
		}
	}
	it.asm.pad(b, real)
	b.GlobalEffective, b.Real = end-it.start, real
	it.start += gb
	return nil
}

// checkTokens checks the int32 copy dst of elements [off, off+len(dst)) of
// a against the vocabulary. Types that can exceed int32 are compared with
// the original too, so a wrapped value cannot pass as a valid token.
func checkTokens(a *Array, off int, dst []int32, vocab int) error {
	wide := a.DType == Uint32 || a.DType == Uint64 || a.DType == Int64
	for k, v := range dst {
		if v < 0 || int(v) >= vocab || (wide && a.At(off+k) != int64(v)) {
			return fmt.Errorf("position %d: token %d outside the vocabulary 0..%d", k, a.At(off+k), vocab-1)
		}
	}
	return nil
}
