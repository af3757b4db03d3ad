package engine_test

import (
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// TestEstimateArchMemoryMatchesAllocations: for every architecture the
// estimate equals, byte for byte, what NewModel and NewCarry allocate,
// with and without backward, attention and mlp_t, and the architectures
// differ (hrm's second network and trm_hier6's six latents cost more).
func TestEstimateArchMemoryMatchesAllocations(t *testing.T) {
	base := engine.DefaultConfig()
	base.BatchSize, base.SeqLen, base.VocabSize, base.NumPuzzleIdentifiers = 3, 9, 7, 5
	base.HiddenSize, base.NumHeads, base.PuzzleEmbNdim, base.PuzzleEmbLen = 32, 4, 32, 0
	base.HCycles, base.LCycles, base.HLayers, base.LLayers = 2, 3, 1, 2
	totals := map[string]int64{}
	for _, a := range engine.Architectures() {
		for _, mlpt := range []bool{false, true} {
			c := base
			s := engine.ArchSettings{Name: a.Group}
			switch a.Group {
			case "hrm", "transformers_baseline":
				c.NoACTContinue = false
			}
			if a.Group == "transformers_baseline" {
				c.PosEncodings = engine.PosLearned
			}
			if mlpt {
				c.MLPT, c.PosEncodings = true, engine.PosNone
			}
			if err := engine.ValidateArch(c, s); err != nil {
				continue // a combination the architecture rejects
			}
			for _, backward := range []bool{false, true} {
				be := &countingBackend{Backend: cpu.New(1)}
				m, err := engine.NewModel(c, be, engine.Options{Backward: backward, Arch: s})
				if err != nil {
					t.Fatalf("%s: %v", a.Group, err)
				}
				m.NewCarry()
				est, err := engine.EstimateArchMemory(c, s, backward)
				if err != nil {
					t.Fatal(err)
				}
				if est.Total() != be.bytes {
					t.Errorf("%s mlp_t %v backward %v: estimate %d bytes (%+v), allocated %d", a.Group, mlpt, backward, est.Total(), est, be.bytes)
				}
				if backward && !mlpt {
					totals[a.Group] = est.Total()
				}
			}
		}
	}
	if len(totals) != len(engine.Architectures()) {
		t.Fatalf("estimated %d architectures with attention, want %d: %v", len(totals), len(engine.Architectures()), totals)
	}
	if totals["trm_hier6"] <= totals["trm"] || totals["trm_singlez"] >= totals["trm"] {
		t.Errorf("trm_hier6 %d should need more than trm %d, trm_singlez %d less", totals["trm_hier6"], totals["trm"], totals["trm_singlez"])
	}
}
