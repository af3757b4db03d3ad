package main

import (
	"context"
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

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/device/rendezvous"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/internal/torchpt"
	"github.com/tinyrecursive/trm/trainer"
	"github.com/tinyrecursive/trm/trainer/promhook"
)

func init() { register(newTrainCmd) }

// trainFlags are the flags of train.
type trainFlags struct {
	preset, configFile, resume, device, out, logPath, initPath string
	metricsAddr, metricsRun, metricsPush, logFormat            string
	metricsLinger                                              time.Duration
	threads                                                    int
	quiet, dryRun, overwrite, fallback, logDegrade             bool
}

func newTrainCmd() *cobra.Command {
	var f trainFlags
	c := &cobra.Command{
		Use:   "train [flags] [key=value ...]",
		Short: "train a model (with no arguments: the built-in 4x4 Sudoku demo)",
		Long: `Trains a TRM. The config is resolved in this order, each step overriding the
one before:
  1. the reference defaults, or --preset NAME (a paper recipe)
  2. --config FILE (the reference's keys, the model under "arch")
  3. arch=NAME overrides (the reference's architecture group), wherever they
     stand among the arguments
  4. every other key=value override, in the order given
  5. --out DIR (sets checkpoint_dir)
then the training data's metadata fixes seq_len, vocab_size and
num_puzzle_identifiers. --dry-run prints the result as JSON on stdout (the
reference's key names), the planned steps, epochs and evaluations on
stderr, and exits without opening a device or reading any weights.

With no arguments at all it builds a small 4x4 Sudoku set in a temporary
directory and trains the built-in demo model on the CPU (about half a minute).
SIGINT/SIGTERM finish the current step, write a checkpoint and exit 0.

--out DIR is the run's directory, locked while the run lives: a second run
on it stops at once naming the holder's PID and host, and a fresh run
refuses a directory holding another run's checkpoints (--overwrite deletes
them). --resume DIR continues from the stored config; only data_paths,
max_steps, epochs, the evaluation keys, --out, keep_checkpoints and
best_metric may change. --resume auto resumes when --out has a checkpoint
and starts fresh otherwise. The log (--log, default run.jsonl in the run
directory) is appended; a log that cannot be written stops the run after
a checkpoint (--log-degrade warns instead). docs/run-directory.md has the
details.
--metrics-addr :9400 serves Prometheus metrics on 127.0.0.1:9400 (see
deploy/ for a scrape config and a Grafana dashboard).

Keys:
` + wrapWords(trainer.Keys(), "  ", 80) + envHelp("TRM_METRICS_ADDR", "TRM_CPU_GEMM", "TRM_CPU_ACTIVATIONS", "TRM_CUDA_GEMM", "TRM_CUDA_GRAPHS",
			"TRM_CUDA_FATBIN", "TRM_CUDA_PROBE", "TRM_CUBLAS", "TRM_NCCL", "RANK, WORLD_SIZE", "LOCAL_RANK",
			"MASTER_ADDR, MASTER_PORT", "TRM_MASTER_PORT", "TRM_RDZV_SECRET", "TRM_RDZV_INSECURE", "TRM_RDZV_BIND", "TRM_RENDEZVOUS_TIMEOUT"),
		Example: `  trm-train train --preset sudoku-mlp data_paths=[data/sudoku-extreme-1k-aug-1000] epochs=50000
  trm-train train arch.L_cycles=4 lr=1e-4 ema=true data_paths=[data/maze]
  trm-train train --preset maze data_paths=[data/maze] --device cuda:0 --dry-run
  trm-train train --preset maze data_paths=[data/maze] --out runs/maze --resume auto`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runTrain(c, &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.preset, "preset", "", "paper recipe: "+strings.Join(engine.PresetNames(), ", "))
	fl.StringVar(&f.configFile, "config", "", "training config file (the reference keys, the model under \"arch\")")
	fl.StringVar(&f.resume, "resume", "", "continue from a checkpoint directory (or a run directory of step_* checkpoints); auto: from --out's newest checkpoint if it has one, else start there")
	fl.StringVar(&f.device, "device", "cpu", "cpu, cuda:N, cuda:N,M,... or cuda (every visible GPU)")
	fl.IntVar(&f.threads, "threads", 0, "CPU threads (0: all cores)")
	fl.StringVar(&f.out, "out", "", "checkpoint directory (sets checkpoint_dir)")
	fl.StringVar(&f.logPath, "log", "", "JSONL log of every metric, appended (default: run.jsonl in the run directory: --out, or a resumed run's)")
	fl.BoolVar(&f.logDegrade, "log-degrade", false, "a log that cannot be written is a warning, not an error")
	fl.BoolVar(&f.overwrite, "overwrite", false, "let a fresh run delete another run's checkpoints in --out")
	fl.BoolVar(&f.fallback, "fallback-checkpoint", false, "on --resume, take the newest checkpoint that verifies when the newest is damaged")
	fl.StringVar(&f.initPath, "init", "", "start from these weights (safetensors with the reference keys, as trm-train import writes)")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress lines")
	fl.StringVar(&f.logFormat, "log-format", logText, describeLogFormat)
	fl.StringVar(&f.metricsAddr, "metrics-addr", os.Getenv("TRM_METRICS_ADDR"), "serve Prometheus metrics at [HOST]:PORT/metrics; :PORT binds 127.0.0.1 only, 0.0.0.0:PORT every interface (default: $TRM_METRICS_ADDR)")
	fl.StringVar(&f.metricsRun, "metrics-run", "", "run label of the metrics, recorded in the run directory (default: the run_name key, else the label a resumed run recorded, else the run directory's name, else trm-START_TIME)")
	fl.DurationVar(&f.metricsLinger, "metrics-linger", promhook.DefaultLinger, "after the run, keep serving --metrics-addr until Prometheus has scraped the final state, at most this long (0: exit at once; a second SIGINT/SIGTERM cuts it short)")
	fl.StringVar(&f.metricsPush, "metrics-push", "", "push the run's final metrics to this Prometheus Pushgateway URL (e.g. http://pushgateway:9091), with or without --metrics-addr")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the resolved config and the plan, then exit without training")
	return c
}

// resolveTrainConfig applies the documented precedence: preset (or the
// defaults) < config file < arch= group overrides < other overrides <
// --out.
func resolveTrainConfig(f *trainFlags, overrides []string) (trainer.Config, error) {
	cfg := trainer.DefaultConfig()
	if f.preset != "" {
		c, err := trainer.FromPreset(f.preset)
		if err != nil {
			return cfg, usageErrorf("%v", err)
		}
		cfg = c
	}
	if f.configFile != "" {
		// JSON, or the reference's YAML (hydra defaults lists resolved
		// against the file's directory).
		if err := trainer.LoadConfigFile(&cfg, f.configFile); err != nil {
			return cfg, err
		}
	}
	if err := applyOverrides(&cfg, overrides); err != nil {
		return cfg, err
	}
	if f.out != "" {
		cfg.CheckpointDir = f.out
	}
	return cfg, nil
}

// applyOverrides sets key=value overrides in the reference's order
// (trainer.Config.SetAll: every arch=NAME first, as it replaces the whole
// model group, then the others as given). A bad key or value is a usage
// error; an unknown key's message suggests the nearest one.
func applyOverrides(cfg *trainer.Config, overrides []string) error {
	if err := cfg.SetAll(overrides); err != nil {
		return usageErrorf("%v", err)
	}
	return nil
}

// printWarnings prints each of the config's warnings (reference keys
// accepted without effect here) once, as "warning: ..." lines.
func printWarnings(w io.Writer, cfg *trainer.Config) {
	for _, m := range cfg.Warnings() {
		fmt.Fprintf(w, "warning: %s\n", m)
	}
}

func runTrain(c *cobra.Command, f *trainFlags, args []string) error {
	stdout, stderr := c.OutOrStdout(), c.ErrOrStderr()
	if len(args) == 0 && c.Flags().NFlag() == 0 {
		return runDemo(stdout, stderr)
	}
	cfg, err := resolveTrainConfig(f, args)
	if err != nil {
		return err
	}
	if err := checkLogFormat(f.logFormat); err != nil {
		return err
	}
	logWarnings(stderr, f.logFormat, &cfg)
	if f.metricsLinger < 0 {
		return usageErrorf("--metrics-linger %s: want a duration of 0 or more", f.metricsLinger)
	}
	if f.initPath != "" && f.resume != "" {
		return usageErrorf("--init and --resume exclude each other")
	}
	if cfg.LoadCheckpoint != "" && f.initPath != "" {
		return usageErrorf("load_checkpoint and --init both name the initial weights: give one")
	}
	if cfg.LoadCheckpoint != "" && f.resume != "" && f.resume != trainer.ResumeAuto {
		return usageErrorf("load_checkpoint (initial weights) and --resume %s exclude each other", f.resume)
	}
	if f.dryRun {
		return dryRunTrain(stdout, stderr, cfg, f, args)
	}
	be, err := openBackend(f.device, f.threads)
	if err != nil {
		return err
	}
	opt := runOptions(f, cfg, args)
	opt.Backend, opt.Warn = be, stderr
	if f.initPath != "" {
		// The layout needs the dataset's sizes: read them first.
		p, err := loadInit(f.initPath, cfg)
		if err != nil {
			return err
		}
		opt.Init = p
	}
	if cfg.LoadCheckpoint != "" {
		fresh, err := startsFresh(cfg, opt)
		if err != nil {
			return err
		}
		if fresh {
			p, err := loadReferenceCheckpoint(c.Context(), cfg)
			if err != nil {
				return err
			}
			opt.Init = p
			fmt.Fprintf(stderr, "load_checkpoint: starting from the weights of %s\n", cfg.LoadCheckpoint)
		} else {
			fmt.Fprintf(stderr, "load_checkpoint: not read, the run resumes from its own checkpoint\n")
		}
	}
	switch {
	case f.quiet:
	case f.logFormat == logJSON:
		opt.Hooks = append(opt.Hooks, &slogHook{log: newJSONLogger(stderr), Every: 2 * time.Second})
	default:
		opt.Hooks = append(opt.Hooks, &trainer.ProgressHook{W: stderr, Every: 2 * time.Second})
	}
	if f.metricsAddr != "" || f.metricsPush != "" {
		run := trainer.RunLabelFor(cfg, opt)
		if run == "" {
			run = promhook.RunName("", time.Now())
		}
		addr, rank := "", ""
		if f.metricsAddr != "" {
			if addr, rank, err = rankMetrics(f.metricsAddr); err != nil {
				return err
			}
		}
		h, stop, err := promhook.Start(addr, promhook.Options{Run: run, Backend: be, Log: stderr, Rank: rank,
			Linger: f.metricsLinger, PushURL: f.metricsPush})
		if err != nil {
			return err
		}
		// After train returns: push the final state, then linger until it
		// is scraped (a second SIGINT/SIGTERM ends the wait).
		defer stop()
		opt.Hooks = append(opt.Hooks, h)
	}
	_, err = train(c.Context(), cfg, opt, stdout)
	return err
}

// runOptions are the trainer options the flags and overrides make, the
// same for a run and its dry run (trainer.PlanRun): the resume, the
// directory rules, the log (Run opens it once it holds the run directory,
// so a resumed run without --out logs into the directory it continues) and
// the metrics run label.
func runOptions(f *trainFlags, cfg trainer.Config, overrides []string) trainer.RunOptions {
	opt := trainer.RunOptions{Resume: f.resume, Overwrite: f.overwrite, FallbackCheckpoint: f.fallback,
		LogPath: f.logPath, DefaultLog: true, LogDegrade: f.logDegrade, RunLabel: f.metricsRun}
	if opt.RunLabel == "" {
		// The run_name key names the series; "" lets the trainer keep a
		// resumed run's label or take the run directory's name.
		opt.RunLabel = cfg.RunName
	}
	if f.resume != "" {
		// A resumed run starts from the checkpoint's config: the command
		// line's overrides and --out are its changes (trainer.ResumeConfig
		// refuses those a resume cannot make).
		opt.ResumeOverrides, opt.Out = overrides, f.out
	}
	return opt
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

// train runs with SIGINT/SIGTERM (or the end of parent, nil for none)
// turned into a checkpoint and a clean exit.
func train(parent context.Context, cfg trainer.Config, opt trainer.RunOptions, stdout io.Writer) (*trainer.Summary, error) {
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := runTraining(ctx, cfg, opt)
	if err != nil {
		return sum, err
	}
	if sum.Interrupted {
		fmt.Fprintf(stdout, "interrupted at step %d; %s\n", sum.Steps, resumeHint(sum))
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

// resumeHint says how to continue an interrupted run: --resume of its run
// directory (the run's own, as the trainer resolved it: absolute), or of
// the checkpoint it started from with --out when it was stopped during
// start-up before writing one into a new directory.
func resumeHint(sum *trainer.Summary) string {
	switch {
	case sum.RunDir == "":
		return "no checkpoint directory was set (give --out DIR to make a run resumable)"
	case sum.Checkpoint == "":
		return "stopped before its first checkpoint: nothing to resume, run the same command again"
	case checkpointRoot(sum.Checkpoint) != sum.RunDir:
		return "resume with: trm-train train --resume " + sum.Checkpoint + " --out " + sum.RunDir
	}
	return "resume with: trm-train train --resume " + sum.RunDir
}

// loadInit reads starting weights; the model's dataset-dependent sizes
// come from the training data's metadata.
func loadInit(path string, cfg trainer.Config) (*engine.Params, error) {
	arch, err := trainer.ArchForData(cfg)
	if err != nil {
		return nil, err
	}
	l, err := engine.NewArchLayout(arch, cfg.ArchSettings)
	if err != nil {
		return nil, err
	}
	return engine.LoadState(path, l)
}

// startsFresh reports whether the run starts from initial weights rather
// than resuming, as the trainer will decide (trainer.PlanRun): always
// without a resume, and with --resume auto when its run directory holds no
// checkpoint yet (a relaunched job that already checkpointed continues
// from its own weights, not load_checkpoint's).
func startsFresh(cfg trainer.Config, opt trainer.RunOptions) (bool, error) {
	rp, err := trainer.PlanRun(cfg, opt)
	if err != nil {
		return false, err
	}
	return rp.Checkpoint == "", nil
}

// loadReferenceCheckpoint imports load_checkpoint (a reference .pt) as
// the initial weights, the way trm-train import reads it, checked against
// the model the config and the training data's sizes make. SIGINT or
// SIGTERM stops the import.
func loadReferenceCheckpoint(ctx context.Context, cfg trainer.Config) (*engine.Params, error) {
	arch, err := trainer.ArchForData(cfg)
	if err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ts, err := importTorch(ctx, cfg.LoadCheckpoint, torchpt.Options{})
	if err != nil {
		return nil, fmt.Errorf("load_checkpoint: %w", err)
	}
	l, err := engine.NewArchLayout(arch, cfg.ArchSettings)
	if err != nil {
		return nil, fmt.Errorf("load_checkpoint: %w", err)
	}
	p, err := engine.StateFromTensors(ts, l, cfg.LoadCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("load_checkpoint: %w", err)
	}
	return p, nil
}

// runDemo is `trm-train` with no arguments: the embedded default.
func runDemo(stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "trm-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(stdout, "trm demo: generating %d training and %d held-out 4x4 Sudoku puzzles in %s\n", trainer.DemoTrain, trainer.DemoTest, dir)
	data := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoData(data, io.Discard); err != nil {
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
	sum, err := train(context.Background(), cfg, trainer.RunOptions{Backend: be, Hooks: hooks}, stdout)
	if err != nil || sum.Interrupted || sum.LastEval == nil {
		return err
	}
	f := sum.LastEval.Flat
	fmt.Fprintf(stdout, "\nheld-out exact accuracy: %.1f%% of %.0f unseen puzzles solved entirely (%.1f%% of cells) after %d steps in %s\n",
		100*f["all/exact_accuracy"], f["all/count"], 100*f["all/accuracy"], sum.Steps, sum.Wall.Round(time.Second))
	return nil
}
