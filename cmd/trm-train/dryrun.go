package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tinyrecursive/trm/device/rendezvous"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/trainer"
	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/promhook"
)

// A dry run resolves everything a run would resolve from files (presets,
// config file, overrides, checkpoint metadata, dataset metadata), prints
// the resolved config as indented JSON on stdout, so that two dry runs can
// be diffed and `--dry-run > config.json` gives the config alone, and the
// plan on stderr. It never opens a backend (so a --device cuda line
// dry-runs on a CPU build and on a machine without a GPU) and never reads
// weights.

// checkDevice validates a --device value without opening anything: cpu,
// cuda, cuda:N or cuda:N,M,... It returns the GPUs named (nil for cpu,
// and for cuda: every visible one).
func checkDevice(spec string) ([]int, error) {
	switch {
	case spec == "" || spec == "cpu":
		return nil, nil
	case spec == "cuda":
		return nil, nil
	case strings.HasPrefix(spec, "cuda:"):
		var devs []int
		for _, s := range strings.Split(strings.TrimPrefix(spec, "cuda:"), ",") {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("--device %s: %q is not a device index", spec, s)
			}
			devs = append(devs, n)
		}
		return devs, nil
	}
	return nil, fmt.Errorf("--device %q: want cpu or cuda:N", spec)
}

// describeDevice is the plan's device line: what the run would use, and
// whether this binary can.
func describeDevice(spec string) (string, int, error) {
	devs, err := checkDevice(spec)
	if err != nil {
		return "", 0, err
	}
	env, multi, err := rendezvous.FromEnv()
	if err != nil {
		return "", 0, fmt.Errorf("multi-process environment: %w", err)
	}
	if multi {
		if err := env.CheckAuth(); err != nil {
			return "", 0, err
		}
	}
	if multi && (spec == "" || spec == "cpu") {
		return "", 0, fmt.Errorf("the environment describes a multi-process job (WORLD_SIZE > 1), which needs --device cuda")
	}
	world := 1
	var b strings.Builder
	b.WriteString(spec)
	switch {
	case multi:
		world = env.WorldSize
		fmt.Fprintf(&b, " (one rank of a multi-process job: %s)", env)
	case len(devs) > 1:
		world = len(devs)
		fmt.Fprintf(&b, " (%d data-parallel replicas in this process)", world)
	case spec == "cuda":
		b.WriteString(" (every visible GPU, one data-parallel replica each)")
	}
	if strings.HasPrefix(spec, "cuda") && cudaBackend == nil {
		b.WriteString("; this binary is the CPU build: the run itself needs the cuda build (make cuda)")
	}
	return b.String(), world, nil
}

// trainPlan is what a training run would do, computed from the config and
// the dataset metadata alone.
type trainPlan struct {
	StepsPerEpoch  float64
	TotalSteps     int // after max_steps
	FullSteps      int // epochs' worth
	Passes         int // evaluation intervals run
	Evaluations    int
	Checkpoints    int
	TestSets       bool
	TrainExamples  int
	TestExamples   int
	StartStep      int // resume
	ResumeFrom     string
	TrainSetNames  []string
	TestSetNames   []string
	TrainGroups    int
	MeanPuzzleSize float64
}

// planTrain mirrors the step, pass and evaluation arithmetic of
// trainer.Run for cfg over the given training and test metadata.
func planTrain(cfg trainer.Config, md data.Metadata, hasTest bool) trainPlan {
	p := trainPlan{TestSets: hasTest, TrainGroups: md.TotalGroups, MeanPuzzleSize: md.MeanPuzzleExamples}
	p.FullSteps = trainer.TotalSteps(cfg.Epochs, md.TotalGroups, md.MeanPuzzleExamples, cfg.GlobalBatchSize)
	p.TotalSteps = p.FullSteps
	if cfg.TotalStepsLimit > 0 {
		p.TotalSteps = min(p.TotalSteps, cfg.TotalStepsLimit)
	}
	p.StepsPerEpoch = float64(md.TotalGroups) * md.MeanPuzzleExamples / float64(cfg.GlobalBatchSize)
	passes := cfg.Epochs / max(1, cfg.EvalInterval)
	p.Passes = passes
	if p.TotalSteps < p.FullSteps && p.FullSteps > 0 {
		// The run stops inside the pass that reaches max_steps, after
		// that pass's evaluation.
		perPass := float64(p.FullSteps) / float64(passes)
		p.Passes = min(passes, int((float64(p.TotalSteps)+perPass-1)/perPass))
	}
	if hasTest {
		p.Evaluations = max(0, p.Passes-cfg.MinEvalInterval)
	}
	if cfg.CheckpointDir != "" {
		p.Checkpoints = 1
		if cfg.CheckpointEveryEval {
			p.Checkpoints = p.Passes
		}
	}
	return p
}

// dryRunTrain prints the resolved training config and its plan.
func dryRunTrain(stdout, stderr io.Writer, cfg trainer.Config, f *trainFlags, overrides []string) error {
	dev, world, err := describeDevice(f.device)
	if err != nil {
		return err
	}
	var plan trainPlan
	// The trainer's own choice (fresh or resumed, which checkpoint, which
	// config, which directory), so a dry run cannot disagree with the run.
	opt := runOptions(f, cfg, overrides)
	rp, err := trainer.PlanRun(cfg, opt)
	if err != nil {
		return err
	}
	var notes []string
	autoFresh := rp.Checkpoint == "" && opt.Resume == trainer.ResumeAuto
	for _, n := range rp.Notes {
		if autoFresh && strings.HasPrefix(n, "resume auto:") {
			continue // said below in the command line's words
		}
		notes = append(notes, n)
	}
	if rp.Checkpoint != "" {
		// A fresh run's config is the command line's as given (its paths
		// as written); a resumed run's is the stored one with its changes.
		cfg, plan.ResumeFrom, plan.StartStep = rp.Config, rp.Checkpoint, rp.Step
	} else if autoFresh {
		notes = append([]string{"resume auto: no checkpoint in " + cfg.CheckpointDir + ", a fresh run starts there"}, notes...)
	}
	other, err := otherRunCheckpoints(rp, f.overwrite)
	if err != nil {
		return err
	}
	if other != "" {
		notes = append(notes, other)
	}
	if f.initPath != "" {
		if _, err := os.Stat(f.initPath); err != nil {
			return fmt.Errorf("--init: %w", err)
		}
	}
	if cfg.LoadCheckpoint != "" && rp.Checkpoint == "" {
		if err := checkFile(cfg.LoadCheckpoint); err != nil {
			return fmt.Errorf("load_checkpoint: %w", err)
		}
	}
	if len(cfg.DataPaths) == 0 {
		return usageErrorf("no training data: set data_paths=[DIR,...] (build one with trm-train data sudoku|maze|arc)")
	}
	trainDS, err := data.Open("train", cfg.DataPaths...)
	if err != nil {
		return err
	}
	md := trainDS.Meta
	trainNames, trainN := setSummary(trainDS)
	trainDS.Close()
	if a := cfg.Arch; rp.Checkpoint != "" && (md.SeqLen != a.SeqLen || md.VocabSize != a.VocabSize || md.NumPuzzleIdentifiers != a.NumPuzzleIdentifiers) {
		// As the run refuses it: new data must fit the stored model.
		return fmt.Errorf("resume: data %v has seq_len %d, vocab_size %d, num_puzzle_identifiers %d; the checkpoint's model needs %d, %d, %d",
			cfg.DataPaths, md.SeqLen, md.VocabSize, md.NumPuzzleIdentifiers, a.SeqLen, a.VocabSize, a.NumPuzzleIdentifiers)
	}
	cfg.Arch = trainer.WithDataset(cfg.Arch, md)
	if err := cfg.Validate(); err != nil {
		return err
	}
	a := cfg.Arch
	a.BatchSize = cfg.GlobalBatchSize / world
	if err := a.Validate(); err != nil {
		return err
	}
	if cfg.GlobalBatchSize%world != 0 {
		return fmt.Errorf("global_batch_size %d is not a multiple of the %d replicas", cfg.GlobalBatchSize, world)
	}
	testPaths := cfg.DataPathsTest
	if len(testPaths) == 0 {
		testPaths = cfg.DataPaths
	}
	hasTest := allExist(testPaths)
	var testNames []string
	testN := 0
	if hasTest {
		testDS, err := data.Open("test", testPaths...)
		if err != nil {
			return err
		}
		if tm := testDS.Meta; tm.SeqLen != md.SeqLen || tm.VocabSize != md.VocabSize {
			testDS.Close()
			return fmt.Errorf("test data %v: seq_len %d, vocab_size %d differ from the training data's %d, %d", testPaths, tm.SeqLen, tm.VocabSize, md.SeqLen, md.VocabSize)
		}
		testNames, testN = setSummary(testDS)
		testDS.Close()
	}
	// On the CPU the precision (TRM_CPU_GEMM, TRM_CPU_ACTIVATIONS) decides
	// which buffers are bf16: the backend the run would open says, and an
	// invalid setting fails the dry run as it would fail the run.
	var st engine.Storage
	if f.device == "" || f.device == "cpu" {
		be, err := cpu.NewFromEnv(1)
		if err != nil {
			return err
		}
		st = engine.StorageOf(be)
		dev += describeStorage(st)
	}
	mem, err := trainer.EstimateStorageMemory(cfg, world, hasTest, st)
	if err != nil {
		return err
	}
	memLine := describeMemory(mem, f.device)
	resume, start := plan.ResumeFrom, plan.StartStep
	plan = planTrain(cfg, md, hasTest)
	plan.ResumeFrom, plan.StartStep = resume, start
	plan.TrainSetNames, plan.TrainExamples, plan.TestSetNames, plan.TestExamples = trainNames, trainN, testNames, testN
	var metrics string
	if f.metricsAddr != "" {
		addr, rank, err := rankMetrics(f.metricsAddr)
		if err != nil {
			return err
		}
		if addr, err = promhook.ListenAddr(addr); err != nil {
			return err
		}
		metrics = "http://" + addr + "/metrics"
		if rank != "" {
			metrics += " (rank " + rank + ")"
		}
	}
	logPath := f.logPath
	if logPath == "" && cfg.CheckpointDir != "" {
		// Run's default log (RunOptions.DefaultLog) in its run directory.
		logPath = filepath.Join(cfg.CheckpointDir, "run.jsonl")
	}

	fmt.Fprintf(stdout, "%s\n", cfg.MarshalIndent())
	w := func(format string, a ...any) { fmt.Fprintf(stderr, "dry run: "+format+"\n", a...) }
	w("device %s", dev)
	w("training data %v: %d examples in sets %v (%d groups x %.4g examples), seq_len %d, vocab %d, %d puzzle identifiers",
		cfg.DataPaths, plan.TrainExamples, plan.TrainSetNames, plan.TrainGroups, plan.MeanPuzzleSize, md.SeqLen, md.VocabSize, md.NumPuzzleIdentifiers)
	if hasTest {
		w("test data %v: %d examples in sets %v", testPaths, plan.TestExamples, plan.TestSetNames)
	} else {
		w("test data %v: none (no test split): no evaluations", testPaths)
	}
	w("global batch %d (%d per replica x %d), %.4g steps per epoch", cfg.GlobalBatchSize, cfg.GlobalBatchSize/world, world, plan.StepsPerEpoch)
	limit := ""
	if plan.TotalSteps < plan.FullSteps {
		limit = fmt.Sprintf(" (max_steps %d of %d)", cfg.TotalStepsLimit, plan.FullSteps)
	}
	w("%d total steps%s over %d epochs: %d evaluation intervals of %d epochs, %d evaluations, %d checkpoints",
		plan.TotalSteps, limit, cfg.Epochs, plan.Passes, cfg.EvalInterval, plan.Evaluations, plan.Checkpoints)
	w("%s", memLine)
	if plan.ResumeFrom != "" {
		w("resumes from %s at step %d (its config with the changes a resume may make, printed above)", plan.ResumeFrom, plan.StartStep)
	}
	for _, n := range notes {
		w("%s", n)
	}
	if f.initPath != "" {
		w("starting weights %s", f.initPath)
	}
	if cfg.CheckpointDir != "" {
		w("checkpoints in %s (the last %d kept), log %s", cfg.CheckpointDir, cfg.KeepCheckpoints, logPath)
	} else if logPath != "" {
		w("no checkpoint directory; log %s", logPath)
	} else {
		w("no checkpoint directory and no log (give --out DIR)")
	}
	if metrics != "" {
		w("metrics %s", metrics)
	}
	return nil
}

// otherRunCheckpoints is the run's refusal, under its lock, of a run
// directory holding another run's checkpoints (a fresh run's, or a resume
// into another --out), which its keep_checkpoints pruning would delete:
// an error without --overwrite, else a note of what the run will delete.
func otherRunCheckpoints(rp *trainer.RunPlan, overwrite bool) (string, error) {
	if rp.RunDir == "" || (rp.Checkpoint != "" && checkpointRoot(rp.Checkpoint) == rp.RunDir) {
		return "", nil // the run continues its own directory
	}
	steps, err := trainer.ListCheckpoints(rp.RunDir)
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	if len(steps) == 0 {
		return "", nil
	}
	if !overwrite {
		return "", fmt.Errorf("run directory %s holds the checkpoints of another run (newest: %s): the run would refuse it; resume that run (--resume %s or --resume auto), give another --out, or pass --overwrite to delete them",
			rp.RunDir, filepath.Base(steps[len(steps)-1]), rp.RunDir)
	}
	return fmt.Sprintf("overwrite: the run deletes the %d checkpoints of another run in %s", len(steps), rp.RunDir), nil
}

// checkpointRoot is the absolute run directory of a checkpoint directory
// (a step_*, best or set-aside checkpoint lies in its run's directory).
func checkpointRoot(ck string) string {
	if a, err := filepath.Abs(ck); err == nil {
		ck = a
	}
	return filepath.Dir(ck)
}

// describeStorage names the CPU backend's precision for the device line.
func describeStorage(st engine.Storage) string {
	switch {
	case st.Act == engine.BF16:
		return " (bf16 GEMMs, bf16 activations)"
	case st.Saved == engine.BF16:
		return " (bf16 GEMMs, fp32 activations)"
	}
	return " (fp32)"
}

// describeMemory is the plan's memory line: what one replica allocates
// (trainer.EstimateStorageMemory, with the backend's bf16 buffers) and, on the CPU, whether this host has it now
// (trainer.HostMemoryAvailable), with the run's own refusal when it does
// not. The dry run still succeeds: it may plan for another machine. A
// GPU's free memory is the backend's to check when it opens.
func describeMemory(m trainer.MemoryPlan, device string) string {
	gib := func(b int64) string { return fmt.Sprintf("%.3g GiB", float64(b)/(1<<30)) }
	line := fmt.Sprintf("memory per replica about %s (weights %s, gradients %s, optimizer %s, activations and carry of a batch of %d %s, evaluation %s)",
		gib(m.Total()), gib(m.Train.Weights), gib(m.Train.Gradients), gib(m.Optimizer), m.Batch, gib(m.Train.Activations+m.Train.Carry), gib(m.Eval.Total()))
	if device != "" && device != "cpu" {
		return line + "; the device's free memory is checked when it opens"
	}
	avail, ok := trainer.HostMemoryAvailable()
	if !ok {
		return line + "; the host's available memory is unknown here"
	}
	if err := m.Fits(avail, "the host"); err != nil {
		return line + "; DOES NOT FIT this host, the run would stop: " + err.Error()
	}
	return line + fmt.Sprintf("; fits the %s this host has available", gib(avail))
}

// checkFile checks that path is a regular file that can be opened (a
// load_checkpoint a dry run does not read, but the run will).
func checkFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// setSummary lists a dataset's set names (once each, in order) and counts
// its examples.
func setSummary(ds *data.Dataset) ([]string, int) {
	var names []string
	seen := map[string]bool{}
	n := 0
	for _, s := range ds.Sets {
		if !seen[s.Name] {
			seen[s.Name] = true
			names = append(names, s.Name)
		}
		n += s.NumExamples()
	}
	return names, n
}

// allExist reports whether every directory has the split "test".
func allExist(dirs []string) bool {
	for _, d := range dirs {
		if !data.Exists(d, "test") {
			return false
		}
	}
	return len(dirs) > 0
}
