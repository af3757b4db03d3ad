package cpu_test

import (
	"math/rand/v2"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// TestStepAllocs: a training step (reset, recursion, heads, loss, backward)
// allocates nothing on the heap once warm, with attention and with the
// sequence MLP: the ops feed long-lived workers through reused job structs
// and reuse their scratch and views. Where the CPU has the bf16 GEMM, the
// bf16 mode is checked too, with and without bf16 activations: its bf16
// storage reuses its widening and row scratch.
func TestStepAllocs(t *testing.T) {
	opts := []cpu.Options{{Threads: 2}}
	if gemm.BF16Supported() {
		opts = append(opts, cpu.Options{Threads: 2, Gemm: cpu.GemmBF16}, cpu.Options{Threads: 2, Gemm: cpu.GemmBF16, Activations: engine.BF16})
	}
	for _, opt := range opts {
		for _, mlpT := range []bool{false, true} {
			testStepAllocs(t, opt, mlpT)
		}
	}
}

func testStepAllocs(t *testing.T, opt cpu.Options, mlpT bool) {
	c := engine.DefaultConfig()
	c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 16, 11, 3
	c.HiddenSize, c.NumHeads, c.PuzzleEmbNdim, c.PuzzleEmbLen = 64, 4, 64, 2
	c.HCycles, c.LCycles, c.LLayers, c.BatchSize = 2, 2, 2, 8
	if mlpT {
		c.MLPT, c.PosEncodings = true, engine.PosNone
	}
	be, err := cpu.NewWithOptions(opt)
	if err != nil {
		t.Fatal(err)
	}
	m, err := engine.NewModel(c, be, engine.Options{Backward: true})
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
		t.Errorf("%s, MLPT %v: %v heap allocations per step, want 0", be.Name(), mlpT, n)
	}
}

// TestOptimizerAllocs: the optimizer ops a training step runs after the
// backward pass allocate nothing once warm either.
func TestOptimizerAllocs(t *testing.T) {
	be := cpu.New(2)
	const n, rows, dim = 1 << 16, 50, 64
	p, g, m, v, s := be.Alloc(engine.F32, n), be.Alloc(engine.F32, n), be.Alloc(engine.F32, n), be.Alloc(engine.F32, n), be.Alloc(engine.F32, n)
	table, tg, ids := be.Alloc(engine.F32, rows*dim), be.Alloc(engine.F32, 8*dim), be.Alloc(engine.I32, 8)
	dst := be.Alloc(engine.F64, 1)
	be.Upload(ids, []int32{3, 7, 3, 0, 49, 7, 7, 1})
	be.Fill(g, 0.25)
	be.Fill(tg, -0.5)
	step := func() {
		be.AdamATan2(p, g, m, v, engine.AdamHyper{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, WeightDecay: 0.1, Step: 3})
		be.SignSGDRows(table, tg, ids, 8, dim, 0.01, 0.1)
		be.EMA(s, p, 0.999)
		be.SumSquares(dst, g)
		if err := be.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if a := testing.AllocsPerRun(5, step); a != 0 {
		t.Fatalf("%v heap allocations per optimizer step, want 0", a)
	}
}
