package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/tinyrecursive/trm/device/rendezvous"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/trainer"
)

// Data-parallel launch hooks, set by the cuda build (parallel_cuda.go).
//
// openParallel opens the backend the caller's hooks (metrics, progress)
// see, for a --device naming several GPUs, or for any cuda device when the
// environment says this process is one rank of several (WORLD_SIZE > 1):
// in-process, the first device's backend (rank 0); multi-process, this
// rank's device (LOCAL_RANK picks it). It records the plan that
// runParallel then carries out.
var openParallel func(spec string) (engine.Backend, error)

// runParallel runs the recorded plan: nil when none was made (a single
// device), so runTraining falls back to trainer.Run.
var runParallel func(ctx context.Context, cfg trainer.Config, opt trainer.RunOptions) (*trainer.Summary, bool, error)

// wantsParallel reports whether a --device value needs the data-parallel
// path: several devices listed, "cuda" (every visible device), or one
// rank of a multi-process job.
func wantsParallel(spec string) (bool, error) {
	if strings.Contains(spec, ",") || spec == "cuda" {
		return true, nil // several GPUs, or every visible one
	}
	env, multi, err := rendezvous.FromEnv()
	if err != nil {
		return false, err
	}
	if multi && spec == "cpu" {
		return false, fmt.Errorf("the environment describes a multi-process job (WORLD_SIZE > 1), which needs GPUs and NCCL: use --device cuda (one GPU per process), or unset WORLD_SIZE for a single CPU process")
	}
	if multi {
		// A rank without the job's secret could not join: say so before
		// any device is opened (planParallel checks again).
		if err := env.CheckAuth(); err != nil {
			return false, err
		}
	}
	return multi && (spec == "cuda" || strings.HasPrefix(spec, "cuda:")), nil
}

// runTraining runs one training job: a data-parallel group when
// openParallel planned one, otherwise a single replica.
func runTraining(ctx context.Context, cfg trainer.Config, opt trainer.RunOptions) (*trainer.Summary, error) {
	if runParallel != nil {
		if sum, ran, err := runParallel(ctx, cfg, opt); ran {
			return sum, err
		}
	}
	return trainer.Run(ctx, cfg, opt)
}
