// Command sudoku trains a small Tiny Recursive Model on generated 4x4
// Sudoku for a few hundred steps, saves it as a trm-train checkpoint,
// loads it back with package trm and solves the held-out puzzles: the
// whole path from training to a Go program using the model.
//
//	go run ./examples/sudoku [-steps 300] [-out DIR]
//
// It prints one puzzle's answer after every supervision step, then how
// many of the held-out puzzles the model solves, with early halting and
// in the reference's evaluation, and the supervision steps each needed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer"
)

func main() {
	steps := flag.Int("steps", 300, "training steps")
	out := flag.String("out", "", "directory for the data and the run (default: a temporary one, removed at the end)")
	flag.Parse()
	if err := run(*steps, *out); err != nil {
		log.Fatal(err)
	}
}

func run(steps int, out string) error {
	if steps <= 0 {
		return fmt.Errorf("-steps %d: want at least 1", steps)
	}
	if out == "" {
		d, err := os.MkdirTemp("", "trm-sudoku-example")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		out = d
	}
	dataDir, runDir := filepath.Join(out, "sudoku4"), filepath.Join(out, "run")

	// 1. Data and training: the demo's 4x4 Sudoku at half the demo
	// model's width, so a few hundred steps take seconds.
	if err := trainer.BuildDemoSudoku(dataDir, 800, 64, 6, 0, 1, io.Discard); err != nil {
		return err
	}
	cfg := trainer.DefaultDemo(dataDir)
	cfg.Arch.HiddenSize, cfg.Arch.NumHeads, cfg.Arch.PuzzleEmbNdim = 32, 2, 32
	cfg.Epochs, cfg.EvalInterval, cfg.TotalStepsLimit, cfg.EvalBatches = 400, 400, steps, 1
	cfg.CheckpointDir = runDir
	start := time.Now()
	if _, err := trainer.Run(context.Background(), cfg, trainer.RunOptions{Backend: cpu.New(0), Warn: io.Discard}); err != nil {
		return err
	}
	fmt.Printf("trained %d steps in %.1f s into %s\n", steps, time.Since(start).Seconds(), runDir)

	// 2. Load the checkpoint (verified against its manifest).
	m, err := trm.Load(runDir, trm.LoadOptions{})
	if err != nil {
		return err
	}
	codec := m.Codec()
	var ps []trm.Puzzle
	var labels [][]int32
	for i := 0; ; i++ {
		ex, err := puzzle.ReadExample(dataDir, "test", i)
		if err != nil {
			if i == 0 {
				return err
			}
			break
		}
		ps = append(ps, trm.Puzzle{Tokens: ex.Input, ID: ex.Identifier})
		labels = append(labels, ex.Label)
		if i+1 == ex.Count {
			break
		}
	}

	// 3. One puzzle with its reasoning trace.
	s, err := m.NewSolver(trm.SolverOptions{Batch: 16})
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	one, err := s.Solve(ctx, ps[:1], trm.Request{FullSteps: true, Trace: true})
	if err != nil {
		return err
	}
	fmt.Printf("\n%s\n", codec.Summary(ps[0].Tokens))
	fmt.Println(codec.Render(ps[0].Tokens))
	for k, p := range one[0].Trace {
		fmt.Printf("\nstep %d, confidence %.3f:\n%s\n", k+1, one[0].HaltProb[k], codec.Render(p))
	}
	fmt.Printf("\n%s\n", codec.Check(ps[0].Tokens, one[0].Answer, labels[0]))

	// 4. The held-out set, early halting against every step.
	for _, full := range []bool{false, true} {
		t0 := time.Now()
		sols, err := s.Solve(ctx, ps, trm.Request{FullSteps: full})
		if err != nil {
			return err
		}
		right, used := 0, 0
		for i, sol := range sols {
			if v := codec.Check(ps[i].Tokens, sol.Answer, labels[i]); v.Valid && v.MatchesLabel {
				right++
			}
			used += sol.Steps
			if sol.Steps < 1 || sol.Steps > m.HaltMaxSteps() || len(sol.Answer) != m.SeqLen() {
				return errors.New("a solution with an impossible step count or answer length")
			}
		}
		mode := "early halting"
		if full {
			mode = "reference evaluation"
		}
		fmt.Printf("%s: %d of %d solved, %.2f supervision steps per puzzle, %.0f puzzles/s\n",
			mode, right, len(ps), float64(used)/float64(len(ps)), float64(len(ps))/time.Since(t0).Seconds())
	}
	return nil
}
