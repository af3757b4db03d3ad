//go:build cuda

package cuda_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tinyrecursive/trm/cuda"
	"github.com/tinyrecursive/trm/device/gpucomm"
	"github.com/tinyrecursive/trm/device/nccl"
	"github.com/tinyrecursive/trm/trainer"
)

// memoryProbe records the backend's device memory in use (and the
// stand-in's count of live buffers) at every step, evaluation and
// checkpoint of a run.
type memoryProbe struct {
	trainer.NopHook
	be *cuda.Backend
	// readings in event order; checkpoints counts the checkpoints seen
	// before each reading.
	readings []memReading
	evals    int
	ckpts    int
	steps    int
}

type memReading struct {
	event        string
	step         int
	evals, ckpts int
	inUse        uint64
	liveBuffers  int
	liveBytes    int64
}

func (p *memoryProbe) read(event string, step int) {
	inUse, _ := p.be.DeviceMemory()
	n, bytes := cuda.StandinLive(0)
	p.readings = append(p.readings, memReading{event, step, p.evals, p.ckpts, inUse, n, bytes})
}

func (p *memoryProbe) OnStep(r *trainer.StepReport) { p.steps++; p.read("step", p.steps) }
func (p *memoryProbe) OnEval(r *trainer.EvalReport) { p.evals++; p.read("evaluation", r.Step) }
func (p *memoryProbe) OnCheckpoint(c trainer.CheckpointInfo) {
	p.ckpts++
	p.read("checkpoint", c.Step)
}

// TestDeviceMemoryStopsGrowing: a run of 100 training steps on the CUDA
// backend with an evaluation and a checkpoint every 10 steps holds no more
// device memory after its first evaluation and checkpoint than at them.
// Device memory is not returned by the garbage collector, so a buffer
// made per evaluation (its carry), per checkpoint (the gathered carry) or
// per call of anything else would grow it for the whole run. The run is a
// data-parallel group of one (NCCL on the stand-in), so the broadcast of
// the weights, the gather of the carry at every checkpoint and the
// replica checks take their multi-GPU path.
func TestDeviceMemoryStopsGrowing(t *testing.T) {
	be, err := cuda.NewWithOptions(0, fp32Eager)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	lib, err := nccl.Open()
	if err != nil {
		t.Fatalf("NCCL: %v", err)
	}
	id, err := lib.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	group, err := gpucomm.New(lib, id, 0, 1, be, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	dir := t.TempDir()
	// 160 puzzles in batches of 16: 10 steps an epoch, an evaluation and
	// a checkpoint after each.
	if err := trainer.BuildDemoSudoku(dir, 160, 16, 8, 0, 3, nil); err != nil {
		t.Fatal(err)
	}
	cfg := trainer.DemoConfig()
	cfg.DataPaths = []string{dir}
	cfg.GlobalBatchSize = 16
	cfg.Epochs, cfg.EvalInterval = 10, 1
	cfg.TotalStepsLimit = 100
	cfg.CheckpointDir = filepath.Join(t.TempDir(), "ckpt")
	cfg.CheckpointEveryEval = true
	cfg.KeepCheckpoints = 1
	probe := &memoryProbe{be: be}
	sum, err := trainer.Run(context.Background(), cfg, trainer.RunOptions{Backend: be, Comm: group, Hooks: []trainer.Hook{probe}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Steps < 100 || probe.evals < 9 || probe.ckpts < 9 {
		t.Fatalf("the run took %d steps, %d evaluations, %d checkpoints; want 100 steps and an evaluation and checkpoint every 10", sum.Steps, probe.evals, probe.ckpts)
	}
	var base *memReading
	for i := range probe.readings {
		r := &probe.readings[i]
		if base == nil {
			if r.event == "checkpoint" {
				base = r
				t.Logf("after the first evaluation and checkpoint (step %d): %d bytes in use, %d live buffers", r.step, r.inUse, r.liveBuffers)
			}
			continue
		}
		if r.inUse > base.inUse || r.liveBuffers > base.liveBuffers || r.liveBytes > base.liveBytes {
			t.Fatalf("device memory grew after the first evaluation and checkpoint: at the %s of step %d (%d evaluations, %d checkpoints) %d bytes in use, %d live buffers of %d bytes; at the first checkpoint (step %d) %d bytes, %d buffers of %d bytes",
				r.event, r.step, r.evals, r.ckpts, r.inUse, r.liveBuffers, r.liveBytes, base.step, base.inUse, base.liveBuffers, base.liveBytes)
		}
	}
	last := probe.readings[len(probe.readings)-1]
	t.Logf("at the end (step %d, %d evaluations, %d checkpoints): %d bytes in use, %d live buffers", last.step, last.evals, last.ckpts, last.inUse, last.liveBuffers)
}
