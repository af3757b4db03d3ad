package trm_test

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/trainer"
)

var updateFixture = flag.Bool("update-fixture", false, "retrain the model of testdata/sudoku4-tiny (about a minute)")

// fixtureDir holds a small 4x4 Sudoku model, trained by
// TestSudokuFixture with -update-fixture, that the Examples load.
const fixtureDir = "testdata/sudoku4-tiny"

// fixtureConfig is the fixture's recipe: the demo's model at half width,
// trained for 1500 steps at lr 3e-3 (the rate it was trained at; the
// demo's own is higher, sized for its shorter budget).
func fixtureConfig(dataDir, out string) trainer.Config {
	c := trainer.DefaultDemo(dataDir)
	a := &c.Arch
	a.HiddenSize, a.NumHeads, a.Expansion, a.PuzzleEmbNdim = 32, 2, 4, 32
	c.Epochs, c.EvalInterval, c.TotalStepsLimit, c.EvalBatches = 400, 400, 1500, 1
	c.LR = 3e-3
	c.CheckpointDir = out
	return c
}

// TestSudokuFixture: the committed fixture loads, has the recipe's
// architecture and solves most of a generated set of 4x4 Sudoku; with
// -update-fixture it is first retrained from the demo data.
func TestSudokuFixture(t *testing.T) {
	if *updateFixture {
		dir := t.TempDir()
		dataDir := filepath.Join(dir, "sudoku4")
		if err := trainer.BuildDemoSudoku(dataDir, 800, 64, 6, 0, 1, io.Discard); err != nil {
			t.Fatal(err)
		}
		run := filepath.Join(dir, "run")
		if _, err := trainer.Run(context.Background(), fixtureConfig(dataDir, run), trainer.RunOptions{Backend: cpu.New(0), Warn: io.Discard}); err != nil {
			t.Fatal(err)
		}
		m, err := trm.Load(run, trm.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := m.Save(filepath.Join(fixtureDir, "model.safetensors")); err != nil {
			t.Fatal(err)
		}
		arch, err := os.ReadFile(filepath.Join(mustLatest(t, run), "arch.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fixtureDir, "arch.json"), arch, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := loadFixture(t)
	want := fixtureConfig("", "").Arch
	if c := m.Config(); c.HiddenSize != want.HiddenSize || c.HaltMaxSteps != want.HaltMaxSteps || m.SeqLen() != 16 || m.VocabSize() != 6 {
		t.Fatalf("fixture config %+v, want the recipe's %+v on 4x4 Sudoku", c, want)
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoSudoku(dataDir, 0, 32, 6, 0, 7, io.Discard); err != nil {
		t.Fatal(err)
	}
	ps, labels := testPuzzles(t, dataDir, 32)
	sols, err := m.Solve(context.Background(), ps, trm.Request{FullSteps: true})
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for i, s := range sols {
		if v := m.Codec().Check(ps[i].Tokens, s.Answer, labels[i]); v.Valid && v.MatchesLabel {
			right++
		}
	}
	t.Logf("fixture solves %d of %d generated puzzles", right, len(ps))
	if right < len(ps)/2 {
		t.Errorf("the fixture solves %d of %d generated 4x4 Sudoku: retrain it with -update-fixture", right, len(ps))
	}
}

func loadFixture(t testing.TB) *trm.Model {
	t.Helper()
	m, err := trm.Load(filepath.Join(fixtureDir, "model.safetensors"), trm.LoadOptions{Config: filepath.Join(fixtureDir, "arch.json")})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
