// Package costmodel predicts how long a training step takes on a named
// GPU without one: a Recorder (an engine.Backend that executes nothing)
// collects every kernel launch, cuBLAS call and copy the CUDA backend
// would issue for one step, each with its FLOPs and the bytes it must move
// (the formulas of kernels/README.md), and a roofline per launch turns
// them into time from the GPU's datasheet figures.
//
// The prediction is a floor for the kernels as written: each launch takes
// max(FLOPs / peak rate of its unit, bytes / memory bandwidth) plus a
// launch overhead, and each host synchronisation a round trip. Real GEMMs
// reach a fraction of the tensor peak (less on thin shapes), and the
// attention kernels run on the CUDA cores in fp32, so measured steps are
// slower and measured MFU lower. docs/gpu-cost-model.md has the
// assumptions and the tables of the paper presets.
package costmodel

import (
	"fmt"
	"sort"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/trainer"
)

// Options select what Predict models.
type Options struct {
	// GPU names the GPU (GPUs lists them; a driver's device name works).
	GPU string
	// Replicas is the number of data-parallel GPUs the global batch is
	// split over (0 or 1: one GPU holds all of it). The gradient
	// all-reduce between them is not modelled.
	Replicas int
	// Eager assumes eager launches instead of the CUDA graphs the backend
	// replays by default (TRM_CUDA_GRAPHS=0).
	Eager bool
}

// Predict models one training step of cfg (forward, loss, backward and
// the optimizer, exactly as trainer.Trainer.TrainBatch runs it) at cfg's
// global batch size on one GPU.
func Predict(cfg trainer.Config, gpu string) (*Report, error) {
	return PredictWith(cfg, Options{GPU: gpu})
}

// PredictWith is Predict with options.
func PredictWith(cfg trainer.Config, opt Options) (*Report, error) {
	g, err := LookupGPU(opt.GPU)
	if err != nil {
		return nil, err
	}
	replicas := max(opt.Replicas, 1)
	// The puzzle table's size changes no launch (only the batch's rows are
	// read and updated), so the recorded model keeps one row and the
	// table's memory is added back below.
	tableRows := cfg.Arch.NumPuzzleIdentifiers
	rec := cfg
	if rec.Arch.NumPuzzleIdentifiers > 1 {
		rec.Arch.NumPuzzleIdentifiers = 1
	}
	r := NewRecorder()
	layout, err := engine.NewArchLayout(rec.Arch, rec.ArchSettings)
	if err != nil {
		return nil, err
	}
	tr, err := trainer.New(rec, r, engine.NewParams(layout), 1, replicas)
	if err != nil {
		return nil, err
	}
	B, L := tr.Model.Shape().B, tr.Model.Shape().L
	in, labels, pids := make([]int32, B*L), make([]int32, B*L), make([]int32, B)
	r.Reset()
	if _, err := tr.TrainBatch(in, labels, pids); err != nil {
		return nil, fmt.Errorf("recording a training step: %w", err)
	}
	mem := float64(r.AllocBytes()) + 4*float64(max(tableRows-1, 0))*float64(cfg.Arch.PuzzleEmbNdim)
	what := "training step (forward, loss, backward, optimizer)"
	if replicas > 1 {
		what += fmt.Sprintf(", one of %d data-parallel GPUs (all-reduce not modelled)", replicas)
	}
	return newReport(r, g, !opt.Eager, tr.Model.Config(), what, mem), nil
}

// PredictModelStep models one engine.Model.Step with backward (forward,
// loss head and backward pass, no optimizer and no read-back) of arch at
// arch.BatchSize: what bench/gpu times per step.
func PredictModelStep(arch engine.Config, gpu string, graphs bool) (*Report, error) {
	g, err := LookupGPU(gpu)
	if err != nil {
		return nil, err
	}
	tableRows := arch.NumPuzzleIdentifiers
	if arch.NumPuzzleIdentifiers > 1 {
		arch.NumPuzzleIdentifiers = 1
	}
	r := NewRecorder()
	m, err := engine.NewModel(arch, r, engine.Options{Backward: true, ExplorationSeed: 1})
	if err != nil {
		return nil, err
	}
	B, L := m.B, m.L
	if err := m.SetBatch(make([]int32, B*L), make([]int32, B*L), make([]int32, B)); err != nil {
		return nil, err
	}
	c := m.NewCarry()
	r.Reset()
	if err := m.Step(c, engine.StepOptions{Train: true, Backward: true, GradScale: 1 / float32(B)}); err != nil {
		return nil, fmt.Errorf("recording a model step: %w", err)
	}
	mem := float64(r.AllocBytes()) + 4*float64(max(tableRows-1, 0))*float64(arch.PuzzleEmbNdim)
	arch.NumPuzzleIdentifiers = tableRows
	return newReport(r, g, graphs, arch, "model step (forward, loss, backward)", mem), nil
}

// Report is a prediction: the per-kernel and per-GEMM breakdown of one
// step and its totals. Times are in seconds.
type Report struct {
	// Label names the prediction in WriteSummary (a preset name, say);
	// the caller sets it.
	Label     string
	GPU       GPU
	Graphs    bool
	Overheads Overheads
	Arch      engine.Config // the model, BatchSize the per-GPU batch
	What      string        // what was recorded
	Launches  []Launch      // every launch of the step, in order

	Kernels []KernelRow // one row per kernel, largest predicted time first
	Gemms   []GemmRow   // one row per GEMM shape, largest predicted time first

	Calls, Syncs int
	FLOPs        float64 // executed, every unit
	Bytes        float64 // device memory traffic (PCIe copies excluded)
	HostBytes    float64 // PCIe traffic
	GemmFLOPs    float64 // bf16 tensor-core GEMMs
	AttnFLOPs    float64 // the attention products (model FLOPs, no recomputation)
	ModelFLOPs   float64 // GemmFLOPs + AttnFLOPs: what MFU counts

	Time         float64 // predicted step time
	GemmTime     float64 // bf16 GEMMs, their launch overhead included
	AttnTime     float64 // attention kernels, launch overhead included
	OtherTime    float64 // every other launch and copy, overhead included
	SyncTime     float64 // host synchronisations
	OverheadTime float64 // launch overheads alone (part of the three above)

	// MFU is ModelFLOPs / (Time x the GPU's dense bf16 tensor peak).
	MFU float64
	// DeviceBytes is the device memory of the engine's and optimizer's
	// buffers (not the backend's scratch or cuBLAS's workspace).
	DeviceBytes float64
}

// KernelRow aggregates the launches of one kernel.
type KernelRow struct {
	Kernel       string
	Unit         Unit
	Calls        int
	FLOPs, Bytes float64
	// ComputeTime, MemoryTime: the sums of each launch's two roofline
	// terms; Time: the sum of max(compute, memory) + overhead per launch.
	ComputeTime, MemoryTime, Time float64
	Share                         float64 // of the step's predicted time
}

// Bound names what limits the row: "compute", "memory" or "launch" (the
// overheads outweigh both roofline terms).
func (k KernelRow) Bound() string { return bound(k.ComputeTime, k.MemoryTime, k.Time) }

func bound(compute, memory, total float64) string {
	switch {
	case total-max(compute, memory) > max(compute, memory):
		return "launch"
	case compute >= memory:
		return "compute"
	}
	return "memory"
}

// GemmRow aggregates the GEMMs of one shape.
type GemmRow struct {
	GemmShape
	Unit                          Unit
	Calls                         int
	FLOPs, Bytes                  float64
	ComputeTime, MemoryTime, Time float64
	Share                         float64
}

// Bound is as KernelRow's.
func (g GemmRow) Bound() string { return bound(g.ComputeTime, g.MemoryTime, g.Time) }

// roofline returns a launch's compute and memory times on g.
func roofline(l Launch, g GPU) (compute, memory float64) {
	switch l.Unit {
	case TensorBF16:
		compute = l.FLOPs / g.TensorBF16
	case CUDACoreFP32:
		compute = l.FLOPs / g.FP32
	}
	if l.Unit == HostCopy {
		return compute, l.Bytes / g.PCIe
	}
	return compute, l.Bytes / g.HBM
}

func isAttention(kernel string) bool {
	return len(kernel) > 9 && kernel[:9] == "trm_attn_"
}

func newReport(r *Recorder, g GPU, graphs bool, arch engine.Config, what string, mem float64) *Report {
	ov := GraphOverheads
	if !graphs {
		ov = EagerOverheads
	}
	rep := &Report{GPU: g, Graphs: graphs, Overheads: ov, Arch: arch, What: what, Launches: r.Launches(), Syncs: r.Syncs(), DeviceBytes: mem}
	kern := map[string]*KernelRow{}
	gemm := map[GemmShape]*GemmRow{}
	for _, l := range rep.Launches {
		c, m := roofline(l, g)
		t := max(c, m) + ov.Launch
		rep.Calls++
		rep.FLOPs += l.FLOPs
		if l.Unit == HostCopy {
			rep.HostBytes += l.Bytes
		} else {
			rep.Bytes += l.Bytes
		}
		rep.Time += t
		rep.OverheadTime += ov.Launch
		switch {
		case l.Unit == TensorBF16:
			rep.GemmFLOPs += l.ModelFLOPs
			rep.GemmTime += t
		case isAttention(l.Kernel):
			rep.AttnFLOPs += l.ModelFLOPs
			rep.AttnTime += t
		default:
			rep.OtherTime += t
		}
		k := kern[l.Kernel]
		if k == nil {
			k = &KernelRow{Kernel: l.Kernel, Unit: l.Unit}
			kern[l.Kernel] = k
		}
		k.Calls++
		k.FLOPs += l.FLOPs
		k.Bytes += l.Bytes
		k.ComputeTime += c
		k.MemoryTime += m
		k.Time += t
		if l.Gemm != nil {
			s := *l.Gemm
			row := gemm[s]
			if row == nil {
				row = &GemmRow{GemmShape: s, Unit: l.Unit}
				gemm[s] = row
			}
			row.Calls++
			row.FLOPs += l.FLOPs
			row.Bytes += l.Bytes
			row.ComputeTime += c
			row.MemoryTime += m
			row.Time += t
		}
	}
	rep.SyncTime = float64(rep.Syncs) * ov.Sync
	rep.Time += rep.SyncTime
	rep.ModelFLOPs = rep.GemmFLOPs + rep.AttnFLOPs
	if rep.Time > 0 {
		rep.MFU = rep.ModelFLOPs / (rep.Time * g.TensorBF16)
	}
	for _, k := range kern {
		k.Share = k.Time / rep.Time
		rep.Kernels = append(rep.Kernels, *k)
	}
	sort.Slice(rep.Kernels, func(i, j int) bool {
		a, b := rep.Kernels[i], rep.Kernels[j]
		if a.Time != b.Time {
			return a.Time > b.Time
		}
		return a.Kernel < b.Kernel
	})
	for _, row := range gemm {
		row.Share = row.Time / rep.Time
		rep.Gemms = append(rep.Gemms, *row)
	}
	sort.Slice(rep.Gemms, func(i, j int) bool {
		a, b := rep.Gemms[i], rep.Gemms[j]
		if a.Time != b.Time {
			return a.Time > b.Time
		}
		return fmt.Sprint(a.GemmShape) < fmt.Sprint(b.GemmShape)
	})
	return rep
}

// OutsideGEMMShare is the share of the predicted time spent outside the
// bf16 GEMMs: attention, every other kernel, copies and synchronisations.
func (r *Report) OutsideGEMMShare() float64 {
	if r.Time == 0 {
		return 0
	}
	return 1 - r.GemmTime/r.Time
}

// FusableShare is the share of the predicted time outside the GEMMs and
// the attention kernels: the elementwise, normalisation, loss, embedding
// and optimizer kernels, copies, launch gaps and synchronisations, which
// kernel fusion (folding them into the GEMMs' epilogues or into fewer
// kernels) can win back.
func (r *Report) FusableShare() float64 {
	if r.Time == 0 {
		return 0
	}
	return (r.OtherTime + r.SyncTime) / r.Time
}
