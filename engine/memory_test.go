package engine_test

import (
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
)

// countingBackend is a CPU backend that adds up the bytes of every Alloc.
// It passes on the backend's bf16 storage, except that noPack makes it
// report PacksBF16 false (saved activations in bf16, workspaces float32).
type countingBackend struct {
	engine.Backend
	bytes  int64
	noPack bool
}

func (c *countingBackend) Alloc(dt engine.DType, n int) engine.Buf {
	size := int64(4)
	switch dt {
	case engine.F64:
		size = 8
	case engine.BF16:
		size = 2
	}
	c.bytes += size * int64(n)
	return c.Backend.Alloc(dt, n)
}

func (c *countingBackend) StoresBF16() bool { return engine.StoresBF16(c.Backend) }

func (c *countingBackend) PacksBF16() bool {
	s, ok := c.Backend.(engine.BF16Storage)
	return ok && s.PacksBF16() && !c.noPack
}

func (c *countingBackend) StoresBF16Activations() bool {
	return engine.StoresBF16Activations(c.Backend) && !c.noPack
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
	// The storage variants: float32, bf16 GEMM-only buffers (saved only,
	// and workspaces too), bf16 activations (these need a CPU with
	// AVX512_BF16, which the bf16 modes require).
	type variant struct {
		name   string
		opt    cpu.Options
		noPack bool
		want   engine.Storage
	}
	variants := []variant{
		{"fp32", cpu.Options{}, false, engine.Storage{}},
		{"bf16 saved", cpu.Options{Gemm: cpu.GemmBF16}, true, engine.Storage{Saved: engine.BF16}},
		{"bf16 gemm-only", cpu.Options{Gemm: cpu.GemmBF16}, false, engine.Storage{Saved: engine.BF16, Work: engine.BF16}},
		{"bf16 activations", cpu.Options{Gemm: cpu.GemmBF16, Activations: engine.BF16}, false, engine.Storage{Saved: engine.BF16, Work: engine.BF16, Act: engine.BF16}},
	}
	for name, edit := range cases {
		c := base
		edit(&c)
		var fp32 [2]int64
		for _, v := range variants {
			for bi, backward := range []bool{false, true} {
				inner, err := cpu.NewWithOptions(v.opt)
				if err != nil {
					if !gemm.BF16Supported() {
						continue
					}
					t.Fatal(err)
				}
				be := &countingBackend{Backend: inner, noPack: v.noPack}
				if st := engine.StorageOf(be); st != v.want {
					t.Fatalf("%s: storage %+v, want %+v", v.name, st, v.want)
				}
				m, err := engine.NewModel(c, be, engine.Options{Backward: backward})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				m.NewCarry()
				est, err := engine.EstimateStorageMemory(c, engine.ArchSettings{}, backward, v.want)
				if err != nil {
					t.Fatal(err)
				}
				if est.Total() != be.bytes {
					t.Errorf("%s, %s, backward %v: estimate %d bytes (%+v), allocated %d", name, v.name, backward, est.Total(), est, be.bytes)
				}
				if backward && est.Gradients == 0 || !backward && est.Gradients != 0 {
					t.Errorf("%s, backward %v: gradients %d", name, backward, est.Gradients)
				}
				if v.name == "fp32" {
					fp32[bi] = be.bytes
					if f, _ := engine.EstimateMemory(c, backward); f.Total() != be.bytes {
						t.Errorf("%s, backward %v: EstimateMemory %d bytes, allocated %d", name, backward, f.Total(), be.bytes)
					}
				} else if be.bytes > fp32[bi] || be.bytes == fp32[bi] && (backward || !v.noPack) {
					// Only a model without backward that stores nothing
					// but saved activations in bf16 has none to shrink.
					t.Errorf("%s, %s, backward %v: %d bytes, not below float32's %d", name, v.name, backward, be.bytes, fp32[bi])
				}
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
