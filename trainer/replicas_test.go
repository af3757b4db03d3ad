package trainer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/device/comm"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// TestCheckReplicas: identical replicas pass; one weight of one replica
// nudged by a single float32 ulp makes every replica fail with the same
// clear error.
func TestCheckReplicas(t *testing.T) {
	cfg := smallRunConfig(t)
	arch, err := ArchForData(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Arch = arch
	p := engine.InitParams(engine.NewLayout(arch), 3)
	const K = 4
	group := comm.NewHostGroup(K, time.Minute)
	trs := make([]*Trainer, K)
	for r := range K {
		if trs[r], err = NewReplica(cfg, cpu.New(1), p, 10, group[r], K); err != nil {
			t.Fatal(err)
		}
	}
	all := func() []error {
		errs := make([]error, K)
		var wg sync.WaitGroup
		for r := range K {
			wg.Add(1)
			go func() { defer wg.Done(); errs[r] = trs[r].CheckReplicas() }()
		}
		wg.Wait()
		return errs
	}
	for r, err := range all() {
		if err != nil {
			t.Fatalf("identical replicas: rank %d: %v", r, err)
		}
	}
	// Perturb rank 2 of 4: its first trained weight moves by one ulp.
	be := trs[2].Model.Backend()
	params, _, _, _ := trs[2].Model.ParamBuffers()
	w := make([]float32, params.Len())
	be.Download(w, params)
	w[0] = nextUp(w[0])
	be.Upload(params, w)
	if err := be.Sync(); err != nil {
		t.Fatal(err)
	}
	for r, err := range all() {
		if !errors.Is(err, ErrReplicasDiverged) || !strings.Contains(err.Error(), "1 of 4 replicas") {
			t.Errorf("rank %d: want the divergence reported, got %v", r, err)
		}
	}
	// A single replica has nothing to compare.
	one, err := New(cfg, cpu.New(1), p, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := one.CheckReplicas(); err != nil {
		t.Fatal(err)
	}
}

func nextUp(x float32) float32 {
	for d := float32(1e-9); ; d *= 2 {
		if y := x + d*max(1, abs32(x)); y != x {
			return y
		}
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// TestRunAlignsDivergentStart: replicas given different starting weights
// train from rank 0's (broadcast at a fresh start), so the replica check
// that runs before the first step and every few steps finds them equal.
// (TestCheckReplicas covers a replica that diverges mid-run.)
func TestRunAlignsDivergentStart(t *testing.T) {
	cfg := smallRunConfig(t)
	cfg.CheckpointDir = ""
	cfg.ReplicaCheckEvery = 2
	cfg.TotalStepsLimit = 4
	arch, err := ArchForData(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const K = 2
	group := comm.NewHostGroup(K, time.Minute)
	errs := make([]error, K)
	var wg sync.WaitGroup
	for r := range K {
		wg.Add(1)
		go func() {
			defer wg.Done()
			init := engine.InitParams(engine.NewLayout(withBatch(arch, cfg.GlobalBatchSize/K)), uint64(1+r))
			_, errs[r] = Run(context.Background(), cfg, RunOptions{Backend: cpu.New(1), Comm: group[r], Init: init})
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

// lossRecorder keeps every step's loss.
type lossRecorder struct {
	NopHook
	losses []float64
}

func (r *lossRecorder) OnStep(s *StepReport) { r.losses = append(r.losses, s.Metrics.Loss) }

// TestOneRankGroup: a group of one runs every collective of the
// data-parallel path (the one-GPU check uses it with NCCL) and must give
// exactly the single replica's losses.
func TestOneRankGroup(t *testing.T) {
	cfg := smallRunConfig(t)
	cfg.CheckpointDir = ""
	cfg.ReplicaCheckEvery = 2
	alone, grouped := &lossRecorder{}, &lossRecorder{}
	if _, err := Run(context.Background(), cfg, RunOptions{Backend: cpu.New(1), Hooks: []Hook{alone}}); err != nil {
		t.Fatal(err)
	}
	g := comm.NewHostGroup(1, time.Minute)
	if _, err := Run(context.Background(), cfg, RunOptions{Backend: cpu.New(1), Comm: g[0], Hooks: []Hook{grouped}}); err != nil {
		t.Fatal(err)
	}
	if len(alone.losses) == 0 || len(alone.losses) != len(grouped.losses) {
		t.Fatalf("%d steps alone, %d in a group of one", len(alone.losses), len(grouped.losses))
	}
	for i := range alone.losses {
		if alone.losses[i] != grouped.losses[i] {
			t.Fatalf("step %d: loss %.9g alone, %.9g in a group of one", i+1, alone.losses[i], grouped.losses[i])
		}
	}
}
