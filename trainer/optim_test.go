package trainer

import (
	"math"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
	"github.com/tinyrecursive/trm/engine/enginetest"
)

// oneStep trains one batch on be from the same start as every other call
// and returns the step's report with the trained parameters before and
// after it.
func oneStep(t *testing.T, be engine.Backend, cfg Config) (*StepReport, []float32, []float32) {
	t.Helper()
	params := engine.InitParams(engine.NewLayout(cfg.Arch), 11)
	before := append([]float32(nil), params.Trained...)
	tr, err := New(cfg, be, params, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	in, labels, pids := enginetest.PatternBatch(tr.Model.Config(), 3)
	rep, err := tr.TrainBatch(in, labels, pids)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Info.Skipped {
		t.Fatal("the step was skipped (non-finite loss or gradient)")
	}
	after, err := tr.Model.Params()
	if err != nil {
		t.Fatal(err)
	}
	return rep, before, after.Trained
}

// hostUpdateNorm is the L2 norm of after - before, each difference in
// float32 as the parameters are stored, summed in float64.
func hostUpdateNorm(before, after []float32) float64 {
	s := 0.0
	for i := range before {
		d := float64(after[i] - before[i])
		s += d * d
	}
	return math.Sqrt(s)
}

func updateNormConfig(warmup int) Config {
	cfg := DefaultConfig()
	cfg.Arch = enginetest.StepConfigs()["rope_continue_wide_p"]
	cfg.GlobalBatchSize = cfg.Arch.BatchSize
	cfg.LRWarmupSteps = warmup
	cfg.EMA = true
	return cfg
}

// TestUpdateNorm: the reported update norm is the norm of the change the
// step made to the trained parameters, computed here on the host from the
// weights downloaded before and after. With the recipe's warm-up the first
// step's learning rate is 5e-8, so the update is a few float32 ulps of the
// weights: any rounding of theta on the way (the old one-column GEMM in
// bf16 mode rounded it to bf16) would swamp it.
func TestUpdateNorm(t *testing.T) {
	for _, warmup := range []int{2000, 0} {
		rep, before, after := oneStep(t, cpu.New(0), updateNormConfig(warmup))
		want := hostUpdateNorm(before, after)
		if want == 0 {
			t.Fatalf("warm-up %d: the step changed no parameter", warmup)
		}
		if got := rep.Info.UpdateNorm; math.Abs(got-want) > 1e-12*want {
			t.Errorf("warm-up %d: update norm %.9g, the weights moved by %.9g", warmup, got, want)
		}
	}
}

// TestUpdateNormBF16GEMM: in the bf16 GEMM mode the update norm matches
// the fp32 run's. The first step of AdamATan2 moves each parameter by
// lr*atan2(g, |g|) = +-lr*pi/4 plus the decay, whatever the gradient's
// size, so the bf16 gradients change at most the signs of tiny
// components, and the squared norm not at all; the norms agree to the
// rounding of the updated weights.
func TestUpdateNormBF16GEMM(t *testing.T) {
	if !gemm.BF16Supported() {
		t.Skip("this CPU lacks AVX512_BF16, which the bf16 GEMM mode needs")
	}
	for _, warmup := range []int{2000, 0} {
		cfg := updateNormConfig(warmup)
		ref, _, _ := oneStep(t, cpu.New(0), cfg)
		be, err := cpu.NewWithOptions(cpu.Options{Gemm: cpu.GemmBF16})
		if err != nil {
			t.Fatal(err)
		}
		got, before, after := oneStep(t, be, cfg)
		if h := hostUpdateNorm(before, after); math.Abs(got.Info.UpdateNorm-h) > 1e-12*h {
			t.Errorf("warm-up %d, bf16: update norm %.9g, the weights moved by %.9g", warmup, got.Info.UpdateNorm, h)
		}
		w, g := ref.Info.UpdateNorm, got.Info.UpdateNorm
		if math.Abs(g-w) > 1e-4*w {
			t.Errorf("warm-up %d: update norm %.9g with bf16 GEMMs, %.9g with fp32 (relative difference %.2g)", warmup, g, w, math.Abs(g-w)/w)
		}
		t.Logf("warm-up %d: update norm fp32 %.9g, bf16 %.9g", warmup, w, g)
	}
}
