package trainer

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/trainer/data"
)

// TestHostMemoryCheck: a CPU run whose estimate exceeds the host memory
// given is refused before its first step, naming global_batch_size and
// the largest batch that fits; at exactly the estimate it runs. The
// estimate follows the architecture.
func TestHostMemoryCheck(t *testing.T) {
	cfg := smallRunConfig(t)
	cfg.TotalStepsLimit = 2
	ds, err := data.Open("train", cfg.DataPaths...)
	if err != nil {
		t.Fatal(err)
	}
	sized := cfg
	sized.Arch = WithDataset(cfg.Arch, ds.Meta)
	ds.Close()
	plan, err := EstimateMemory(sized, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	hrm, err := EstimateMemory(withArch(sized, "hrm"), 1, true)
	// hrm: a second network's weights, but two differentiated calls
	// instead of L_cycles + 1.
	if err != nil || hrm.Optimizer <= plan.Optimizer || hrm.Train.Activations >= plan.Train.Activations {
		t.Fatalf("hrm estimate %+v, trm %+v (%v)", hrm, plan, err)
	}
	weights := plan.Train.Weights + plan.Train.Gradients + plan.Optimizer + plan.Eval.Weights
	perExample := (plan.Total() - weights) / int64(plan.Batch)
	avail := weights + 5*perExample + perExample/2 // room for a batch of 5
	rec := &recorder{}
	_, err = Run(context.Background(), cfg, RunOptions{Backend: cpu.New(0), HostMemory: avail, Hooks: []Hook{rec}})
	if err == nil || !strings.Contains(err.Error(), "global_batch_size 16") || !strings.Contains(err.Error(), "a batch of at most 5 per replica fits") {
		t.Fatalf("error %v", err)
	}
	if len(rec.steps) != 0 {
		t.Fatalf("%d steps ran before the refusal", len(rec.steps))
	}
	cfg.CheckpointDir = ""
	if _, err := Run(context.Background(), cfg, RunOptions{Backend: cpu.New(0), HostMemory: plan.Total()}); err != nil {
		t.Fatalf("at exactly the estimate (%d bytes): %v", plan.Total(), err)
	}
	if _, err := Run(context.Background(), cfg, RunOptions{Backend: cpu.New(0), HostMemory: plan.Total() - 1}); err == nil {
		t.Fatal(fmt.Sprintf("one byte below the estimate (%d bytes) ran", plan.Total()))
	}
}
