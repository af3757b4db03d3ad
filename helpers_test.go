package trm_test

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/trainer"
)

// tinyConfig is a model small enough to train in a second on the demo's
// 4x4 Sudoku data: three supervision steps, hidden size 16.
func tinyConfig(dataDir, out string, steps int) trainer.Config {
	c := trainer.DefaultDemo(dataDir)
	a := &c.Arch
	a.HiddenSize, a.NumHeads, a.Expansion, a.PuzzleEmbNdim = 16, 2, 2, 16
	a.HCycles, a.LCycles, a.LLayers, a.HaltMaxSteps = 1, 1, 1, 3
	c.GlobalBatchSize, c.Epochs, c.EvalInterval = 16, 40, 40
	c.TotalStepsLimit, c.EvalBatches = steps, 1
	c.LRWarmupSteps = 2
	c.CheckpointDir = out
	return c
}

// trainTiny builds demo data under dir and trains a tiny model for steps
// steps into dir/run, returning the run directory and the data directory.
func trainTiny(t testing.TB, dir string, steps int) (run, dataDir string) {
	t.Helper()
	dataDir = filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoSudoku(dataDir, 48, 16, 6, 0, 1, io.Discard); err != nil {
		t.Fatal(err)
	}
	run = filepath.Join(dir, "run")
	if _, err := trainer.Run(context.Background(), tinyConfig(dataDir, run, steps), trainer.RunOptions{Backend: cpu.New(0), Warn: io.Discard}); err != nil {
		t.Fatalf("training the tiny model: %v", err)
	}
	return run, dataDir
}
