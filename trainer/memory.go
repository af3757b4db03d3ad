package trainer

import (
	"fmt"

	"github.com/tinyrecursive/trm/engine"
)

// MemoryPlan is the backend memory one training replica allocates, in
// bytes, computed from the config before anything is allocated.
type MemoryPlan struct {
	// Batch is the replica's share of global_batch_size.
	Batch int
	// Train is the training model (with backward) and its carry.
	Train engine.Memory
	// Optimizer is AdamATan2's two moments and its update buffer, and the
	// EMA shadow when ema is on: 3 (or 4) x 4 bytes per trained parameter.
	Optimizer int64
	// Eval is the evaluation model (forward only, the same batch) and its
	// carry, allocated when the run has test data.
	Eval engine.Memory
	// Collectives is the gathered puzzle-embedding gradient rows and
	// identifiers of the whole global batch, with several replicas.
	Collectives int64
}

// Total is the sum of the parts.
func (p MemoryPlan) Total() int64 {
	return p.Train.Total() + p.Optimizer + p.Eval.Total() + p.Collectives
}

// EstimateMemory plans the memory of one replica of a run of cfg over
// worldSize replicas, with evaluation when withEval. The dataset's sizes
// (seq_len, vocab_size, num_puzzle_identifiers) must already be in
// cfg.Arch (WithDataset, ArchForData). The figure is exact for what the
// engine and trainer allocate through the backend (engine.EstimateMemory
// gives the formula); the backend's own workspace and the host's
// memory-mapped data come on top. Every activation is counted as
// float32; EstimateStorageMemory gives the exact figure for a backend that
// stores some in bf16.
func EstimateMemory(cfg Config, worldSize int, withEval bool) (MemoryPlan, error) {
	return EstimateStorageMemory(cfg, worldSize, withEval, engine.Storage{})
}

// EstimateStorageMemory is EstimateMemory for models whose buffers have
// the element types st (engine.StorageOf the run's backend).
func EstimateStorageMemory(cfg Config, worldSize int, withEval bool, st engine.Storage) (MemoryPlan, error) {
	if worldSize < 1 || cfg.GlobalBatchSize <= 0 || cfg.GlobalBatchSize%worldSize != 0 {
		return MemoryPlan{}, fmt.Errorf("global_batch_size %d is not divisible by %d replicas", cfg.GlobalBatchSize, worldSize)
	}
	if err := cfg.Validate(); err != nil {
		return MemoryPlan{}, err
	}
	arch := cfg.Arch
	arch.BatchSize = cfg.GlobalBatchSize / worldSize
	p := MemoryPlan{Batch: arch.BatchSize}
	var err error
	if p.Train, err = engine.EstimateStorageMemory(arch, cfg.ArchSettings, true, st); err != nil {
		return MemoryPlan{}, err
	}
	if withEval {
		if p.Eval, err = engine.EstimateStorageMemory(arch, cfg.ArchSettings, false, st); err != nil {
			return MemoryPlan{}, err
		}
	}
	layout, err := engine.NewArchLayout(arch, cfg.ArchSettings)
	if err != nil {
		return MemoryPlan{}, err
	}
	trained := int64(layout.NumTrained)
	buffers := int64(3)
	if cfg.EMA {
		buffers = 4
	}
	p.Optimizer = 4*buffers*trained + 8
	if worldSize > 1 {
		p.Collectives = 4*int64(cfg.GlobalBatchSize)*int64(arch.PuzzleEmbNdim) + 4*int64(cfg.GlobalBatchSize) + 8*numMetrics + 4
	}
	return p, nil
}

// EstimateBatchBytes is EstimateMemory's total for a run with evaluation:
// the bytes one replica of cfg allocates on its backend.
func EstimateBatchBytes(cfg Config, worldSize int) (int64, error) {
	p, err := EstimateMemory(cfg, worldSize, true)
	if err != nil {
		return 0, err
	}
	return p.Total(), nil
}

// Fits reports whether the plan fits in available bytes; the error says
// how much is needed and which key to lower. The activations grow linearly
// with the replica's batch, so global_batch_size (or more replicas) is the
// first remedy; the model's sizes come after.
func (p MemoryPlan) Fits(available int64, where string) error {
	need := p.Total()
	if need <= available {
		return nil
	}
	gib := func(b int64) string {
		if b < 1<<30 { // a small device or batch: GiB would round to 0.00
			return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
		}
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	}
	weights := p.Train.Weights + p.Train.Gradients + p.Optimizer + p.Eval.Weights
	act := need - weights
	msg := fmt.Sprintf("a training replica needs about %s on %s (weights, gradients and optimizer %s; activations of a batch of %d %s) but %s is available",
		gib(need), where, gib(weights), p.Batch, gib(act), gib(available))
	if weights < available && p.Batch > 1 {
		// The activations are linear in the batch: the largest batch that fits.
		per := act / int64(p.Batch)
		fit := (available - weights) / max(per, 1)
		return fmt.Errorf("%s: lower global_batch_size (a batch of at most %d per replica fits) or use more replicas", msg, fit)
	}
	return fmt.Errorf("%s: lower arch.hidden_size, arch.L_layers or arch.expansion (the weights alone do not fit)", msg)
}
