package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/trainer"
	"github.com/tinyrecursive/trm/trainer/data"
)

func init() {
	register(&command{
		name:    "eval",
		summary: "evaluate a checkpoint or an imported model on a test set",
		usage:   "--checkpoint DIR | --model FILE --arch PRESET|config.json --data DIR",
		run:     runEval,
	})
}

// inference is a model state with its config, ready to evaluate or solve.
type inference struct {
	cfg    trainer.Config
	params *engine.Params
}

// loadInference reads a checkpoint directory (its trainer.json and
// model.safetensors) or a bare model file with an architecture.
func loadInference(ckpt, model, arch string, dataDirs []string) (*inference, error) {
	var cfg trainer.Config
	switch {
	case ckpt != "":
		dir, err := trainer.LatestCheckpoint(ckpt)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(ckpt, "best", trainer.MetaFile)); err == nil && dir != ckpt {
			dir = filepath.Join(ckpt, "best")
		}
		meta, err := trainer.LoadMeta(dir)
		if err != nil {
			return nil, err
		}
		cfg = meta.Config
		if model == "" {
			model = filepath.Join(dir, trainer.ModelFile)
		}
	case model != "" && arch != "":
		a, err := engine.ResolveConfig(arch)
		if err != nil {
			return nil, err
		}
		cfg = trainer.DefaultConfig()
		cfg.Arch = a
	default:
		return nil, usageErrorf("give --checkpoint DIR, or --model FILE with --arch PRESET|config.json")
	}
	if len(dataDirs) > 0 {
		cfg.DataPaths, cfg.DataPathsTest = dataDirs, dataDirs
	}
	if len(cfg.DataPathsTest) == 0 {
		cfg.DataPathsTest = cfg.DataPaths
	}
	if len(cfg.DataPathsTest) > 0 {
		ds, err := data.Open("test", cfg.DataPathsTest...)
		if err != nil {
			return nil, err
		}
		cfg.Arch = trainer.WithDataset(cfg.Arch, ds.Meta)
		ds.Close()
	}
	p, err := engine.LoadState(model, engine.NewLayout(cfg.Arch))
	if err != nil {
		return nil, err
	}
	return &inference{cfg: cfg, params: p}, nil
}

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ckpt := fs.String("checkpoint", "", "checkpoint directory (its best/ or newest step_* is used when given a root)")
	model := fs.String("model", "", "model weights (safetensors, reference keys), e.g. from `trm-train import`")
	arch := fs.String("arch", "", "architecture of --model: a preset or a model config JSON")
	dataDir := fs.String("data", "", "test data directory (default: the checkpoint's data_paths_test)")
	batch := fs.Int("batch", 0, "evaluation batch size (default: the training global batch)")
	device := fs.String("device", "cpu", "cpu or cuda:N")
	early := fs.Bool("early-exit", false, "stop each batch once every example's q_halt > 0 and report the steps saved")
	out := fs.String("out", "", "directory for submission.json (ARC test sets)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: trm-train eval --checkpoint DIR | --model FILE --arch PRESET|config.json --data DIR\n\nEvaluates every test set for halt_max_steps supervision steps and prints the\nreference's metrics, the accuracy after each supervision step and, for ARC,\npass@K.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected arguments %v", fs.Args())
	}
	var dirs []string
	if *dataDir != "" {
		dirs = []string{*dataDir}
	}
	inf, err := loadInference(*ckpt, *model, *arch, dirs)
	if err != nil {
		return err
	}
	cfg := inf.cfg
	if len(cfg.DataPathsTest) == 0 {
		return usageErrorf("no test data: give --data DIR")
	}
	cfg.EvalEarlyExit = *early
	if *batch > 0 {
		cfg.GlobalBatchSize = *batch
	}
	be, err := openBackend(*device, 0)
	if err != nil {
		return err
	}
	ds, err := data.Open("test", cfg.DataPathsTest...)
	if err != nil {
		return err
	}
	defer ds.Close()
	ev, err := trainer.NewEvaluator(cfg, be, ds, cfg.GlobalBatchSize, *out)
	if err != nil {
		return err
	}
	rep, err := ev.Evaluate(inf.params, data.Sharding{GlobalBatchSize: cfg.GlobalBatchSize, WorldSize: 1}, 0)
	if err != nil {
		return err
	}
	printEval(stdout, rep, *early)
	return nil
}

func printEval(w io.Writer, rep *trainer.EvalReport, early bool) {
	for _, k := range rep.SortedKeys() {
		fmt.Fprintf(w, "%-28s %.4f\n", k, rep.Flat[k])
	}
	for name, se := range rep.Sets {
		fmt.Fprintf(w, "\n%s: accuracy after each supervision step (%v examples)\n  step  accuracy  exact   q_halt>0\n", name, se.Curve.Count)
		for k := range se.Curve.Accuracy {
			fmt.Fprintf(w, "  %4d  %.4f    %.4f  %.4f\n", k+1, se.Curve.Accuracy[k], se.Curve.ExactAccuracy[k], se.Curve.QHaltPositive[k])
		}
		if early {
			fmt.Fprintf(w, "  early exit: %d of %d supervision steps saved (%.1f%%), accuracy %.4f, exact %.4f\n",
				se.StepsSaved, se.StepsSaved+se.StepsRun, 100*float64(se.StepsSaved)/float64(max(1, se.StepsSaved+se.StepsRun)), se.EarlyAccuracy, se.EarlyEx)
		}
	}
	for _, wmsg := range rep.Warning {
		fmt.Fprintln(w, "warning:", wmsg)
	}
}
