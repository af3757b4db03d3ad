package cpu_test

import (
	"math/rand/v2"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// TestStepAllocs: a training step (reset, recursion, heads, loss, backward)
// allocates nothing on the heap once warm, with attention and with the
// sequence MLP: the ops feed long-lived workers through reused job structs
// and reuse their scratch and views.
func TestStepAllocs(t *testing.T) {
	for _, mlpT := range []bool{false, true} {
		c := engine.DefaultConfig()
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 16, 11, 3
		c.HiddenSize, c.NumHeads, c.PuzzleEmbNdim, c.PuzzleEmbLen = 64, 4, 64, 2
		c.HCycles, c.LCycles, c.LLayers, c.BatchSize = 2, 2, 2, 8
		if mlpT {
			c.MLPT, c.PosEncodings = true, engine.PosNone
		}
		m, err := engine.NewModel(c, cpu.New(2), engine.Options{Backward: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetParams(engine.InitParams(m.Layout, 1)); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		B, L := c.BatchSize, c.SeqLen
		in, labels, pids := make([]int32, B*L), make([]int32, B*L), make([]int32, B)
		for i := range in {
			in[i] = int32(1 + rng.IntN(c.VocabSize-1))
			labels[i] = int32(1 + rng.IntN(c.VocabSize-1))
		}
		for i := range pids {
			pids[i] = int32(rng.IntN(c.NumPuzzleIdentifiers))
		}
		if err := m.SetBatch(in, labels, pids); err != nil {
			t.Fatal(err)
		}
		carry := m.NewCarry()
		so := engine.StepOptions{Train: true, Backward: true, GradScale: 1 / float32(B)}
		step := func() {
			m.ResetCarry(carry)
			if err := m.Step(carry, so); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			step()
		}
		if n := testing.AllocsPerRun(5, step); n != 0 {
			t.Errorf("MLPT %v: %v heap allocations per step, want 0", mlpT, n)
		}
	}
}
