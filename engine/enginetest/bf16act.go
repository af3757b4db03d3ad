package enginetest

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tinyrecursive/trm/engine"
)

// BF16ActStep compares one training step of a backend that keeps its
// activations in bf16 (engine.BF16Activations, on top of bf16 GEMM
// operands) with the fp32 path. Why this size: see the measurement in its
// use (RunBF16Activations) and docs/training.md#bf16-activations.
var BF16ActStep = Tolerance{Abs: 2e-1, Rel: 2e-1}

// WithoutBF16Activations returns be with engine.BF16Activations hidden (a
// model on it keeps float32 activations, and bf16 only where
// engine.BF16Storage puts it), its fusions and bf16 storage still
// visible.
func WithoutBF16Activations(be engine.Backend) engine.Backend {
	if a3, ok := be.(engine.FusedAdd3); ok {
		return noBF16ActAdd3{noBF16Act{be}, a3}
	}
	return noBF16Act{be}
}

// noBF16Act hides StoresBF16Activations and passes on bf16 storage;
// noBF16ActAdd3 passes on the fusion too.
type noBF16Act struct{ engine.Backend }

type noBF16ActAdd3 struct {
	noBF16Act
	engine.FusedAdd3
}

func (n noBF16Act) StoresBF16() bool { return engine.StoresBF16(n.Backend) }

func (n noBF16Act) PacksBF16() bool {
	s, ok := n.Backend.(engine.BF16Storage)
	return ok && s.PacksBF16()
}

// RunBF16Activations checks a backend that keeps activations in bf16 (f)
// against a float32 one (ref): every op of the contract on bf16 operands
// gives the bits of the op on their widened values, rounded; a model on
// f stores its activations in bf16; one training step of every step,
// architecture and Sudoku-width block config (three parameter seeds) and
// of every golden case agrees with ref's within BF16ActStep. A backend
// that does not report bf16 activations fails it (a skip would hide the
// mode going missing).
func RunBF16Activations(t *testing.T, f, ref Factory) {
	be := f()
	if !engine.StoresBF16Activations(be) {
		t.Fatal("the backend does not keep activations in bf16 (engine.BF16Activations)")
	}
	if st := engine.StorageOf(be); st != (engine.Storage{Saved: engine.BF16, Work: engine.BF16, Act: engine.BF16}) {
		t.Fatalf("storage %+v on a backend with bf16 activations", st)
	}
	t.Run("Ops", func(t *testing.T) {
		h := newHarness(t, f)
		t.Run("Elementwise", func(t *testing.T) { testBF16ActOps(t, h) })
		t.Run("Attention", func(t *testing.T) { testBF16ActAttention(t, h) })
	})
	cfgs, names := stepAndArchConfigs(BF16BlockConfigs())
	t.Run("Steps", func(t *testing.T) {
		for _, name := range names {
			ac := cfgs[name]
			t.Run(name, func(t *testing.T) {
				for seed := uint64(1); seed <= 3; seed++ {
					want := archPrecisionStep(t, ref(), ac, seed)
					got := archPrecisionStep(t, f(), ac, seed)
					// The mode must change the numbers: equal bits would
					// mean the activations were not stored in bf16.
					if seed == 1 {
						plain := archPrecisionStep(t, WithoutBF16Activations(f()), ac, seed)
						if equalBits(got, plain) {
							t.Fatal("a step with bf16 activations gives the bits of one with float32 activations")
						}
					}
					BF16ActStep.Check(t, fmt.Sprintf("training step, seed %d", seed), got, want)
				}
			})
		}
	})
	t.Run("Golden", func(t *testing.T) {
		for _, dir := range GoldenCases(t) {
			t.Run(filepath.Base(dir), func(t *testing.T) {
				cfg, params, in, labels, pids := loadGoldenCase(t, dir)
				want := precisionGolden(t, ref(), cfg, params, in, labels, pids)
				got := precisionGolden(t, f(), cfg, params, in, labels, pids)
				for i, name := range []string{"logits", "q_halt_logits", "q_continue_logits", "lm_loss", "carry", "gradients", "puzzle gradients"} {
					BF16ActStep.Check(t, name, got[i], want[i])
				}
			})
		}
	})
}

// archPrecisionStep is precisionStep for any architecture.
func archPrecisionStep(t *testing.T, be engine.Backend, ac ArchStepConfig, seed uint64) []float64 {
	t.Helper()
	m, err := engine.NewModel(ac.Config, be, engine.Options{Backward: true, ExplorationSeed: 3, Arch: ac.Arch})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetParams(engine.InitParams(m.Layout, seed)); err != nil {
		t.Fatal(err)
	}
	in, labels, pids := PatternBatch(ac.Config, 3)
	if err := m.SetBatch(in, labels, pids); err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, v := range trainStepOutputs(t, m, 1/float32(ac.Config.BatchSize)) {
		out = append(out, v...)
	}
	return out
}

// equalBits reports whether a and b hold the same values (NaN matching NaN).
func equalBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return true
}
