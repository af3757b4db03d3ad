package data

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"testing"
)

// toyPuzzleOf maps example index to puzzle index for the toy layout.
func toyPuzzleOf(s *Set) []int {
	out := make([]int, s.NumExamples())
	for p := 0; p < s.NumPuzzles(); p++ {
		for e := s.PuzzleIndices[p]; e < s.PuzzleIndices[p+1]; e++ {
			out[e] = p
		}
	}
	return out
}

func collect(t *testing.T, it interface{ Next(*Batch) error }, max int) []Batch {
	t.Helper()
	var out []Batch
	for len(out) < max {
		var b Batch
		err := it.Next(&b)
		if err == io.EOF {
			out = append(out, Batch{Set: "EOF"})
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestTrainOrder(t *testing.T) {
	dir := t.TempDir()
	// 5 groups; puzzle sizes 1..4 so truncation and subsets both occur.
	groups := [][]int{{1, 2}, {3}, {4, 1, 2}, {2}, {1}}
	writeToy(t, dir, "train", groups, 4)
	ds, err := Open("train", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	s := ds.Sets[0]
	puzzleOf := toyPuzzleOf(s)
	const B = 4
	it, err := ds.Train(TrainConfig{Sharding: Sharding{GlobalBatchSize: B, WorldSize: 1}, Seed: 7, EpochsPerPass: 3})
	if err != nil {
		t.Fatal(err)
	}
	batches := 0
	for {
		var b Batch
		err := it.Next(&b)
		if err == ErrEndOfPass {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		batches++
		if len(b.Inputs) != B*toyL || len(b.PuzzleIdentifiers) != B || b.Real != B || b.GlobalEffective != B || b.Set != "all" {
			t.Fatalf("batch shape: %d inputs, %d ids, real %d", len(b.Inputs), len(b.PuzzleIdentifiers), b.Real)
		}
		seen := map[int]bool{}
		for j := 0; j < B; j++ {
			e := int(b.Inputs[j*toyL]) - 1
			if seen[e] {
				t.Errorf("example %d twice in one batch (drawn with replacement)", e)
			}
			seen[e] = true
			if got, want := b.PuzzleIdentifiers[j], s.PuzzleIdentifiers[puzzleOf[e]]; got != want {
				t.Errorf("row %d: identifier %d, example %d belongs to identifier %d", j, got, e, want)
			}
			if lab := b.Labels[j*toyL : (j+1)*toyL]; lab[0] != int32(e+1) || lab[1] != IgnoreLabel || lab[2] != 2 {
				t.Errorf("row %d labels %v, want [%d -100 2]", j, lab, e+1)
			}
		}
	}
	// Every epoch visits each of the 5 groups once, 15 draws of at least
	// one example each: at least 3 full batches, at most 15*4/4.
	if batches < 3 || batches > 15 {
		t.Errorf("%d batches in a pass", batches)
	}
	st := it.State()
	if st.Pass != 1 || st.Iters != 1 || st.Batches != int64(batches) {
		t.Errorf("state after one pass: %+v", st)
	}
}

// TestTrainSingleExamplePuzzles pins the counts where they are exact: with
// one example per puzzle a pass has floor(groups*epochs/B) batches, and
// each epoch is a permutation of the groups.
func TestTrainSingleExamplePuzzles(t *testing.T) {
	dir := t.TempDir()
	var groups [][]int
	for i := 0; i < 10; i++ {
		groups = append(groups, []int{1})
	}
	writeToy(t, dir, "train", groups, 3)
	ds, _ := Open("train", dir)
	defer ds.Close()
	it, _ := ds.Train(TrainConfig{Sharding: Sharding{GlobalBatchSize: 5}, Seed: 1, EpochsPerPass: 3})
	var order []int
	for {
		var b Batch
		if err := it.Next(&b); err == ErrEndOfPass {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 5; j++ {
			order = append(order, int(b.Inputs[j*toyL])-1)
		}
	}
	if len(order) != 30 {
		t.Fatalf("%d examples in a pass, want 30", len(order))
	}
	for e := 0; e < 3; e++ {
		seen := map[int]bool{}
		for _, x := range order[10*e : 10*e+10] {
			seen[x] = true
		}
		if len(seen) != 10 {
			t.Errorf("epoch %d is not a permutation: %v", e, order[10*e:10*e+10])
		}
	}
	if reflect.DeepEqual(order[:10], order[10:20]) {
		t.Error("two epochs in the same order")
	}
	// 7 does not divide 30: the last 2 examples are dropped.
	it, _ = ds.Train(TrainConfig{Sharding: Sharding{GlobalBatchSize: 7}, Seed: 1, EpochsPerPass: 3})
	n := 0
	for it.Next(&Batch{}) == nil {
		n++
	}
	if n != 4 {
		t.Errorf("%d batches of 7 from 30 examples, want 4", n)
	}
	// A batch larger than a whole pass is an error, not an endless loop.
	it, _ = ds.Train(TrainConfig{Sharding: Sharding{GlobalBatchSize: 31}, Seed: 1, EpochsPerPass: 3})
	if err := it.Next(&Batch{}); err == nil || err == ErrEndOfPass {
		t.Errorf("empty pass: %v", err)
	}
}

func batchKey(b Batch) string {
	return fmt.Sprint(b.Set, b.Inputs, b.Labels, b.PuzzleIdentifiers, b.Real, b.GlobalEffective)
}

// TestTrainDeterminismShardingResume: the same seed gives the same
// batches, replicas' slices tile the global batch, and a state saved
// mid-pass (through JSON, as a checkpoint would) resumes exactly, across
// pass boundaries and over merged sets.
func TestTrainDeterminismShardingResume(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeToy(t, a, "train", [][]int{{1, 2}, {3}, {4, 1, 2}, {2}, {1}, {3, 3}}, 4)
	writeToy(t, b, "train", [][]int{{2}, {1, 1}, {2}, {3}}, 4)
	ds, err := Open("train", a, b)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	cfg := TrainConfig{Sharding: Sharding{GlobalBatchSize: 4, WorldSize: 1}, Seed: 3, EpochsPerPass: 2}
	it1, _ := ds.Train(cfg)
	it2, _ := ds.Train(cfg)
	ref := collect(t, it1, 40)
	if got := collect(t, it2, 40); !reflect.DeepEqual(keys(got), keys(ref)) {
		t.Fatal("same seed, different batches")
	}
	sets := map[string]bool{}
	for _, x := range ref {
		sets[x.Set] = true
	}
	if !sets["all"] || !sets["all1"] || !sets["EOF"] {
		t.Errorf("batches do not cover both sets and a pass end: %v", sets)
	}
	other := cfg
	other.Seed = 4
	it3, _ := ds.Train(other)
	if reflect.DeepEqual(keys(collect(t, it3, 40)), keys(ref)) {
		t.Error("different seeds, same batches")
	}

	for _, R := range []int{2, 4} {
		its := make([]*TrainIterator, R)
		for r := range its {
			c := cfg
			c.Rank, c.WorldSize = r, R
			its[r], _ = ds.Train(c)
		}
		for i, want := range ref {
			var ins []int32
			for r := range its {
				var x Batch
				err := its[r].Next(&x)
				if (err == io.EOF) != (want.Set == "EOF") {
					t.Fatalf("R=%d batch %d: end of pass disagrees", R, i)
				}
				ins = append(ins, x.Inputs...)
			}
			if want.Set != "EOF" && !reflect.DeepEqual(ins, want.Inputs) {
				t.Fatalf("R=%d batch %d: slices %v do not tile %v", R, i, ins, want.Inputs)
			}
		}
	}
	if _, err := ds.Train(TrainConfig{Sharding: Sharding{GlobalBatchSize: 6, WorldSize: 4}, EpochsPerPass: 1}); err == nil {
		t.Error("6 rows over 4 replicas accepted")
	}

	for _, k := range []int{0, 1, 5, 13, 22} {
		it, _ := ds.Train(cfg)
		collect(t, it, k)
		js, err := json.Marshal(it.State())
		if err != nil {
			t.Fatal(err)
		}
		var st TrainState
		if err := json.Unmarshal(js, &st); err != nil {
			t.Fatal(err)
		}
		resumed, _ := ds.Train(cfg)
		if err := resumed.Restore(st); err != nil {
			t.Fatal(err)
		}
		if got := collect(t, resumed, 40-k); !reflect.DeepEqual(keys(got), keys(ref[k:])) {
			t.Errorf("resume after %d batches differs", k)
		}
	}
	it, _ := ds.Train(cfg)
	if err := it.Restore(TrainState{Seed: 9, GlobalBatchSize: 4, EpochsPerPass: 2}); err == nil {
		t.Error("state from another seed accepted")
	}
}

func keys(bs []Batch) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = batchKey(b)
	}
	return out
}

func TestTestOrder(t *testing.T) {
	dir := t.TempDir()
	writeToy(t, dir, "test", [][]int{{2, 1}, {3}, {1}}, 4) // 7 examples
	ds, err := Open("test", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	puzzleOf := toyPuzzleOf(ds.Sets[0])
	for _, R := range []int{1, 2, 4} {
		its := make([]*TestIterator, R)
		for r := range its {
			its[r], err = ds.Test(Sharding{GlobalBatchSize: 4, Rank: r, WorldSize: R})
			if err != nil {
				t.Fatal(err)
			}
		}
		next := 0
		for batch := 0; ; batch++ {
			var rows []int32
			done := false
			for r := range its {
				var b Batch
				err := its[r].Next(&b)
				if err == io.EOF {
					done = true
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if want := min(4, 7-4*batch); b.GlobalEffective != want {
					t.Errorf("R=%d batch %d: effective %d, want %d", R, batch, b.GlobalEffective, want)
				}
				for j := 0; j < 4/R; j++ {
					e := int(b.Inputs[j*toyL]) - 1
					if j < b.Real {
						if e != next || b.PuzzleIdentifiers[j] != ds.Sets[0].PuzzleIdentifiers[puzzleOf[e]] {
							t.Errorf("R=%d: row holds example %d id %d, want example %d", R, e, b.PuzzleIdentifiers[j], next)
						}
						next++
					} else if e != -1 || b.PuzzleIdentifiers[j] != 0 || b.Labels[j*toyL] != IgnoreLabel {
						t.Errorf("R=%d: padding row %d not padded", R, j)
					}
				}
				rows = append(rows, b.PuzzleIdentifiers...)
			}
			if done {
				break
			}
			if len(rows) != 4 {
				t.Fatalf("R=%d: global batch of %d rows", R, len(rows))
			}
		}
		if next != 7 {
			t.Errorf("R=%d: %d examples seen, want 7", R, next)
		}
	}
}

// TestBatchVocabularyCheck: a token outside the vocabulary is caught when
// the batch holding it is assembled.
func TestBatchVocabularyCheck(t *testing.T) {
	dir := t.TempDir()
	writeToy(t, dir, "test", [][]int{{1}, {1}}, 3)
	a, _ := NewArray(Uint8, []int{2, 3}, []byte{1, 1, 1, 2, 200, 2})
	WriteNPYFile(dir+"/test/all__inputs.npy", a)
	ds, err := Open("test", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ds.Meta.VocabSize = 100
	it, _ := ds.Test(Sharding{GlobalBatchSize: 2})
	if err := it.Next(&Batch{}); err == nil {
		t.Error("token 200 in a vocabulary of 100 accepted")
	}
}
