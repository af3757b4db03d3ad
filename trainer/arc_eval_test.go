package trainer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/build"
)

// TestEvaluateARC wires evaluation to the ARC scorer: datasets built from
// real ARC-AGI-1 evaluation tasks are evaluated and must report pass@K for
// every K and write a submission naming each test puzzle, for one
// directory and for two merged ones (identifiers offset per directory).
func TestEvaluateARC(t *testing.T) {
	one := buildMiniARC(t, 0)
	evaluateARC(t, []string{one.dir}, one.ids)
	two := buildMiniARC(t, 3)
	evaluateARC(t, []string{one.dir, two.dir}, append(append([]string{}, one.ids...), two.ids...))
}

type miniARC struct {
	dir string
	ids []string
}

// buildMiniARC builds an ARC dataset from three real evaluation tasks
// starting at the given index (in id order), one augmentation each.
func buildMiniARC(t *testing.T, first int) miniARC {
	t.Helper()
	src := filepath.Join("..", "testdata", "arc-agi")
	var ch, sol map[string]json.RawMessage
	readJSON(t, filepath.Join(src, "arc-agi_evaluation_challenges.json"), &ch)
	readJSON(t, filepath.Join(src, "arc-agi_evaluation_solutions.json"), &sol)
	ids := make([]string, 0, len(ch))
	for id := range ch {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	miniC, miniS := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for _, id := range ids[first : first+3] {
		miniC[id], miniS[id] = ch[id], sol[id]
	}
	tmp := t.TempDir()
	writeJSON(t, filepath.Join(tmp, "mini_evaluation_challenges.json"), miniC)
	writeJSON(t, filepath.Join(tmp, "mini_evaluation_solutions.json"), miniS)
	out := filepath.Join(tmp, "arc")
	if _, err := build.BuildARC(build.ARCOptions{Out: out, Prefix: filepath.Join(tmp, "mini"), Subsets: []string{"evaluation"},
		TestSets: []string{"evaluation"}, NumAug: 1, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	return miniARC{dir: out, ids: ids[first : first+3]}
}

// evaluateARC evaluates a random model on the merged test splits of dirs.
func evaluateARC(t *testing.T, dirs []string, puzzles []string) {
	t.Helper()
	tmp := t.TempDir()
	ds, err := data.Open("test", dirs...)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	cfg := DefaultConfig()
	a := &cfg.Arch
	a.SeqLen, a.VocabSize, a.NumPuzzleIdentifiers = ds.Meta.SeqLen, ds.Meta.VocabSize, ds.Meta.NumPuzzleIdentifiers
	a.HiddenSize, a.NumHeads, a.PuzzleEmbNdim, a.PuzzleEmbLen = 16, 2, 16, 1
	a.HCycles, a.LCycles, a.HaltMaxSteps = 1, 1, 2
	cfg.GlobalBatchSize = 4
	a.BatchSize = 4
	ev, err := NewEvaluator(cfg, cpu.New(0), ds, 4, tmp)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ev.Evaluate(engine.InitParams(engine.NewLayout(*a), 1), data.Sharding{GlobalBatchSize: 4, WorldSize: 1}, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ARC/pass@1", "ARC/pass@2", "ARC/pass@5", "ARC/pass@10", "ARC/pass@100", "ARC/pass@1000"} {
		v, ok := rep.Flat[k]
		if !ok || v < 0 || v > 1 {
			t.Errorf("%s = %v, %v", k, v, ok)
		}
	}
	var sub map[string][]map[string]any
	readJSON(t, filepath.Join(tmp, "submission.json"), &sub)
	for _, id := range puzzles {
		if _, ok := sub[id]; !ok {
			t.Errorf("submission.json has no entry for test puzzle %s (has %d)", id, len(sub))
		}
	}
	if len(sub) != len(puzzles) {
		t.Errorf("submission.json has %d puzzles, want %d", len(sub), len(puzzles))
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
