package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tinyrecursive/trm/device/rendezvous"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/trainer"
	"github.com/tinyrecursive/trm/trainer/promhook"
)

func init() {
	register(&command{
		name:    "train",
		summary: "train a model (with no arguments: the built-in 4x4 Sudoku demo)",
		usage:   "[--preset NAME] [--resume DIR] [--device cpu|cuda:N] [--out DIR] [--log FILE] [key=value ...]",
		run:     runTrain,
	})
}

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	preset := fs.String("preset", "", "paper recipe: "+strings.Join(engine.PresetNames(), ", "))
	configFile := fs.String("config", "", "training config JSON (the reference keys, the model under \"arch\")")
	resume := fs.String("resume", "", "continue from a checkpoint directory (or a directory of step_* checkpoints)")
	device := fs.String("device", "cpu", "cpu or cuda:N")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	out := fs.String("out", "", "checkpoint directory (sets checkpoint_dir)")
	logPath := fs.String("log", "", "JSONL log of every metric (default: <out>/run.jsonl when --out is set)")
	initPath := fs.String("init", "", "start from these weights (safetensors with the reference keys, e.g. from `trm-train import`)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	metricsAddr := fs.String("metrics-addr", os.Getenv("TRM_METRICS_ADDR"), "serve Prometheus metrics at [HOST]:PORT/metrics; :PORT binds 127.0.0.1 only, 0.0.0.0:PORT every interface (default $TRM_METRICS_ADDR, which the no-argument demo reads too)")
	metricsRun := fs.String("metrics-run", "", "run label of the metrics (default: the --out directory's name, else trm-<start time>)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: trm-train train [flags] [key=value ...]

Trains a TRM. Overrides use the reference's key=value form, e.g.
  trm-train train --preset sudoku-mlp data_paths=[data/sudoku-extreme-1k-aug-1000] epochs=50000
  trm-train train arch.L_cycles=4 lr=1e-4 ema=true data_paths=[data/maze]
With no arguments at all it builds a small 4x4 Sudoku set in a temporary
directory and trains the built-in demo model on the CPU for a few minutes.
SIGINT/SIGTERM finish the current step, write a checkpoint and exit 0.
--metrics-addr :9090 serves Prometheus metrics on 127.0.0.1:9090 (see
deploy/ for a scrape config and a Grafana dashboard); the demo reads
TRM_METRICS_ADDR instead.

Keys: %s

flags:
`, strings.Join(trainer.Keys(), " "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(args) == 0 {
		return runDemo(stdout, stderr)
	}
	var cfg trainer.Config
	switch {
	case *preset != "":
		c, err := trainer.FromPreset(*preset)
		if err != nil {
			return usageErrorf("%v", err)
		}
		cfg = c
	default:
		cfg = trainer.DefaultConfig()
	}
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return err
		}
		if err := trainer.ParseConfigJSON(&cfg, b, *configFile); err != nil {
			return err
		}
	}
	for _, kv := range fs.Args() {
		if err := cfg.Set(kv); err != nil {
			return usageErrorf("%v", err)
		}
	}
	if *out != "" {
		cfg.CheckpointDir = *out
	}
	be, err := openBackend(*device, *threads)
	if err != nil {
		return err
	}
	opt := trainer.RunOptions{Backend: be, Resume: *resume}
	if *initPath != "" {
		if *resume != "" {
			return usageErrorf("--init and --resume exclude each other")
		}
		// The layout needs the dataset's sizes: read them first.
		p, err := loadInit(*initPath, cfg)
		if err != nil {
			return err
		}
		opt.Init = p
	}
	if *logPath == "" && cfg.CheckpointDir != "" {
		*logPath = filepath.Join(cfg.CheckpointDir, "run.jsonl")
	}
	if *logPath != "" {
		if err := os.MkdirAll(filepath.Dir(*logPath), 0o755); err != nil {
			return err
		}
		h, err := trainer.NewJSONLHook(*logPath)
		if err != nil {
			return err
		}
		opt.Hooks = append(opt.Hooks, h)
	}
	if !*quiet {
		opt.Hooks = append(opt.Hooks, &trainer.ProgressHook{W: stderr, Every: 2 * time.Second})
	}
	if *metricsAddr != "" {
		if *metricsRun == "" {
			*metricsRun = promhook.RunName(cfg.CheckpointDir, time.Now())
		}
		addr, rank, err := rankMetrics(*metricsAddr)
		if err != nil {
			return err
		}
		h, stop, err := promhook.Start(addr, promhook.Options{Run: *metricsRun, Backend: be, Log: stderr, Rank: rank})
		if err != nil {
			return err
		}
		defer stop()
		opt.Hooks = append(opt.Hooks, h)
	}
	_, err = train(cfg, opt, stdout)
	return err
}

// rankMetrics adapts --metrics-addr to a multi-process job (WORLD_SIZE >
// 1): every rank serves its GPU telemetry labelled with its rank (rank 0
// also serves the training families), each local rank on the given port
// plus its LOCAL_RANK so the ranks of one node do not collide. A single
// process keeps the address and no rank label.
func rankMetrics(addr string) (string, string, error) {
	env, multi, err := rendezvous.FromEnv()
	if err != nil || !multi {
		return addr, "", err
	}
	a, err := promhook.ListenAddr(addr)
	if err != nil {
		return "", "", err
	}
	host, port, _ := net.SplitHostPort(a)
	p, _ := strconv.Atoi(port)
	if p != 0 {
		p += env.LocalRank
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), strconv.Itoa(env.Rank), nil
}

// train runs with SIGINT/SIGTERM turned into a checkpoint and a clean exit.
func train(cfg trainer.Config, opt trainer.RunOptions, stdout io.Writer) (*trainer.Summary, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := runTraining(ctx, cfg, opt)
	if err != nil {
		return sum, err
	}
	if sum.Interrupted {
		if sum.Checkpoint != "" {
			fmt.Fprintf(stdout, "interrupted at step %d; resume with: trm-train train --resume %s\n", sum.Steps, filepath.Dir(sum.Checkpoint))
		} else {
			fmt.Fprintf(stdout, "interrupted at step %d (no checkpoint directory was set)\n", sum.Steps)
		}
		return sum, nil
	}
	fmt.Fprintf(stdout, "done: %d steps in %s\n", sum.Steps, sum.Wall.Round(time.Second))
	if sum.LastEval != nil {
		for _, k := range sum.LastEval.SortedKeys() {
			fmt.Fprintf(stdout, "  %-28s %.4f\n", k, sum.LastEval.Flat[k])
		}
	}
	if sum.Checkpoint != "" {
		fmt.Fprintf(stdout, "checkpoint: %s\n", sum.Checkpoint)
	}
	return sum, nil
}

// loadInit reads starting weights; the model's dataset-dependent sizes
// come from the training data's metadata.
func loadInit(path string, cfg trainer.Config) (*engine.Params, error) {
	arch, err := trainer.ArchForData(cfg)
	if err != nil {
		return nil, err
	}
	return engine.LoadState(path, engine.NewLayout(arch))
}

// runDemo is `trm-train` with no arguments: the embedded default.
func runDemo(stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "trm-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(stdout, "trm demo: generating 800 training and 200 held-out 4x4 Sudoku puzzles in %s\n", dir)
	data := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoSudoku(data, 800, 200, 8, 3, 1, io.Discard); err != nil {
		return err
	}
	cfg := trainer.DefaultDemo(data)
	fmt.Fprintf(stdout, "training a %d-layer TRM (hidden %d, H_cycles %d x L_cycles %d, up to %d supervision steps) on the CPU\n",
		cfg.Arch.LLayers, cfg.Arch.HiddenSize, cfg.Arch.HCycles, cfg.Arch.LCycles, cfg.Arch.HaltMaxSteps)
	be, err := openBackend("cpu", 0)
	if err != nil {
		return err
	}
	hooks := []trainer.Hook{&trainer.ProgressHook{W: stderr, Every: 2 * time.Second}}
	if addr := os.Getenv("TRM_METRICS_ADDR"); addr != "" {
		h, stop, err := promhook.Start(addr, promhook.Options{Run: "demo", Backend: be, Log: stderr})
		if err != nil {
			return err
		}
		defer stop()
		hooks = append(hooks, h)
	}
	sum, err := train(cfg, trainer.RunOptions{Backend: be, Hooks: hooks}, stdout)
	if err != nil || sum.Interrupted || sum.LastEval == nil {
		return err
	}
	f := sum.LastEval.Flat
	fmt.Fprintf(stdout, "\nheld-out exact accuracy: %.1f%% of %.0f unseen puzzles solved entirely (%.1f%% of cells) after %d steps in %s\n",
		100*f["all/exact_accuracy"], f["all/count"], 100*f["all/accuracy"], sum.Steps, sum.Wall.Round(time.Second))
	return nil
}
