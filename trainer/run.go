package trainer

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	// Resume is a checkpoint directory (or a root of step_* directories)
	// to continue from; the run then uses the checkpoint's config.
	Resume string
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
}

// Summary is what a finished run reports.
type Summary struct {
	Steps       int
	TotalSteps  int
	LastEval    *EvalReport
	Wall        time.Duration
	Interrupted bool
	Checkpoint  string // the last checkpoint written, if any
}

// Run trains cfg to its total steps (or until ctx is cancelled: then it
// finishes the current step, writes a checkpoint and returns with
// Summary.Interrupted set and a nil error).
func Run(ctx context.Context, cfg Config, opt RunOptions) (sum *Summary, err error) {
	start := time.Now()
	if opt.WorldSize == 0 {
		opt.WorldSize = 1
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
	var meta *Meta
	if opt.Resume != "" {
		dir, err := LatestCheckpoint(opt.Resume)
		if err != nil {
			return nil, err
		}
		m, err := LoadMeta(dir)
		if err != nil {
			return nil, err
		}
		meta = &m
		opt.Resume = dir
		cfg = m.Config
	}
	if len(cfg.DataPaths) == 0 {
		return nil, fmt.Errorf("no training data: set data_paths=[DIR,...] (build one with `trm-train data sudoku|maze|arc`)")
	}
	trainDS, err := data.Open("train", cfg.DataPaths...)
	if err != nil {
		return nil, err
	}
	defer trainDS.Close()
	md := trainDS.Meta
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
		if testDS, err = data.Open("test", testPaths...); err != nil {
			return nil, err
		}
		defer testDS.Close()
		if tm := testDS.Meta; tm.SeqLen != md.SeqLen || tm.VocabSize != md.VocabSize {
			return nil, fmt.Errorf("test data %v: seq_len %d, vocab_size %d differ from the training data's %d, %d", testPaths, tm.SeqLen, tm.VocabSize, md.SeqLen, md.VocabSize)
		}
	}
	total := TotalSteps(cfg.Epochs, md.TotalGroups, md.MeanPuzzleExamples, cfg.GlobalBatchSize)
	if cfg.TotalStepsLimit > 0 {
		total = min(total, cfg.TotalStepsLimit)
	}
	if total < 1 {
		return nil, fmt.Errorf("the dataset (%d groups x %.3g examples) over %d epochs gives no full batch of %d", md.TotalGroups, md.MeanPuzzleExamples, cfg.Epochs, cfg.GlobalBatchSize)
	}
	layout := engine.NewLayout(withBatch(cfg.Arch, cfg.GlobalBatchSize/opt.WorldSize))
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
	pass := 0
	var best *BestInfo
	if meta != nil {
		if err := restoreState(opt.Resume, t, *meta, opt.Rank, opt.WorldSize); err != nil {
			return nil, err
		}
		if err := it.Restore(meta.Data); err != nil {
			return nil, fmt.Errorf("resume %s: data position: %w", opt.Resume, err)
		}
		pass, best = meta.Pass, meta.Best
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
	info := RunInfo{Config: cfg, TotalSteps: total, StartStep: t.Step, Backend: opt.Backend.Name(), Params: layout.NumTrained,
		StepsPerEpoch: float64(md.TotalGroups) * md.MeanPuzzleExamples / float64(cfg.GlobalBatchSize)}
	for _, s := range trainDS.Sets {
		info.TrainSets = append(info.TrainSets, s.Name)
	}
	if testDS != nil {
		for _, s := range testDS.Sets {
			info.TestSets = append(info.TestSets, s.Name)
		}
	}
	for _, h := range opt.Hooks {
		h.OnStart(info)
	}
	defer func() {
		for _, h := range opt.Hooks {
			h.OnEnd(err)
		}
	}()
	sum = &Summary{TotalSteps: total}
	checkpoint := func(p int) error {
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
		m := Meta{Version: 1, Step: t.Step, OptimStep: t.Optim.Step, TotalSteps: total, Pass: p, Data: it.State(),
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
		for _, h := range opt.Hooks {
			h.OnCheckpoint(CheckpointInfo{Step: t.Step, Dir: dir, Duration: time.Since(t0), Best: isBest})
		}
		return nil
	}

	passes := cfg.Epochs / cfg.EvalInterval
	var b data.Batch
	for ; pass < passes && t.Step < total; pass++ {
		for t.Step < total {
			stop, err := t.AnyStop(ctx.Err() != nil)
			if err != nil {
				return sum, err
			}
			if stop {
				sum.Interrupted = true
				sum.Steps, sum.Wall = t.Step, time.Since(start)
				return sum, checkpoint(pass)
			}
			t0 := time.Now()
			err = it.Next(&b)
			wait := time.Since(t0)
			if errors.Is(err, data.ErrEndOfPass) {
				break
			}
			if err != nil {
				return sum, err
			}
			rep, err := t.TrainBatch(b.Inputs, b.Labels, b.PuzzleIdentifiers)
			if rep != nil {
				rep.DataWait = wait
				for _, h := range opt.Hooks {
					h.OnStep(rep)
				}
			}
			if err != nil {
				if errors.Is(err, ErrNonFinite) {
					if cerr := checkpoint(pass); cerr != nil {
						return sum, fmt.Errorf("%w (and %v)", err, cerr)
					}
					if sum.Checkpoint != "" {
						err = fmt.Errorf("%w; the last good state is in %s", err, sum.Checkpoint)
					}
				}
				return sum, err
			}
			if cfg.ReplicaCheckEvery > 0 && t.Step%cfg.ReplicaCheckEvery == 0 {
				if err := t.CheckReplicas(); err != nil {
					return sum, err
				}
			}
		}
		last := pass == passes-1 || t.Step >= total
		if ev != nil && pass >= cfg.MinEvalInterval {
			params, err := t.Optim.EMAParams()
			if err != nil {
				return sum, err
			}
			rep, err := ev.Evaluate(params, sh, t.Step)
			if err != nil {
				return sum, fmt.Errorf("evaluation at step %d: %w", t.Step, err)
			}
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
			for _, h := range opt.Hooks {
				h.OnEval(rep)
			}
		}
		if cfg.CheckpointEveryEval || last {
			if err := checkpoint(pass + 1); err != nil {
				return sum, err
			}
		}
	}
	sum.Steps, sum.Wall = t.Step, time.Since(start)
	return sum, nil
}

// WithDataset returns a with the sizes a dataset decides (spec section 1):
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
