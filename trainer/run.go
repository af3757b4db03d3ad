package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/tinyrecursive/trm/device/comm"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/trainer/data"
)

// RunOptions configure Run beyond the training config.
type RunOptions struct {
	Backend engine.Backend
	Hooks   []Hook
	// Resume is a checkpoint directory (or a run directory of step_*
	// checkpoints, the newest taken) to continue from, or ResumeAuto. The
	// run then uses the checkpoint's config, changed only by
	// ResumeOverrides and Out (see ResumeConfig); the cfg given to Run is
	// not used, except with ResumeAuto, where it is the command line's
	// config: its differences from the stored one are the overrides.
	Resume string
	// ResumeOverrides are the key=value overrides of a resumed run.
	ResumeOverrides []string
	// Out is the run directory of a resumed run (its checkpoint_dir); by
	// default the directory the checkpoint is in. Resuming a copy of a run
	// therefore writes into the copy, never into the directory named in
	// the copied trainer.json.
	Out string
	// Overwrite lets a fresh run (or a resume into another Out) delete
	// the checkpoints of another run found in its directory, which is
	// otherwise refused.
	Overwrite bool
	// FallbackCheckpoint lets a resume from a run directory whose newest
	// checkpoint fails verification take the newest one that passes
	// (logged); without it the damaged checkpoint is an error.
	FallbackCheckpoint bool
	// RunLabel is the metrics run label recorded in the run directory
	// (RunFile); "" keeps the label a resumed run recorded, else the
	// directory's name.
	RunLabel string
	// LogPath is a JSONL log Run opens (appending) once it holds the run
	// directory: a resumed run continues its log with a resume record. ""
	// with DefaultLog logs to <run dir>/run.jsonl when the run has a
	// directory.
	LogPath    string
	DefaultLog bool
	// LogDegrade turns a failing hook (see HookError: the JSONL log on a
	// full disk) into a warning on Warn, after which the run goes on
	// without that hook; by default the run writes a checkpoint and stops
	// with the hook's error.
	LogDegrade bool
	// Warn receives warnings and resume notes (nil: os.Stderr).
	Warn io.Writer
	// Init, if set, is the starting state instead of a fresh
	// initialisation (e.g. an imported reference checkpoint).
	Init *engine.Params
	// Comm is the data-parallel replica group this run is one replica of
	// (nil: a single replica). Each replica runs Run in its own goroutine
	// or process with its own backend; only rank 0 evaluates, writes
	// checkpoints and should be given hooks.
	Comm comm.Comm
	// Rank and WorldSize shard each global batch (taken from Comm when set).
	Rank, WorldSize int
	// HostMemory is the host memory, in bytes, a run on the CPU backend
	// checks its estimate (EstimateMemory) against before allocating; 0
	// means what HostMemoryAvailable reports. A backend with its own
	// device memory (DeviceMemoryFreeReporter) is checked against that
	// instead.
	HostMemory int64
}

// DeviceMemoryFreeReporter is implemented by a backend whose buffers live
// in a device's own memory (the CUDA backend): DeviceMemoryFree is the
// bytes it can still allocate there. Run checks the replica's estimate
// (EstimateMemory) against it before allocating the model, each replica
// on its own device.
type DeviceMemoryFreeReporter interface {
	DeviceMemoryFree() (int64, error)
}

// checkMemory refuses a run whose replica would allocate more than its
// backend has: the device's free memory for a backend that reports it
// (DeviceMemoryFreeReporter), else, on the CPU backend, the host memory
// (RunOptions.HostMemory, else HostMemoryAvailable). The error names
// global_batch_size and the largest batch that fits, and comes before
// anything is allocated: past the limit the process would be killed, or
// an allocation fail, mid-run rather than say why.
func checkMemory(cfg Config, opt RunOptions, withEval bool) error {
	if opt.Backend == nil {
		return nil
	}
	var avail int64
	where := "the host"
	if d, ok := opt.Backend.(DeviceMemoryFreeReporter); ok {
		free, err := d.DeviceMemoryFree()
		if err != nil {
			return fmt.Errorf("reading the free memory of %s: %w", opt.Backend.Name(), err)
		}
		avail, where = free, "the device "+opt.Backend.Name()
	} else {
		if !strings.HasPrefix(opt.Backend.Name(), "cpu") {
			return nil
		}
		avail = opt.HostMemory
		if avail <= 0 {
			var ok bool
			if avail, ok = HostMemoryAvailable(); !ok {
				return nil // no figure to check against (not Linux)
			}
		}
	}
	world := max(opt.WorldSize, 1)
	plan, err := EstimateStorageMemory(cfg, world, withEval, engine.StorageOf(opt.Backend))
	if err != nil {
		return err
	}
	if err := plan.Fits(avail, where); err != nil {
		return fmt.Errorf("global_batch_size %d with %s: %w", cfg.GlobalBatchSize, cfg.Group(), err)
	}
	return nil
}

// HookError is an optional interface of a Hook whose work can fail (the
// JSONL log cannot write, a metrics sink is gone). Run calls Err after
// OnStart, after every step, evaluation and checkpoint, and after OnEnd: a
// non-nil error stops the run after a checkpoint (or, with
// RunOptions.LogDegrade, is printed as a warning and the hook is dropped).
// Err must keep returning the first error once it has failed.
type HookError interface {
	Err() error
}

// Summary is what a finished run reports.
type Summary struct {
	Steps       int
	TotalSteps  int
	LastEval    *EvalReport
	Wall        time.Duration
	Interrupted bool
	Checkpoint  string // the last checkpoint written, if any
	// RunDir is the directory the run wrote (its checkpoint_dir).
	RunDir string
	// Resumed is the checkpoint the run resumed from ("" for a fresh run).
	Resumed string
	// Notes are what the run logged about its resume (changed keys, a
	// recomputed schedule, recovered files).
	Notes []string
}

// plan is a run resolved before it starts: fresh or resumed, and where.
type plan struct {
	cfg     Config
	meta    *Meta
	from    string // the checkpoint resumed from
	runDir  string
	changed map[string]bool // keys a resume changed
	notes   []string
}

// resolve decides between a fresh run and a resume and computes the
// config; it reads checkpoints but writes nothing.
func resolve(cfg Config, opt RunOptions) (*plan, error) {
	if err := absPaths(&cfg); err != nil {
		return nil, err
	}
	p := &plan{changed: map[string]bool{}}
	src, overrides, out := opt.Resume, opt.ResumeOverrides, opt.Out
	if src == ResumeAuto {
		dir := cfg.CheckpointDir
		if out != "" {
			dir, _ = filepath.Abs(out)
		}
		if dir == "" {
			return nil, fmt.Errorf("resume auto needs a run directory: set --out (checkpoint_dir)")
		}
		cfg.CheckpointDir = dir
		if steps, err := ListCheckpoints(dir); err != nil || len(steps) == 0 {
			if err != nil && !os.IsNotExist(err) {
				return nil, err
			}
			p.cfg, p.runDir = cfg, dir
			p.notes = append(p.notes, fmt.Sprintf("resume auto: no checkpoint in %s, starting a fresh run", dir))
			return p, nil
		}
		src, out = dir, dir
	}
	if src == "" {
		p.cfg, p.runDir = cfg, cfg.CheckpointDir
		return p, nil
	}
	dir, meta, skipped, err := pickCheckpoint(src, opt.FallbackCheckpoint)
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		p.notes = append(p.notes, "fallback: "+s)
	}
	if opt.Resume == ResumeAuto {
		// The relaunched command line's config against the stored one.
		overrides = configDiff(meta.Config, cfg)
	}
	if out == "" {
		if out, err = plannedRunDir(cfg, opt); err != nil {
			return nil, err
		}
	}
	rc, notes, err := ResumeConfig(meta.Config, overrides, out)
	if err != nil {
		return nil, err
	}
	p.notes = append(p.notes, notes...)
	for _, kv := range overrides {
		k, _, _ := strings.Cut(kv, "=")
		k = strings.TrimPrefix(strings.TrimSpace(k), "+")
		if !reflect.DeepEqual(fieldOf(&rc, keyPaths()[k]), fieldOf(&meta.Config, keyPaths()[k])) {
			p.changed[k] = true
		}
	}
	p.cfg, p.meta, p.from, p.runDir = rc, &meta, dir, rc.CheckpointDir
	return p, nil
}

// pickCheckpoint resolves a resume argument to a verified checkpoint and
// its counters. With fallback, a run directory's damaged newest
// checkpoints are skipped (each reported) for the newest good one.
func pickCheckpoint(src string, fallback bool) (string, Meta, []string, error) {
	dir, err := LatestCheckpoint(src)
	if err != nil {
		return "", Meta{}, nil, err
	}
	candidates := []string{dir}
	if fallback && dir != src {
		all, _ := ListCheckpoints(src)
		candidates = nil
		for i := len(all) - 1; i >= 0; i-- {
			candidates = append(candidates, all[i])
		}
	}
	var skipped []string
	for _, d := range candidates {
		meta, err := loadVerified(d)
		if err == nil {
			return d, meta, skipped, nil
		}
		if !fallback {
			if dir != src {
				err = fmt.Errorf("%w (an older checkpoint is used only when asked: --fallback-checkpoint)", err)
			}
			return "", Meta{}, nil, err
		}
		skipped = append(skipped, err.Error())
	}
	return "", Meta{}, nil, fmt.Errorf("resume %s: no checkpoint passes verification: %s", src, strings.Join(skipped, "; "))
}

func loadVerified(dir string) (Meta, error) {
	if err := VerifyCheckpoint(dir); err != nil {
		return Meta{}, err
	}
	return LoadMeta(dir)
}

// RunDirFor returns the run directory (absolute; "" for a run without
// checkpoints) that Run will lock and write for cfg and opt: Out, else
// for a resume the directory of the checkpoint (or a checkpoint_dir
// override), else cfg's checkpoint_dir. A command line uses it to default
// its metrics run label and to name the directory in its messages.
func RunDirFor(cfg Config, opt RunOptions) (string, error) {
	return plannedRunDir(cfg, launchOptions(cfg, opt))
}

// plannedRunDir is the directory a run will write (absolute), known
// before any checkpoint is read so that it can be locked first.
func plannedRunDir(cfg Config, opt RunOptions) (string, error) {
	dir := cfg.CheckpointDir
	switch {
	case opt.Out != "":
		dir = opt.Out
	case opt.Resume == ResumeAuto:
	case opt.Resume != "":
		dir = runRoot(opt.Resume)
		for _, kv := range opt.ResumeOverrides {
			if k, v, ok := strings.Cut(kv, "="); ok && strings.TrimPrefix(strings.TrimSpace(k), "+") == "checkpoint_dir" {
				dir = strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
	}
	if dir == "" {
		return "", nil
	}
	return filepath.Abs(dir)
}

// refuseOtherRun runs under the directory's lock: a run must not write
// into a directory holding another run's checkpoints (its pruning would
// delete them), unless overwrite deletes them first.
func refuseOtherRun(p *plan, overwrite bool) error {
	ours := p.meta != nil && runRoot(p.from) == p.runDir
	if ours {
		return nil
	}
	steps, err := ListCheckpoints(p.runDir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if len(steps) == 0 {
		return nil
	}
	if !overwrite {
		what := "a fresh run"
		if p.meta != nil {
			what = "a run resumed from " + p.from
		}
		return fmt.Errorf("run directory %s holds the checkpoints of another run (newest: %s); %s would mix its checkpoints with them and prune them: resume that run (--resume %s or --resume auto), give another --out, or pass --overwrite to delete them",
			p.runDir, filepath.Base(steps[len(steps)-1]), what, p.runDir)
	}
	for _, s := range steps {
		if err := removeCheckpoint(s); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(p.runDir, "best")); err == nil {
		if err := removeCheckpoint(filepath.Join(p.runDir, "best")); err != nil {
			return err
		}
	}
	p.notes = append(p.notes, fmt.Sprintf("overwrite: deleted %d checkpoints of another run from %s", len(steps), p.runDir))
	return nil
}

// openDataset opens a dataset (a variable so a test can make it block as
// a hung network mount does).
var openDataset = data.Open

// openData opens a dataset, giving up when ctx ends (a path that blocks,
// on a hung network mount, must not make SIGTERM wait forever).
func openData(ctx context.Context, split string, paths ...string) (*data.Dataset, error) {
	type res struct {
		ds  *data.Dataset
		err error
	}
	ch := make(chan res, 1)
	go func() {
		ds, err := openDataset(split, paths...)
		ch <- res{ds, err}
	}()
	select {
	case r := <-ch:
		return r.ds, r.err
	case <-ctx.Done():
		go func() {
			// Close it if it ever opens.
			if r := <-ch; r.ds != nil {
				r.ds.Close()
			}
		}()
		return nil, fmt.Errorf("opening the %s data %v: %w", split, paths, context.Cause(ctx))
	}
}

// Run trains cfg to its total steps (or until ctx is cancelled: then it
// finishes the current step, or abandons the current evaluation, writes a
// checkpoint and returns with Summary.Interrupted set and a nil error).
// The run directory (checkpoint_dir) is locked for the life of the run
// (LockRunDir); it receives the checkpoints, ConfigFile and RunFile.
func Run(ctx context.Context, cfg Config, opt RunOptions) (sum *Summary, err error) {
	start := time.Now()
	opt = launchOptions(cfg, opt)
	if opt.WorldSize == 0 {
		opt.WorldSize = 1
	}
	warn := opt.Warn
	if warn == nil {
		warn = os.Stderr
	}
	if opt.Comm != nil {
		opt.Rank, opt.WorldSize = opt.Comm.Rank(), opt.Comm.Size()
		// A replica that fails must not leave the others waiting in a collective.
		defer func() {
			if err != nil {
				opt.Comm.Abort(err)
			}
		}()
	}
	var recovered []string
	if dir, err := plannedRunDir(cfg, opt); err != nil {
		return nil, err
	} else if opt.Rank == 0 && dir != "" {
		// The lock comes first: nothing reads or tidies the directory
		// while another process may be writing it.
		lk, err := LockRunDir(dir)
		if err != nil {
			return nil, err
		}
		defer lk.Close()
		if recovered, err = recoverRunDir(dir); err != nil {
			return nil, fmt.Errorf("run directory %s: %w", dir, err)
		}
	}
	p, err := resolve(cfg, opt)
	if err != nil {
		return nil, err
	}
	p.notes = append(recovered, p.notes...)
	cfg = p.cfg
	if opt.Rank == 0 && p.runDir != "" {
		if err := refuseOtherRun(p, opt.Overwrite); err != nil {
			return nil, err
		}
	}
	meta := p.meta
	if len(cfg.DataPaths) == 0 {
		return nil, fmt.Errorf("no training data: set data_paths=[DIR,...] (build one with `trm-train data sudoku|maze|arc`)")
	}
	// A signal while the data opens stops the run before its first step:
	// interrupted, nothing new to checkpoint (a resumed run's checkpoint
	// is still its newest state).
	interrupted := func() (*Summary, error) {
		s := &Summary{Interrupted: true, Wall: time.Since(start), RunDir: p.runDir, Resumed: p.from, Notes: p.notes}
		if meta != nil {
			s.Steps, s.TotalSteps, s.Checkpoint = meta.Step, meta.TotalSteps, p.from
		}
		return s, nil
	}
	trainDS, err := openData(ctx, "train", cfg.DataPaths...)
	if err != nil {
		if ctx.Err() != nil {
			return interrupted()
		}
		return nil, err
	}
	defer trainDS.Close()
	md := trainDS.Meta
	if meta != nil {
		// New data must fit the stored model.
		a := meta.Config.Arch
		if md.SeqLen != a.SeqLen || md.VocabSize != a.VocabSize || md.NumPuzzleIdentifiers != a.NumPuzzleIdentifiers {
			return nil, fmt.Errorf("resume: data %v has seq_len %d, vocab_size %d, num_puzzle_identifiers %d; the checkpoint's model needs %d, %d, %d",
				cfg.DataPaths, md.SeqLen, md.VocabSize, md.NumPuzzleIdentifiers, a.SeqLen, a.VocabSize, a.NumPuzzleIdentifiers)
		}
	}
	cfg.Arch = WithDataset(cfg.Arch, md)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	testPaths := cfg.DataPathsTest
	if len(testPaths) == 0 {
		testPaths = cfg.DataPaths
	}
	var testDS *data.Dataset
	if allExist(testPaths, "test") {
		if testDS, err = openData(ctx, "test", testPaths...); err != nil {
			if ctx.Err() != nil {
				return interrupted()
			}
			return nil, err
		}
		defer testDS.Close()
		if tm := testDS.Meta; tm.SeqLen != md.SeqLen || tm.VocabSize != md.VocabSize {
			return nil, fmt.Errorf("test data %v: seq_len %d, vocab_size %d differ from the training data's %d, %d", testPaths, tm.SeqLen, tm.VocabSize, md.SeqLen, md.VocabSize)
		}
	}
	if err := checkMemory(cfg, opt, testDS != nil && opt.Rank == 0); err != nil {
		return nil, err
	}
	total := TotalSteps(cfg.Epochs, md.TotalGroups, md.MeanPuzzleExamples, cfg.GlobalBatchSize)
	if cfg.TotalStepsLimit > 0 {
		total = min(total, cfg.TotalStepsLimit)
	}
	if total < 1 {
		return nil, fmt.Errorf("the dataset (%d groups x %.3g examples) over %d epochs gives no full batch of %d", md.TotalGroups, md.MeanPuzzleExamples, cfg.Epochs, cfg.GlobalBatchSize)
	}
	passes := cfg.Epochs / cfg.EvalInterval
	pass := 0
	var best *BestInfo
	freshData := false
	if meta != nil {
		if total != meta.TotalSteps {
			if !p.changed["epochs"] && !p.changed["max_steps"] && !p.changed["data_paths"] {
				return nil, fmt.Errorf("resume %s: %s records total_steps %d, but its config and data %v give %d (was the dataset rebuilt?)",
					p.from, MetaFile, meta.TotalSteps, cfg.DataPaths, total)
			}
			p.notes = append(p.notes, fmt.Sprintf("total steps %d -> %d: the learning-rate schedule is recomputed from step %d on; the run is no longer bit-exact with an uninterrupted one", meta.TotalSteps, total, meta.Step))
		}
		pass, best = meta.Pass, meta.Best
		if p.changed["eval_interval"] {
			old := meta.Config.EvalInterval
			pass = meta.Pass * old / cfg.EvalInterval
			freshData = true
			p.notes = append(p.notes, fmt.Sprintf("eval_interval %d -> %d: %d epochs done count as %d evaluation intervals; the data position restarts at a fresh pass (not bit-exact with an uninterrupted run)", old, cfg.EvalInterval, meta.Pass*old, pass))
		}
		if p.changed["data_paths"] {
			freshData = true
			p.notes = append(p.notes, fmt.Sprintf("data_paths changed: the data position restarts at a fresh pass over %v (not bit-exact with an uninterrupted run)", cfg.DataPaths))
		}
		if pass > passes {
			return nil, fmt.Errorf("resume: epochs=%d (%d evaluation intervals) is fewer than the %d intervals the checkpoint has done", cfg.Epochs, passes, pass)
		}
		if best != nil && best.Metric != cfg.BestMetric {
			best = nil
			p.notes = append(p.notes, fmt.Sprintf("best_metric is now %q: the best checkpoint is chosen afresh", cfg.BestMetric))
		}
		if meta.Step >= total {
			p.notes = append(p.notes, fmt.Sprintf("the checkpoint is at step %d of %d: nothing left to train", meta.Step, total))
		}
	}
	layout, err := engine.NewArchLayout(withBatch(cfg.Arch, cfg.GlobalBatchSize/opt.WorldSize), cfg.ArchSettings)
	if err != nil {
		return nil, err
	}
	init := opt.Init
	if init == nil {
		init = engine.InitParams(layout, cfg.Seed)
	}
	t, err := NewReplica(cfg, opt.Backend, init, total, opt.Comm, opt.WorldSize)
	if err != nil {
		return nil, err
	}
	sh := data.Sharding{GlobalBatchSize: cfg.GlobalBatchSize, Rank: opt.Rank, WorldSize: opt.WorldSize}
	it, err := trainDS.Train(data.TrainConfig{Sharding: sh, Seed: cfg.Seed, EpochsPerPass: cfg.EvalInterval})
	if err != nil {
		return nil, err
	}
	if meta != nil {
		if err := restoreState(p.from, t, *meta, opt.Rank, opt.WorldSize); err != nil {
			return nil, err
		}
		t.TotalSteps = total
		if !freshData {
			if err := it.Restore(meta.Data); err != nil {
				return nil, fmt.Errorf("resume %s: data position: %w", p.from, err)
			}
		}
	} else if err := t.BroadcastParams(); err != nil {
		// A fresh start: every replica takes rank 0's weights. (A resumed
		// run loads the same checkpoint everywhere; the check below
		// confirms it.)
		return nil, err
	}
	if cfg.ReplicaCheckEvery > 0 {
		// Every replica must start from the same weights (the same seed,
		// --init file or checkpoint): check before the first step.
		if err := t.CheckReplicas(); err != nil {
			return nil, err
		}
	}
	var ev *Evaluator
	if testDS != nil && opt.Rank == 0 {
		ev, err = NewEvaluator(cfg, opt.Backend, testDS, cfg.GlobalBatchSize/opt.WorldSize, cfg.CheckpointDir)
		if err != nil {
			return nil, err
		}
	}
	label := opt.RunLabel
	if opt.Rank == 0 && p.runDir != "" {
		rec, ok, err := ReadRunRecord(p.runDir)
		if err != nil {
			return nil, err
		}
		if p.meta != nil && runRoot(p.from) != p.runDir {
			// A resume into another directory carries the run's record.
			if r, ok2, _ := ReadRunRecord(runRoot(p.from)); ok2 {
				rec, ok = r, true
			}
		}
		if !ok || p.meta == nil {
			rec = RunRecord{Created: nowRFC3339()}
		}
		if label == "" {
			label = rec.Label
		}
		if label == "" {
			label = filepath.Base(p.runDir)
		}
		rec.Label = label
		if p.meta != nil {
			rec.Resumes = append(rec.Resumes, ResumeRecord{Time: nowRFC3339(), From: p.from, Step: p.meta.Step, Notes: p.notes})
		}
		if err := writeRunFiles(p.runDir, cfg, rec); err != nil {
			return nil, fmt.Errorf("run directory %s: %w", p.runDir, err)
		}
	}
	if opt.Rank == 0 {
		for _, n := range p.notes {
			fmt.Fprintln(warn, "note:", n)
		}
	}
	hooks := append([]Hook(nil), opt.Hooks...)
	logPath := opt.LogPath
	if logPath == "" && opt.DefaultLog && p.runDir != "" {
		logPath = filepath.Join(p.runDir, "run.jsonl")
	}
	if logPath != "" && opt.Rank == 0 {
		if dir := filepath.Dir(logPath); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
		h, err := NewJSONLHook(logPath)
		if err != nil {
			return nil, err
		}
		hooks = append([]Hook{h}, hooks...)
	}
	info := RunInfo{Config: cfg, TotalSteps: total, StartStep: t.Step, Backend: opt.Backend.Name(), Params: layout.NumTrained,
		StepsPerEpoch: float64(md.TotalGroups) * md.MeanPuzzleExamples / float64(cfg.GlobalBatchSize),
		RunDir:        p.runDir, RunLabel: label, ResumedFrom: p.from, Notes: p.notes}
	for _, s := range trainDS.Sets {
		info.TrainSets = append(info.TrainSets, s.Name)
	}
	if testDS != nil {
		for _, s := range testDS.Sets {
			info.TestSets = append(info.TestSets, s.Name)
		}
	}
	sum = &Summary{TotalSteps: total, RunDir: p.runDir, Resumed: p.from, Notes: p.notes}
	for _, h := range hooks {
		h.OnStart(info)
	}
	defer func() {
		for _, h := range hooks {
			h.OnEnd(err)
		}
		if herr := hookFailure(hooks); herr != nil && err == nil {
			err = herr
		}
	}()
	// checkHooks applies the hooks' failure policy: drop with a warning,
	// or report the error (the caller then checkpoints and stops).
	checkHooks := func() error {
		herr := hookFailure(hooks)
		if herr == nil {
			return nil
		}
		if !opt.LogDegrade {
			return herr
		}
		kept := hooks[:0]
		for _, h := range hooks {
			if e, ok := h.(HookError); ok && e.Err() != nil {
				fmt.Fprintf(warn, "WARNING: %v; the run goes on without it (degraded logging was asked for)\n", e.Err())
				continue
			}
			kept = append(kept, h)
		}
		hooks = kept
		return nil
	}
	if err := checkHooks(); err != nil {
		return sum, err
	}
	// lastGood names the newest checkpoint (every checkpoint written holds
	// finite weights).
	lastGood := func() string {
		if sum.Checkpoint != "" {
			return sum.Checkpoint
		}
		if cfg.CheckpointDir != "" {
			if steps, _ := ListCheckpoints(cfg.CheckpointDir); len(steps) > 0 {
				return steps[len(steps)-1]
			}
		}
		return ""
	}
	checkpoint := func(p int, passDone bool) error {
		if cfg.CheckpointDir == "" {
			return nil
		}
		t0 := time.Now()
		carry, err := t.GlobalCarry() // a collective: every replica takes part
		if err != nil {
			return err
		}
		if opt.Rank != 0 {
			return nil
		}
		expl, err := t.Model.ExplorationState()
		if err != nil {
			return err
		}
		m := Meta{Version: MetaVersion, Step: t.Step, OptimStep: t.Optim.Step, TotalSteps: total, Pass: p, PassDone: passDone, Data: it.State(),
			Exploration: expl, NonFinite: t.NonFinite, SkippedTotal: t.SkippedTotal, Best: best, Config: cfg}
		dir, err := writeCheckpoint(cfg.CheckpointDir, t, m, carry)
		if err != nil {
			return fmt.Errorf("checkpoint at step %d: %w", t.Step, err)
		}
		sum.Checkpoint = dir
		isBest := best != nil && best.Step == t.Step
		if isBest {
			if err := markBest(cfg.CheckpointDir, dir, *best); err != nil {
				return fmt.Errorf("marking the best checkpoint: %w", err)
			}
		}
		if err := pruneCheckpoints(cfg.CheckpointDir, cfg.KeepCheckpoints); err != nil {
			return err
		}
		for _, h := range hooks {
			h.OnCheckpoint(CheckpointInfo{Step: t.Step, Dir: dir, Duration: time.Since(t0), Best: isBest})
		}
		return nil
	}
	// stopWith checkpoints, then returns cause (with the checkpoint's
	// failure, if any, and where the last good state is).
	// stopAt is stopWith for a pass p trained with its evaluation still
	// pending (evalPending), which a resume then runs first.
	var stopAt func(cause error, p int, evalPending bool) error
	stopWith := func(cause error, p int) error { return stopAt(cause, p, false) }
	stopAt = func(cause error, p int, evalPending bool) error {
		if cerr := checkpoint(p, evalPending); cerr != nil && !errors.Is(cerr, ErrNonFiniteWeights) {
			cause = fmt.Errorf("%w (and %v)", cause, cerr)
		}
		if cfg.CheckpointDir == "" {
			return fmt.Errorf("%w (no checkpoint directory was set)", cause)
		}
		if g := lastGood(); g != "" {
			return fmt.Errorf("%w; the last good state is in %s", cause, g)
		}
		return fmt.Errorf("%w; no checkpoint with finite weights exists", cause)
	}

	skipTrain := meta != nil && meta.PassDone && !freshData
	if skipTrain && meta.Data.PassBatches > 0 && t.Step < total {
		// The checkpoint's pass was cut by the step limit before its data
		// ended, and its evaluation was interrupted. With a larger budget
		// the rest of the pass trains; its end evaluates instead.
		skipTrain = false
	}
	var b data.Batch
	for ; pass < passes && (t.Step < total || skipTrain); pass++ {
		dataEnded := false
		for !skipTrain && t.Step < total {
			stop, err := t.AnyStop(ctx.Err() != nil)
			if err != nil {
				return sum, err
			}
			if stop {
				sum.Interrupted = true
				sum.Steps, sum.Wall = t.Step, time.Since(start)
				return sum, checkpoint(pass, false)
			}
			t0 := time.Now()
			before := it.State()
			err = it.Next(&b)
			wait := time.Since(t0)
			if errors.Is(err, data.ErrEndOfPass) {
				dataEnded = true
				break
			}
			if fe := (*data.FaultError)(nil); errors.As(err, &fe) {
				// A dataset file changed under the run: the steps so far
				// are good, the data from here on cannot be trusted. The
				// faulted draw had moved the position on: the checkpoint
				// records the position before it, so a resume over the
				// repaired file trains that batch.
				if rerr := it.Restore(before); rerr != nil {
					return sum, fmt.Errorf("training data: %w (and restoring the data position: %v)", err, rerr)
				}
				return sum, stopWith(fmt.Errorf("training data: %w", err), pass)
			}
			if err != nil {
				return sum, err
			}
			rep, err := t.TrainBatch(b.Inputs, b.Labels, b.PuzzleIdentifiers)
			if rep != nil {
				rep.DataWait = wait
				for _, h := range hooks {
					h.OnStep(rep)
				}
			}
			if err != nil {
				if errors.Is(err, ErrNonFinite) {
					return sum, stopWith(err, pass)
				}
				return sum, err
			}
			if herr := checkHooks(); herr != nil {
				return sum, stopWith(herr, pass)
			}
			if cfg.ReplicaCheckEvery > 0 && t.Step%cfg.ReplicaCheckEvery == 0 {
				if err := t.CheckReplicas(); err != nil {
					return sum, err
				}
			}
		}
		skipTrain = false
		// next is the pass a checkpoint from here on records as the
		// next to train. A pass the step limit cut short may still hold
		// batches: it is recorded as not completed, so a resume with a
		// larger budget (max_steps, epochs) trains the rest of it and the
		// passes after, up to the new total, exactly as a run given that
		// budget from the start draws them.
		next := pass + 1
		if !dataEnded {
			ended, err := passDataEnded(it, &b)
			if err != nil {
				return sum, err
			}
			if !ended {
				next = pass
			}
		}
		last := pass == passes-1 || t.Step >= total
		evalStopped := false
		if ev != nil && pass >= cfg.MinEvalInterval {
			params, err := t.Optim.EMAParams()
			if err != nil {
				return sum, err
			}
			rep, err := ev.EvaluateContext(ctx, params, sh, t.Step)
			switch {
			case err != nil && ctx.Err() != nil:
				// Abandoned: the checkpoint below records the pass as
				// trained, its evaluation pending.
				evalStopped = true
			case errors.As(err, new(*data.FaultError)):
				// The pass is trained; its evaluation is left pending, to
				// run on resume once the test data is whole again.
				return sum, stopAt(fmt.Errorf("evaluation at step %d: %w", t.Step, err), pass, true)
			case err != nil:
				return sum, fmt.Errorf("evaluation at step %d: %w", t.Step, err)
			default:
				sum.LastEval = rep
				if cfg.BestMetric != "" {
					v, ok := rep.Flat[cfg.BestMetric]
					if !ok {
						return sum, fmt.Errorf("best_metric %q is not an evaluation metric (have: %s)", cfg.BestMetric, strings.Join(rep.SortedKeys(), ", "))
					}
					lower := strings.Contains(cfg.BestMetric, "loss")
					if best == nil || (!lower && v > best.Value) || (lower && v < best.Value) || math.IsNaN(best.Value) {
						best = &BestInfo{Metric: cfg.BestMetric, Value: v, Step: t.Step}
					}
				}
				for _, h := range hooks {
					h.OnEval(rep)
				}
				if herr := checkHooks(); herr != nil {
					return sum, stopWith(herr, pass+1)
				}
			}
		}
		// Every replica reaches this point once per pass: a signal seen
		// during the evaluation (rank 0) or at its end stops them all here.
		stop, err := t.AnyStop(ctx.Err() != nil || evalStopped)
		if err != nil {
			return sum, err
		}
		if stop {
			sum.Interrupted = true
			sum.Steps, sum.Wall = t.Step, time.Since(start)
			if evalStopped {
				return sum, checkpoint(pass, true)
			}
			return sum, checkpoint(next, false)
		}
		if cfg.CheckpointEveryEval || last {
			if err := checkpoint(next, false); err != nil {
				if errors.Is(err, ErrNonFiniteWeights) {
					return sum, stopWith(err, next)
				}
				return sum, err
			}
			if herr := checkHooks(); herr != nil {
				return sum, stopWith(herr, next)
			}
		}
	}
	sum.Steps, sum.Wall = t.Step, time.Since(start)
	return sum, nil
}

// passDataEnded reports whether the iterator's current pass has no batch
// left, for a pass whose training loop stopped without the iterator
// saying so (the step limit). A pass that has drawn no batch has reported
// its end already. Otherwise one draw is tried: at the end of the pass the
// iterator is left past it, as a loop that reached the end leaves it;
// when a batch (or a fault of the data files) comes instead, the position
// before the draw is restored, so nothing is consumed.
func passDataEnded(it *data.TrainIterator, b *data.Batch) (bool, error) {
	before := it.State()
	if before.PassBatches == 0 {
		return true, nil
	}
	err := it.Next(b)
	if errors.Is(err, data.ErrEndOfPass) {
		return true, nil
	}
	if rerr := it.Restore(before); rerr != nil {
		return false, fmt.Errorf("training data: restoring the position after looking for the end of the pass: %w", rerr)
	}
	return false, nil
}

// hookFailure returns the first error a hook reports through HookError.
func hookFailure(hooks []Hook) error {
	for _, h := range hooks {
		if e, ok := h.(HookError); ok {
			if err := e.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// WithDataset returns a with the sizes a dataset decides:
// seq_len, vocab_size and num_puzzle_identifiers from its metadata.
func WithDataset(a engine.Config, md data.Metadata) engine.Config {
	a.SeqLen, a.VocabSize, a.NumPuzzleIdentifiers = md.SeqLen, md.VocabSize, md.NumPuzzleIdentifiers
	return a
}

func withBatch(c engine.Config, b int) engine.Config {
	c.BatchSize = b
	return c
}

func allExist(dirs []string, split string) bool {
	for _, d := range dirs {
		if !data.Exists(d, split) {
			return false
		}
	}
	return len(dirs) > 0
}

// ArchForData returns cfg.Arch with the dataset-dependent sizes (seq_len,
// vocab_size, num_puzzle_identifiers) of cfg's training data and the
// per-replica batch of one replica.
func ArchForData(cfg Config) (engine.Config, error) {
	if len(cfg.DataPaths) == 0 {
		return cfg.Arch, fmt.Errorf("no training data: set data_paths=[DIR,...]")
	}
	ds, err := data.Open("train", cfg.DataPaths...)
	if err != nil {
		return cfg.Arch, err
	}
	defer ds.Close()
	a := WithDataset(cfg.Arch, ds.Meta)
	a.BatchSize = cfg.GlobalBatchSize
	return a, a.Validate()
}
