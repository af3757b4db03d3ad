package enginetest

import (
	"testing"

	"github.com/tinyrecursive/trm/engine"
)

// Run runs the whole conformance suite on a backend.
func Run(t *testing.T, f Factory) {
	t.Run("Golden", func(t *testing.T) { RunGolden(t, f) })
	t.Run("Ops", func(t *testing.T) { RunOps(t, f) })
	t.Run("StepGradients", func(t *testing.T) { RunStepGradients(t, f) })
	t.Run("Determinism", func(t *testing.T) { RunDeterminism(t, f, f) })
	t.Run("Fusions", func(t *testing.T) { RunFusions(t, f) })
}

// RunDeterminism runs the same training step twice on a fresh backend from
// each factory and requires identical bits: the same inputs must give the
// same losses and gradients, run after run. Passing two factories with
// different thread counts checks that the split does not change the bits.
func RunDeterminism(t *testing.T, f1, f2 Factory) {
	for name, cfg := range StepConfigs() {
		t.Run(name, func(t *testing.T) {
			a := deterministicStep(t, f1(), cfg, engine.ArchSettings{})
			b := deterministicStep(t, f2(), cfg, engine.ArchSettings{})
			if len(a) != len(b) {
				t.Fatalf("output lengths %d and %d", len(a), len(b))
			}
			for i := range a {
				if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
					t.Fatalf("output %d differs between runs: %v vs %v", i, a[i], b[i])
				}
			}
		})
	}
}

// deterministicStep runs two consecutive training steps (the second on the
// persistent carry) and returns every output and gradient as one vector.
func deterministicStep(t *testing.T, be engine.Backend, cfg engine.Config, arch engine.ArchSettings) []float64 {
	t.Helper()
	cfg.HaltExplorationProb = 0.5
	m, err := engine.NewModel(cfg, be, engine.Options{Backward: true, ExplorationSeed: 11, Arch: arch})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetParams(engine.InitParams(m.Layout, 5)); err != nil {
		t.Fatal(err)
	}
	in, labels, pids := PatternBatch(cfg, 5)
	if err := m.SetBatch(in, labels, pids); err != nil {
		t.Fatal(err)
	}
	c := m.NewCarry()
	var out []float64
	for range 2 {
		if err := m.Step(c, engine.StepOptions{Train: true, Backward: true, GradScale: 0.5}); err != nil {
			t.Fatal(err)
		}
		r, err := m.Result(c, true)
		if err != nil {
			t.Fatal(err)
		}
		g, l, err := m.Gradients()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f64(r.Logits)...)
		out = append(out, r.LMLoss...)
		out = append(out, i64(r.Halted)...)
		out = append(out, f64(g)...)
		out = append(out, f64(l)...)
	}
	return out
}

// PatternBatch returns a batch of cfg's shape that needs no random source:
// inputs 7i mod V and labels labelStride*i mod V at flat position i, puzzle
// identifier b mod num_puzzle_identifiers for row b. The suite's whole-step
// checks and the CUDA backend's comparisons with the CPU share it.
func PatternBatch(cfg engine.Config, labelStride int) (in, labels, pids []int32) {
	B, L := cfg.BatchSize, cfg.SeqLen
	in, labels, pids = make([]int32, B*L), make([]int32, B*L), make([]int32, B)
	for i := range in {
		in[i] = int32((i * 7) % cfg.VocabSize)
		labels[i] = int32((i * labelStride) % cfg.VocabSize)
	}
	for i := range pids {
		pids[i] = int32(i % cfg.NumPuzzleIdentifiers)
	}
	return in, labels, pids
}
