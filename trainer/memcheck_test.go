package trainer

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
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

// deviceBackend is the CPU backend posing as one with its own device
// memory of free bytes (DeviceMemoryFreeReporter), counting the calls.
type deviceBackend struct {
	engine.Backend
	free  int64
	calls int
}

func (d *deviceBackend) DeviceMemoryFree() (int64, error) {
	d.calls++
	return d.free, nil
}

// TestDeviceMemoryCheck: a backend that reports its device's free memory
// is checked against it instead of the host's: a run whose estimate
// exceeds it is refused before its first step, naming the device,
// global_batch_size and the largest batch that fits; at exactly the
// estimate it runs, one byte below it does not. With two replicas each
// checks its own device for its half of the batch.
func TestDeviceMemoryCheck(t *testing.T) {
	cfg := smallRunConfig(t)
	cfg.TotalStepsLimit = 1
	cfg.CheckpointDir = ""
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
	weights := plan.Train.Weights + plan.Train.Gradients + plan.Optimizer + plan.Eval.Weights
	perExample := (plan.Total() - weights) / int64(plan.Batch)
	be := &deviceBackend{Backend: cpu.New(0), free: weights + 7*perExample + perExample/3}
	rec := &recorder{}
	// A host memory far too small: the device's figure is the one checked.
	_, err = Run(context.Background(), cfg, RunOptions{Backend: be, HostMemory: 1, Hooks: []Hook{rec}})
	if err == nil || !strings.Contains(err.Error(), "global_batch_size 16") || !strings.Contains(err.Error(), "on the device cpu") ||
		!strings.Contains(err.Error(), "a batch of at most 7 per replica fits") {
		t.Fatalf("error %v", err)
	}
	if be.calls != 1 || len(rec.steps) != 0 {
		t.Fatalf("%d free-memory queries, %d steps before the refusal; want 1 and 0", be.calls, len(rec.steps))
	}
	be.free = plan.Total()
	if _, err := Run(context.Background(), cfg, RunOptions{Backend: be, HostMemory: 1}); err != nil {
		t.Fatalf("at exactly the estimate (%d bytes): %v", plan.Total(), err)
	}
	be.free = plan.Total() - 1
	if _, err := Run(context.Background(), cfg, RunOptions{Backend: be}); err == nil || !strings.Contains(err.Error(), "lower global_batch_size") {
		t.Fatalf("one byte below the estimate (%d bytes): error %v", plan.Total(), err)
	}

	// Two replicas of 8: rank 0 evaluates, rank 1 does not, so each
	// device needs its own figure; each is refused one byte below it.
	plans := [2]MemoryPlan{}
	for r := range plans {
		if plans[r], err = EstimateMemory(sized, 2, r == 0); err != nil {
			t.Fatal(err)
		}
	}
	if plans[1].Total() >= plans[0].Total() || plans[0].Batch != 8 {
		t.Fatalf("replica plans %+v", plans)
	}
	for r := range plans {
		opt := RunOptions{Backend: &deviceBackend{Backend: cpu.New(0), free: plans[r].Total() - 1}, Rank: r, WorldSize: 2}
		if err := checkMemory(sized, opt, r == 0); err == nil || !strings.Contains(err.Error(), "a batch of 8") {
			t.Errorf("replica %d one byte below its estimate: error %v", r, err)
		}
		opt.Backend.(*deviceBackend).free = plans[r].Total()
		if err := checkMemory(sized, opt, r == 0); err != nil {
			t.Errorf("replica %d at its estimate: %v", r, err)
		}
	}
}
