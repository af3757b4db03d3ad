package engine_test

import (
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// countingBackend is a CPU backend that adds up the bytes of every Alloc.
type countingBackend struct {
	engine.Backend
	bytes int64
}

func (c *countingBackend) Alloc(dt engine.DType, n int) engine.Buf {
	size := int64(4)
	if dt == engine.F64 {
		size = 8
	}
	c.bytes += size * int64(n)
	return c.Backend.Alloc(dt, n)
}

// TestEstimateMemoryMatchesAllocations: the estimate equals, byte for
// byte, what NewModel and NewCarry allocate, for attention and mlp_t, with
// and without backward, rope, learned positions and no puzzle embedding.
func TestEstimateMemoryMatchesAllocations(t *testing.T) {
	base := engine.DefaultConfig()
	base.BatchSize, base.SeqLen, base.VocabSize, base.NumPuzzleIdentifiers = 3, 9, 7, 5
	base.HiddenSize, base.NumHeads, base.PuzzleEmbNdim, base.PuzzleEmbLen = 32, 4, 32, 2
	base.LCycles, base.LLayers = 2, 2
	cases := map[string]func(*engine.Config){
		"attention rope": func(*engine.Config) {},
		"mlp_t":          func(c *engine.Config) { c.MLPT, c.PosEncodings = true, engine.PosNone },
		"learned":        func(c *engine.Config) { c.PosEncodings, c.LCycles, c.LLayers = engine.PosLearned, 3, 1 },
		"no puzzle":      func(c *engine.Config) { c.PuzzleEmbNdim, c.PuzzleEmbLen = 0, 0 },
	}
	for name, edit := range cases {
		c := base
		edit(&c)
		for _, backward := range []bool{false, true} {
			be := &countingBackend{Backend: cpu.New(1)}
			m, err := engine.NewModel(c, be, engine.Options{Backward: backward})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			m.NewCarry()
			est, err := engine.EstimateMemory(c, backward)
			if err != nil {
				t.Fatal(err)
			}
			if est.Total() != be.bytes {
				t.Errorf("%s, backward %v: estimate %d bytes (%+v), allocated %d", name, backward, est.Total(), est, be.bytes)
			}
			if backward && est.Gradients == 0 || !backward && est.Gradients != 0 {
				t.Errorf("%s, backward %v: gradients %d", name, backward, est.Gradients)
			}
		}
	}
}

// TestEstimateMemoryScales: the activations of the paper's Sudoku model
// grow linearly with the batch, and an invalid config is an error, not a
// figure.
func TestEstimateMemoryScales(t *testing.T) {
	p, err := engine.LookupPreset("sudoku-att")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Model
	c.BatchSize = 100
	a, err := engine.EstimateMemory(c, true)
	if err != nil {
		t.Fatal(err)
	}
	c.BatchSize = 200
	b, err := engine.EstimateMemory(c, true)
	if err != nil {
		t.Fatal(err)
	}
	if b.Activations != 2*a.Activations || b.Weights != a.Weights || b.Carry != 2*a.Carry {
		t.Fatalf("batch 100: %+v, batch 200: %+v", a, b)
	}
	c.PuzzleEmbLen = 1e9
	if _, err := engine.EstimateMemory(c, true); err == nil {
		t.Fatal("estimate of an invalid config")
	}
}
