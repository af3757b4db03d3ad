package trm_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/engine"
)

// presetModel builds an untrained model of a preset's shape (its
// halting head never fires: early halting runs every step).
func presetModel(b *testing.B, name string, seqLen, vocab int) *trm.Model {
	b.Helper()
	p, err := engine.LookupPreset(name)
	if err != nil {
		b.Fatal(err)
	}
	c := p.Model
	c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers, c.BatchSize = seqLen, vocab, 1, 1
	l, err := engine.NewArchLayout(c, p.Arch)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "model.safetensors")
	if err := engine.SaveState(path, engine.InitParams(l, 1), nil); err != nil {
		b.Fatal(err)
	}
	m, err := trm.Load(path, trm.LoadOptions{Config: name})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkSolve measures solving throughput (puzzles/s) and the latency
// of one request on the CPU: the committed 4x4 Sudoku model (trained: it
// halts early) and the Sudoku-MLP preset's shapes (untrained, 16 steps),
// early halting against every step, one puzzle per request on a Solver of
// batch 1 against a request of B puzzles on a Solver of batch B.
// An untrained model's halting head outputs its initial bias (-5: the
// q_head weights start at zero) at every step, so the Sudoku-MLP "early"
// runs take all 16 steps and measure what early halting costs when no
// puzzle halts; a trained model's early throughput grows as
// halt_max_steps over its mean steps per puzzle (the sudoku4 rows). A
// Sudoku-MLP puzzle takes seconds on a CPU, so those rows want a small
// -benchtime:
//
//	go test -run '^$' -bench 'Solve/sudoku4' -benchtime 20x .
//	go test -run '^$' -bench 'Solve/sudoku-mlp/batch1/' -benchtime 2x .
func BenchmarkSolve(b *testing.B) {
	models := []struct {
		name string
		load func(b *testing.B) *trm.Model
	}{
		{"sudoku4", func(b *testing.B) *trm.Model { return loadFixture(b) }},
		{"sudoku-mlp", func(b *testing.B) *trm.Model { return presetModel(b, "sudoku-mlp", 81, 11) }},
	}
	for _, md := range models {
		for _, batch := range []int{1, 64} {
			for _, full := range []bool{false, true} {
				mode := "early"
				if full {
					mode = "full"
				}
				b.Run(fmt.Sprintf("%s/batch%d/%s", md.name, batch, mode), func(b *testing.B) {
					m := md.load(b)
					s, err := m.NewSolver(trm.SolverOptions{Batch: batch})
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					ps := benchPuzzles(m, batch)
					lat := make([]time.Duration, 0, b.N)
					steps := 0
					b.ResetTimer()
					start := time.Now()
					for range b.N {
						t0 := time.Now()
						sols, err := s.Solve(context.Background(), ps, trm.Request{FullSteps: full})
						if err != nil {
							b.Fatal(err)
						}
						lat = append(lat, time.Since(t0))
						for _, sol := range sols {
							steps += sol.Steps
						}
					}
					el := time.Since(start)
					b.StopTimer()
					slices.Sort(lat)
					b.ReportMetric(float64(b.N*batch)/el.Seconds(), "puzzles/s")
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
					b.ReportMetric(float64(steps)/float64(b.N*batch), "steps/puzzle")
				})
			}
		}
	}
}

// benchPuzzles returns n Sudoku puzzles of the model's shape: one
// solved grid with some cells blanked, varied by a row shift.
func benchPuzzles(m *trm.Model, n int) []trm.Puzzle {
	var grid string
	if m.SeqLen() == 16 {
		grid = "..4....113...2.."
	} else {
		grid = "1....7.9..3..2...8..96..5....53..9...1..8...26....4...3......1..4......7..7...3.."
	}
	tokens, err := m.Codec().Encode(grid)
	if err != nil {
		panic(err)
	}
	ps := make([]trm.Puzzle, n)
	for i := range ps {
		ps[i] = trm.Puzzle{Tokens: tokens}
	}
	return ps
}
