package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/costmodel"
	"github.com/tinyrecursive/trm/trainer"
)

func init() { register(newCostCmd) }

// costFlags are the flags of cost.
type costFlags struct {
	preset, configFile, gpu string
	replicas                int
	eager                   bool
}

func newCostCmd() *cobra.Command {
	var f costFlags
	c := &cobra.Command{
		Use:   "cost [--preset NAME | --config FILE] [key=value ...] [--gpu NAME|all] [--replicas N] [--eager]",
		Short: "predict a training step's time, MFU and memory on a GPU (the cost model)",
		Long: `Predicts one training step (forward, loss, backward and optimizer, as train
runs it) on a GPU from the vendor's datasheet figures: every kernel and GEMM
with its FLOPs, bytes, predicted time and whether compute or memory bounds
it, then the step time, the model FLOPs utilisation (MFU) and the device
memory of the engine's buffers. The figures are ceilings: every kernel is
assumed to reach the datasheet's peak. docs/gpu-cost-model.md explains the
model and how its predictions compare with measured steps.

The config resolves as train's does (--preset, --config, key=value
overrides). seq_len, vocab_size and num_puzzle_identifiers are the
preset's (the defaults': Sudoku-Extreme's); data_paths=[DIR] reads them
from a built dataset instead. --gpu all prints one summary line per GPU
(` + strings.Join(costmodel.GPUs(), ", ") + `); --replicas N splits the global
batch over N data-parallel GPUs (the all-reduce is not modelled).`,
		Example: `  trm-train cost --preset sudoku-att --gpu H100
  trm-train cost --preset arc1 --gpu all --replicas 8`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runCost(c.OutOrStdout(), c.ErrOrStderr(), &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.preset, "preset", "", "paper recipe: "+strings.Join(engine.PresetNames(), ", "))
	fl.StringVar(&f.configFile, "config", "", "training config file (as train's --config)")
	fl.StringVar(&f.gpu, "gpu", "H100", "GPU to model: "+strings.Join(costmodel.GPUs(), ", ")+", or all")
	fl.IntVar(&f.replicas, "replicas", 1, "data-parallel GPUs the global batch is split over")
	fl.BoolVar(&f.eager, "eager", false, "model eager kernel launches instead of CUDA-graph replay (TRM_CUDA_GRAPHS=0)")
	return c
}

func runCost(stdout, stderr io.Writer, f *costFlags, args []string) error {
	if f.replicas < 1 {
		return usageErrorf("--replicas %d: want 1 or more", f.replicas)
	}
	cfg, err := resolveTrainConfig(&trainFlags{preset: f.preset, configFile: f.configFile}, args)
	if err != nil {
		return err
	}
	printWarnings(stderr, &cfg)
	if cfg.GlobalBatchSize%f.replicas != 0 {
		return usageErrorf("--replicas %d does not divide global_batch_size %d", f.replicas, cfg.GlobalBatchSize)
	}
	a := cfg.Arch
	if a.SeqLen == 0 || a.VocabSize == 0 || a.NumPuzzleIdentifiers == 0 || givesData(args) {
		d, err := trainer.ArchForData(cfg)
		if err != nil {
			return fmt.Errorf("the model's sizes come from its dataset: %w", err)
		}
		cfg.Arch.SeqLen, cfg.Arch.VocabSize, cfg.Arch.NumPuzzleIdentifiers = d.SeqLen, d.VocabSize, d.NumPuzzleIdentifiers
	}
	gpus := []string{f.gpu}
	if strings.EqualFold(f.gpu, "all") {
		gpus = costmodel.GPUs()
	}
	var reps []*costmodel.Report
	for _, g := range gpus {
		r, err := costmodel.PredictWith(cfg, costmodel.Options{GPU: g, Replicas: f.replicas, Eager: f.eager})
		if err != nil {
			return usageErrorf("--gpu %s: %v", g, err)
		}
		r.Label = costLabel(f)
		reps = append(reps, r)
	}
	if len(reps) == 1 {
		return reps[0].WriteTable(stdout)
	}
	return costmodel.WriteSummary(stdout, reps)
}

// givesData reports whether the overrides name the training data.
func givesData(args []string) bool {
	for _, kv := range args {
		k, _, _ := strings.Cut(kv, "=")
		if strings.TrimLeft(strings.TrimSpace(k), "+") == "data_paths" {
			return true
		}
	}
	return false
}

// costLabel names the prediction in the summary: the preset or config
// file, and the split.
func costLabel(f *costFlags) string {
	l := "defaults"
	switch {
	case f.configFile != "":
		l = f.configFile
	case f.preset != "":
		l = f.preset
	}
	if f.replicas > 1 {
		l += fmt.Sprintf(", 1 of %d GPUs", f.replicas)
	}
	return l
}
