package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/trainer"
	"github.com/tinyrecursive/trm/trainer/data"
)

func init() { register(newEvalCmd) }

// resolveInference resolves the config and the weights file of a
// checkpoint directory (its trainer.json and model.safetensors) or of a
// bare model file with its architecture (a preset or model config file),
// then applies key=value overrides (arch= first) and, when given, the
// test data directories. The test data's metadata fixes the
// dataset-dependent sizes. No weights are read.
func resolveInference(ckpt, model, modelConfig string, dataDirs, overrides []string, warn io.Writer) (trainer.Config, string, error) {
	var cfg trainer.Config
	switch {
	case ckpt != "":
		dir, err := trainer.LatestCheckpoint(ckpt)
		if err != nil {
			return cfg, "", err
		}
		if _, err := os.Stat(filepath.Join(ckpt, "best", trainer.MetaFile)); err == nil && dir != ckpt {
			dir = filepath.Join(ckpt, "best")
		}
		meta, err := trainer.LoadMeta(dir)
		if err != nil {
			return cfg, "", err
		}
		cfg = meta.Config
		if model == "" {
			model = filepath.Join(dir, trainer.ModelFile)
		}
	case model != "" && modelConfig != "":
		a, arch, err := resolveModelConfig(modelConfig, warn)
		if err != nil {
			return cfg, "", err
		}
		cfg = trainer.DefaultConfig()
		cfg.Arch, cfg.ArchSettings = a, arch
	default:
		return cfg, "", usageErrorf("give --checkpoint DIR, or --model FILE with --model-config PRESET|config.json")
	}
	if err := applyOverrides(&cfg, overrides); err != nil {
		return cfg, "", err
	}
	printWarnings(warn, &cfg)
	if len(dataDirs) > 0 {
		cfg.DataPaths, cfg.DataPathsTest = dataDirs, dataDirs
	}
	if len(cfg.DataPathsTest) == 0 {
		cfg.DataPathsTest = cfg.DataPaths
	}
	if len(cfg.DataPathsTest) > 0 {
		ds, err := data.Open("test", cfg.DataPathsTest...)
		if err != nil {
			return cfg, "", err
		}
		cfg.Arch = trainer.WithDataset(cfg.Arch, ds.Meta)
		ds.Close()
	}
	return cfg, model, nil
}

// resolveModelConfig reads a --model-config: a preset, a model or training
// config JSON, or the reference's YAML (an arch file, a run's
// all_config.yaml) with its architecture (a preset's, the file's name
// key; trm where none is named); warnings about keys without effect go to
// warn.
func resolveModelConfig(arg string, warn io.Writer) (engine.Config, engine.ArchSettings, error) {
	c, s, warnings, err := trainer.ResolveModelArch(arg)
	for _, w := range warnings {
		fmt.Fprintln(warn, "warning:", w)
	}
	return c, s, err
}

// loadModel resolves the config as resolveInference does and reads the
// weights through the library (trm.Load): a checkpoint's own weights are
// first verified against its manifest (trainer.VerifyCheckpoint), as a
// resume does, so that a flipped bit or a truncated file is reported
// naming the file instead of evaluating damaged weights. The weights are
// read as the resolved architecture, overrides included.
func loadModel(ckpt, model, modelConfig string, dataDirs, overrides []string, warn io.Writer) (*trm.Model, trainer.Config, error) {
	cfg, weights, err := resolveInference(ckpt, model, modelConfig, dataDirs, overrides, warn)
	if err != nil {
		return nil, cfg, err
	}
	m, err := loadResolved(cfg, ckpt, model, weights)
	return m, cfg, err
}

// loadResolved reads the weights of a resolved config: the checkpoint
// directory ckpt (verified) when no --model names other weights, else the
// weights file.
func loadResolved(cfg trainer.Config, ckpt, model, weights string) (*trm.Model, error) {
	path := weights
	if ckpt != "" && model == "" {
		path = ckpt
	}
	return trm.Load(path, trm.LoadOptions{Arch: &trm.Arch{Config: cfg.Arch, Arch: cfg.ArchSettings}})
}

// evalFlags are the flags of eval.
type evalFlags struct {
	ckpt, model, modelConfig, dataDir, device, out string
	batch, maxBatches                              int
	early, dryRun, json                            bool
}

func newEvalCmd() *cobra.Command {
	var f evalFlags
	c := &cobra.Command{
		Use:   "eval (--checkpoint DIR | --model FILE --model-config PRESET|FILE) [--data DIR] [flags] [key=value ...]",
		Short: "evaluate a checkpoint or an imported model on a test set",
		Long: `Evaluates every example of every test set for halt_max_steps supervision steps
and prints "N of M examples evaluated", the reference's metrics, the accuracy
after each supervision step and, for ARC, pass@K. --max-batches N (or the
key eval_max_batches=N) stops each set after N batches; the checkpoint's own
eval_max_batches, which bounds the evaluations during training, is not used.
--json prints the metrics as one JSON object on stdout instead.

The config is the checkpoint's (or the defaults with --model-config's
architecture), then arch=NAME overrides, then the other key=value overrides
in order, then --data. The evaluation batch is --batch, else the training
global batch, on the CPU at most the largest test set's size (a padded batch
costs as much as a full one). --dry-run prints the resolved config as JSON on
stdout and the plan on stderr, and exits without opening a device or reading
the weights.` + envHelp("TRM_CPU_GEMM", "TRM_CPU_ACTIVATIONS", "TRM_CUDA_GEMM", "TRM_CUDA_FATBIN", "TRM_CUDA_PROBE", "TRM_CUBLAS"),
		Example: `  trm-train eval --checkpoint runs/sudoku --early-exit
  trm-train eval --checkpoint runs/sudoku4 --max-batches 1 --json
  trm-train eval --checkpoint runs/sudoku eval_max_batches=2 --dry-run`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runEval(c, &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.ckpt, "checkpoint", "", "checkpoint directory (its best/ or newest step_* is used when given a root)")
	fl.StringVar(&f.model, "model", "", "model weights (safetensors, reference keys), as trm-train import writes")
	fl.StringVar(&f.modelConfig, "model-config", "", "architecture of --model: a preset, a model config JSON or a reference YAML (config/arch/NAME.yaml, all_config.yaml)")
	fl.StringVar(&f.dataDir, "data", "", "test data directory (default: the checkpoint's data_paths_test)")
	fl.IntVar(&f.batch, "batch", 0, "evaluation batch size (default: the training global batch; on the CPU at most the largest test set)")
	fl.IntVar(&f.maxBatches, "max-batches", 0, "evaluate at most this many batches per test set (0: every example)")
	fl.BoolVar(&f.json, "json", false, "print the metrics as one JSON object on stdout")
	fl.StringVar(&f.device, "device", "cpu", "cpu or cuda:N")
	fl.BoolVar(&f.early, "early-exit", false, "stop each batch once every example's q_halt > 0 and report the steps saved")
	fl.StringVar(&f.out, "out", "", "directory for submission.json (ARC test sets)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the resolved config and the plan, then exit without evaluating")
	return c
}

func runEval(c *cobra.Command, f *evalFlags, args []string) error {
	stdout, stderr := c.OutOrStdout(), c.ErrOrStderr()
	var dirs []string
	if f.dataDir != "" {
		dirs = []string{f.dataDir}
	}
	cfg, model, err := resolveInference(f.ckpt, f.model, f.modelConfig, dirs, args, stderr)
	if err != nil {
		return err
	}
	if len(cfg.DataPathsTest) == 0 {
		return usageErrorf("no test data: give --data DIR")
	}
	cfg.EvalEarlyExit = cfg.EvalEarlyExit || f.early
	if f.batch < 0 {
		return usageErrorf("--batch %d is negative", f.batch)
	}
	if f.maxBatches < 0 {
		return usageErrorf("--max-batches %d is negative", f.maxBatches)
	}
	if c.Flags().Changed("max-batches") || !overridesKey(args, "eval_max_batches") {
		cfg.EvalBatches = f.maxBatches
	}
	largest, err := largestTestSet(cfg.DataPathsTest)
	if err != nil {
		return err
	}
	switch {
	case f.batch > 0:
		cfg.GlobalBatchSize = f.batch
	case strings.HasPrefix(f.device, "cpu"):
		cfg.GlobalBatchSize = min(cfg.GlobalBatchSize, max(largest, 1))
	}
	if f.dryRun {
		return dryRunEval(stdout, stderr, cfg, model, f.device)
	}
	m, err := loadResolved(cfg, f.ckpt, f.model, model)
	if err != nil {
		return err
	}
	be, err := openBackend(f.device, 0)
	if err != nil {
		return err
	}
	ds, err := data.Open("test", cfg.DataPathsTest...)
	if err != nil {
		return err
	}
	defer ds.Close()
	ev, err := trainer.NewEvaluator(cfg, be, ds, cfg.GlobalBatchSize, f.out)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := ev.EvaluateContext(ctx, m.Params(), data.Sharding{GlobalBatchSize: cfg.GlobalBatchSize, WorldSize: 1}, 0)
	if err != nil {
		return err
	}
	cov := coverage(ds, rep)
	if f.json {
		return printEvalJSON(stdout, rep, cov)
	}
	fmt.Fprintln(stdout, cov)
	printEval(stdout, rep, cfg.EvalEarlyExit)
	return nil
}

// overridesKey reports whether the key=value arguments set key.
func overridesKey(args []string, key string) bool {
	for _, a := range args {
		if strings.HasPrefix(strings.TrimPrefix(a, "+"), key+"=") {
			return true
		}
	}
	return false
}

// largestTestSet is the number of examples of the largest set of the
// test split of dirs: no evaluation batch of a set holds more.
func largestTestSet(dirs []string) (int, error) {
	ds, err := data.Open("test", dirs...)
	if err != nil {
		return 0, err
	}
	defer ds.Close()
	n := 0
	for _, s := range ds.Sets {
		n = max(n, s.NumExamples())
	}
	return n, nil
}

// evalCoverage counts the test examples an evaluation scored against
// those the test sets hold, so that a partial evaluation (--max-batches)
// is never mistaken for a full one.
type evalCoverage struct {
	Evaluated, Total int
	PerSet           map[string][2]int // set -> {evaluated, total}
}

// String is e.g. "16 of 16 examples evaluated" (per set when several).
func (c evalCoverage) String() string {
	s := fmt.Sprintf("%d of %d examples evaluated", c.Evaluated, c.Total)
	if len(c.PerSet) > 1 {
		names := make([]string, 0, len(c.PerSet))
		for n := range c.PerSet {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			s += fmt.Sprintf("\n  %s: %d of %d", n, c.PerSet[n][0], c.PerSet[n][1])
		}
	}
	return s
}

func coverage(ds *data.Dataset, rep *trainer.EvalReport) evalCoverage {
	c := evalCoverage{PerSet: map[string][2]int{}}
	for _, s := range ds.Sets {
		n := 0
		if se := rep.Sets[s.Name]; se != nil {
			n = int(se.Curve.Count)
		}
		c.PerSet[s.Name] = [2]int{n, s.NumExamples()}
		c.Evaluated += n
		c.Total += s.NumExamples()
	}
	return c
}

// evalJSON is eval --json's output: the reference's metrics under their
// names, the coverage and the per-step curves, one object so that scripts
// can read it with one json.Unmarshal or jq.
type evalJSON struct {
	Metrics           map[string]any         `json:"metrics"`
	ExamplesEvaluated int                    `json:"examples_evaluated"`
	Examples          int                    `json:"examples"`
	Sets              map[string]evalSetJSON `json:"sets"`
	Warnings          []string               `json:"warnings,omitempty"`
}

// evalSetJSON is one test set in evalJSON.
type evalSetJSON struct {
	ExamplesEvaluated int               `json:"examples_evaluated"`
	Examples          int               `json:"examples"`
	Curve             trainer.StepCurve `json:"curve"`
	StepsRun          int               `json:"steps_run"`
	StepsSaved        int               `json:"steps_saved"`
}

func printEvalJSON(w io.Writer, rep *trainer.EvalReport, cov evalCoverage) error {
	metrics := map[string]any{}
	for k, v := range rep.Flat {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			metrics[k] = nil // JSON has no NaN: a metric without a value
		} else {
			metrics[k] = v
		}
	}
	out := evalJSON{Metrics: metrics, ExamplesEvaluated: cov.Evaluated, Examples: cov.Total, Sets: map[string]evalSetJSON{}, Warnings: rep.Warning}
	for name, n := range cov.PerSet {
		s := evalSetJSON{ExamplesEvaluated: n[0], Examples: n[1]}
		if se := rep.Sets[name]; se != nil {
			s.Curve, s.StepsRun, s.StepsSaved = se.Curve, se.StepsRun, se.StepsSaved
		}
		out.Sets[name] = s
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// dryRunEval prints the resolved evaluation config and its plan.
func dryRunEval(stdout, stderr io.Writer, cfg trainer.Config, model, device string) error {
	if _, err := checkDevice(device); err != nil {
		return err
	}
	if _, err := os.Stat(model); err != nil {
		return fmt.Errorf("model weights: %w", err)
	}
	a := cfg.Arch
	a.BatchSize = cfg.GlobalBatchSize
	if err := a.Validate(); err != nil {
		return err
	}
	ds, err := data.Open("test", cfg.DataPathsTest...)
	if err != nil {
		return err
	}
	defer ds.Close()
	fmt.Fprintf(stdout, "%s\n", cfg.MarshalIndent())
	w := func(format string, a ...any) { fmt.Fprintf(stderr, "dry run: "+format+"\n", a...) }
	w("device %s, weights %s", device, model)
	for _, s := range ds.Sets {
		batches := (s.NumExamples() + cfg.GlobalBatchSize - 1) / cfg.GlobalBatchSize
		if cfg.EvalBatches > 0 {
			batches = min(batches, cfg.EvalBatches)
		}
		w("test set %s (%s): %d examples, %d batches of %d, %d supervision steps each", s.Name, s.Path, s.NumExamples(), batches, cfg.GlobalBatchSize, cfg.Arch.HaltMaxSteps)
	}
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
