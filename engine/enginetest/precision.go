package enginetest

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tinyrecursive/trm/engine"
)

// RunPrecision compares a reduced-precision backend (f, e.g. bf16 GEMM
// operands) with a full-precision one (ref) under tol (BF16Step for bf16):
// one training step from a fresh carry for every StepConfig (three
// parameter seeds) and for every golden case, on the reference's weights
// and batch. The floating-point outputs are compared (losses, logits,
// halting logits, carries, every gradient); see BF16Steps for why not the
// integer ones. The determinism of f across thread counts is a separate
// check (RunDeterminism).
func RunPrecision(t *testing.T, f, ref Factory, tol Tolerance) {
	t.Run("Steps", func(t *testing.T) {
		for name, cfg := range StepConfigs() {
			t.Run(name, func(t *testing.T) {
				for seed := uint64(1); seed <= 3; seed++ {
					want := precisionStep(t, ref(), cfg, seed)
					got := precisionStep(t, f(), cfg, seed)
					tol.Check(t, fmt.Sprintf("training step, seed %d", seed), got, want)
				}
			})
		}
	})
	t.Run("Golden", func(t *testing.T) { goldenPrecision(t, f, ref, tol) })
}

// goldenPrecision compares f's training step on every golden case with
// ref's under tol, output by output.
func goldenPrecision(t *testing.T, f, ref Factory, tol Tolerance) {
	for _, dir := range GoldenCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg, params, in, labels, pids := loadGoldenCase(t, dir)
			want := precisionGolden(t, ref(), cfg, params, in, labels, pids)
			got := precisionGolden(t, f(), cfg, params, in, labels, pids)
			for i, name := range []string{"logits", "q_halt_logits", "q_continue_logits", "lm_loss", "carry", "gradients", "puzzle gradients"} {
				tol.Check(t, name, got[i], want[i])
			}
		})
	}
}

// precisionStep runs a training step (forward, loss, backward) of cfg from
// a fresh carry, with parameters from seed, and returns its outputs (see
// trainStepOutputs) as one vector.
func precisionStep(t *testing.T, be engine.Backend, cfg engine.Config, seed uint64) []float64 {
	t.Helper()
	m, err := engine.NewModel(cfg, be, engine.Options{Backward: true, ExplorationSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetParams(engine.InitParams(m.Layout, seed)); err != nil {
		t.Fatal(err)
	}
	B := cfg.BatchSize
	in, labels, pids := PatternBatch(cfg, 3)
	if err := m.SetBatch(in, labels, pids); err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, v := range trainStepOutputs(t, m, 1/float32(B)) {
		out = append(out, v...)
	}
	return out
}

// precisionGolden runs a golden case's training step and returns its
// floating-point outputs in the order RunPrecision names them.
func precisionGolden(t *testing.T, be engine.Backend, cfg goldenConfig, p *engine.Params, in, labels, pids []int32) [][]float64 {
	t.Helper()
	m := newGoldenModel(t, be, cfg, p, true)
	if err := m.SetBatch(in, labels, pids); err != nil {
		t.Fatal(err)
	}
	return trainStepOutputs(t, m, 1)
}

// trainStepOutputs runs one training step of m (batch set) from a fresh
// carry and returns its floating-point outputs in the order RunPrecision
// names them: logits, q_halt and q_continue logits, lm loss, the carry's
// states one after the other, gradients, puzzle gradients.
func trainStepOutputs(t *testing.T, m *engine.Model, gradScale float32) [][]float64 {
	t.Helper()
	c := m.NewCarry()
	if err := m.Step(c, engine.StepOptions{Train: true, Backward: true, GradScale: gradScale}); err != nil {
		t.Fatal(err)
	}
	r, err := m.Result(c, true)
	if err != nil {
		t.Fatal(err)
	}
	zs, err := m.CarryStates(c)
	if err != nil {
		t.Fatal(err)
	}
	var carry []float32
	for _, z := range zs {
		carry = append(carry, z...)
	}
	g, l, err := m.Gradients()
	if err != nil {
		t.Fatal(err)
	}
	return [][]float64{f64(r.Logits), f64(r.QHalt), f64(r.QContinue), r.LMLoss, f64(carry), f64(g), f64(l)}
}
