package build

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/arc"
)

// arcPrefix points at the real ARC task files shipped with the project.
const arcPrefix = "../../../testdata/arc-agi/arc-agi"

func realARC(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(arcPrefix + "_evaluation_challenges.json"); err != nil {
		t.Fatalf("real ARC files missing: %v", err)
	}
	return arcPrefix
}

func buildARC1(t *testing.T, numAug int) (string, ARCStats) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "arc1")
	st, err := BuildARC(ARCOptions{Out: out, Prefix: realARC(t), Subsets: []string{"training", "evaluation", "concept"},
		TestSets: []string{"evaluation"}, NumAug: numAug, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	return out, st
}

// pairKey identifies an (input, output) pair.
func pairKey(p arc.Pair) string { return p.Input.Key() + "|" + p.Output.Key() }

// decodeCanvas finds the grid on a canvas: its top-left is the first cell
// that is not PAD, then Crop reads it from there.
func decodeCanvas(tok []int32) (arc.Grid, int, int) {
	n := arc.MaxSize
	for k, v := range tok {
		if v != 0 {
			r, c := k/n, k%n
			// The first non-PAD cell in row-major order lies in the top row
			// of the grid; the leftmost non-PAD cell of that row is col c.
			shifted := make([]int32, n*n)
			for i := r; i < n; i++ {
				for j := c; j < n; j++ {
					shifted[(i-r)*n+(j-c)] = tok[i*n+j]
				}
			}
			return arc.Crop(shifted), r, c
		}
	}
	return arc.Grid{}, 0, 0
}

// TestARCRealSplit builds ARC-AGI-1 without augmentation and checks the
// counts against the JSON files: every evaluation test pair in the test
// split exactly once under its own name, and every other pair in train.
func TestARCRealSplit(t *testing.T) {
	out, st := buildARC1(t, 0)
	prefix := realARC(t)
	want := map[string]map[string]int{"train": {}, "test": {}}
	trainN, testN := 0, 0
	for _, subset := range []string{"training", "evaluation", "concept"} {
		tasks, err := arc.LoadSubset(prefix, subset)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range tasks {
			for _, p := range tk.Train {
				want["train"][tk.Name+"#"+pairKey(p)]++
				trainN++
			}
			for _, p := range tk.Test {
				split := "train"
				if subset == "evaluation" {
					split = "test"
					testN++
				} else {
					trainN++
				}
				want[split][tk.Name+"#"+pairKey(p)]++
			}
		}
	}
	if st.TrainExamples != trainN || st.TestExamples != testN || st.Puzzles != 960 || st.TestPuzzles != 400 || st.Identifiers != 961 {
		t.Fatalf("stats %+v, want %d train and %d test examples", st, trainN, testN)
	}
	for _, split := range []string{"train", "test"} {
		ds, err := data.Open(split, out)
		if err != nil {
			t.Fatal(err)
		}
		it, _ := ds.Test(data.Sharding{GlobalBatchSize: 100})
		got := map[string]int{}
		atOrigin := map[int32]bool{} // puzzle identifier -> has an example at (0, 0)
		translated := 0
		for {
			var b data.Batch
			if err := it.Next(&b); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			for j := 0; j < b.Real; j++ {
				in, r1, c1 := decodeCanvas(b.Inputs[j*900 : (j+1)*900])
				lab := make([]int32, 900)
				for k, v := range b.Labels[j*900 : (j+1)*900] {
					if v != data.IgnoreLabel {
						lab[k] = v
					}
				}
				outG, r2, c2 := decodeCanvas(lab)
				if r1 != r2 || c1 != c2 {
					t.Fatalf("%s: input at (%d,%d), output at (%d,%d)", split, r1, c1, r2, c2)
				}
				if r1 == 0 && c1 == 0 {
					atOrigin[b.PuzzleIdentifiers[j]] = true
				} else {
					translated++
				}
				if split == "test" && (r1 != 0 || c1 != 0) {
					t.Fatalf("test example translated to (%d,%d)", r1, c1)
				}
				got[ds.Identifiers[b.PuzzleIdentifiers[j]]+"#"+pairKey(arc.Pair{Input: in, Output: outG})]++
			}
		}
		if split == "train" && translated < (trainN-960)/2 {
			t.Errorf("only %d of %d training examples translated", translated, trainN)
		}
		if len(atOrigin) != ds.Sets[0].NumPuzzles() {
			t.Errorf("%s: %d of %d puzzles have an example left at (0, 0)", split, len(atOrigin), ds.Sets[0].NumPuzzles())
		}
		ds.Close()
		if len(got) != len(want[split]) {
			t.Errorf("%s: %d distinct pairs, want %d", split, len(got), len(want[split]))
		}
		for k, n := range want[split] {
			if got[k] != n {
				t.Errorf("%s: pair %.40q... appears %d times, want %d", split, k, got[k], n)
				break
			}
		}
	}
	var tp map[string]arc.Task
	b, _ := os.ReadFile(filepath.Join(out, "test_puzzles.json"))
	if err := json.Unmarshal(b, &tp); err != nil || len(tp) != 400 {
		t.Fatalf("test_puzzles.json: %d puzzles, %v", len(tp), err)
	}
}

// TestARCRealAugmentedAndScore builds ARC-AGI-1 with augmentations, checks
// that every test pair appears once per accepted version of its puzzle
// and decodes back to the original, then scores the true outputs (pass@1
// = 1) and wrong ones (0) through the evaluator.
func TestARCRealAugmentedAndScore(t *testing.T) {
	const numAug = 3
	out, st := buildARC1(t, numAug)
	if st.Identifiers < 960*(numAug+1)-20 {
		t.Errorf("only %d identifiers for %d augmentations", st.Identifiers, numAug)
	}
	tests, err := arc.LoadTestPuzzles(filepath.Join(out, "test_puzzles.json"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]arc.Task{}
	for _, tk := range tests {
		byName[tk.Name] = tk.Task
	}
	ds, err := data.Open("test", out)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	s := ds.Sets[0]
	versions := map[string]int{}
	for _, id := range s.PuzzleIdentifiers {
		orig, _, err := arc.ParseName(ds.Identifiers[id])
		if err != nil {
			t.Fatal(err)
		}
		versions[orig]++
	}
	for _, variant := range []string{"true", "wrong"} {
		ev, err := arc.LoadEvaluator(out, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		ev.BeginEval()
		seen := map[string]int{}
		it, _ := ds.Test(data.Sharding{GlobalBatchSize: 64})
		for {
			var b data.Batch
			if err := it.Next(&b); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			preds := make([]int32, len(b.Labels))
			for k, v := range b.Labels {
				if v != data.IgnoreLabel {
					preds[k] = v
				}
			}
			if variant == "wrong" {
				for j := 0; j < b.Real; j++ {
					preds[j*900] = 2 + (preds[j*900]-2+1)%10 // change the top-left colour
				}
			}
			for j := 0; j < b.Real && variant == "true"; j++ {
				name, a, _ := arc.ParseName(ds.Identifiers[b.PuzzleIdentifiers[j]])
				in := a.Invert(arc.Crop(b.Inputs[j*900 : (j+1)*900]))
				o := a.Invert(arc.Crop(preds[j*900 : (j+1)*900]))
				found := -1
				for k, p := range byName[name].Test {
					if p.Input.Equal(in) && p.Output.Equal(o) {
						found = k
					}
				}
				if found < 0 {
					t.Fatalf("test example of %s does not invert to one of its test pairs", ds.Identifiers[b.PuzzleIdentifiers[j]])
				}
				seen[name+"#"+string(rune('0'+found))]++
			}
			qs := make([]float32, len(b.PuzzleIdentifiers))
			if err := ev.AddBatch(&b, preds, qs); err != nil {
				t.Fatal(err)
			}
		}
		res, sub := ev.Result()
		if variant == "true" {
			for name, tk := range byName {
				for k := range tk.Test {
					if n := seen[name+"#"+string(rune('0'+k))]; n != versions[name] {
						t.Errorf("%s test pair %d appears %d times, want %d (1 + accepted)", name, k, n, versions[name])
					}
				}
			}
			for _, k := range arc.PassKs {
				if v := res["ARC/pass@"+itoa(k)]; v != 1 {
					t.Errorf("true outputs: pass@%d = %v, want 1", k, v)
				}
			}
			path := filepath.Join(t.TempDir(), "submission.json")
			if err := arc.WriteSubmission(path, sub); err != nil {
				t.Fatal(err)
			}
			var parsed map[string][]map[string]arc.Grid
			b, _ := os.ReadFile(path)
			if err := json.Unmarshal(b, &parsed); err != nil || len(parsed) != 400 {
				t.Fatalf("submission.json: %d puzzles, %v", len(parsed), err)
			}
			for name, tk := range byName {
				for k, p := range tk.Test {
					if !parsed[name][k]["attempt_1"].Equal(p.Output) {
						t.Fatalf("submission %s pair %d attempt_1 is not the true output", name, k)
					}
				}
			}
		} else {
			for k, v := range res {
				if v != 0 {
					t.Errorf("wrong outputs: %s = %v, want 0", k, v)
				}
			}
		}
	}
}

func itoa(k int) string { b, _ := json.Marshal(k); return string(b) }

// TestARCReproducible: the same seed writes byte-identical datasets, a
// different seed a different one.
func TestARCReproducible(t *testing.T) {
	build := func(seed uint64) string {
		out := filepath.Join(t.TempDir(), "a")
		_, err := BuildARC(ARCOptions{Out: out, Prefix: realARC(t), Subsets: []string{"evaluation"},
			TestSets: []string{"evaluation"}, NumAug: 2, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b, c := build(1), build(1), build(2)
	same := func(x, y string) bool {
		for _, f := range []string{"identifiers.json", "test_puzzles.json", "train/all__inputs.npy", "train/all__labels.npy", "test/all__inputs.npy", "train/dataset.json"} {
			p, _ := os.ReadFile(filepath.Join(x, f))
			q, _ := os.ReadFile(filepath.Join(y, f))
			if !bytes.Equal(p, q) {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("same seed, different datasets")
	}
	if same(a, c) {
		t.Error("different seeds, same dataset")
	}
	entries, _ := os.ReadDir(filepath.Dir(a))
	if len(entries) != 1 {
		t.Errorf("temporary directories left behind: %v", entries)
	}
}

func TestEncodeARCGrid(t *testing.T) {
	g := arc.Grid{H: 2, W: 3, Cells: []byte{0, 1, 2, 3, 4, 5}}
	dst := make([]byte, 900)
	EncodeARCGrid(dst, g, 4, 5)
	at := func(r, c int) byte { return dst[r*30+c] }
	if at(4, 5) != 2 || at(5, 7) != 7 || at(6, 5) != 1 || at(6, 7) != 1 || at(4, 8) != 1 || at(5, 8) != 1 || at(6, 8) != 0 || at(3, 5) != 0 {
		t.Error("grid, markers or corner misplaced")
	}
	// A grid touching the far edges gets no marker beyond the canvas.
	full := arc.Grid{H: 30, W: 30, Cells: make([]byte, 900)}
	EncodeARCGrid(dst, full, 0, 0)
	for k, v := range dst {
		if v != 2 {
			t.Fatalf("30x30 grid: cell %d = %d", k, v)
		}
	}
}
