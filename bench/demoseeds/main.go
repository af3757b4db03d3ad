// Command demoseeds trains the built-in demo (`trm-train` with no
// arguments: trainer.DefaultDemo on trainer.BuildDemoData) once per seed
// and precision, in-process, and prints the held-out exact accuracy of
// each run, per seed and averaged, with the paired difference of each
// precision from the first one:
//
//	go run ./bench/demoseeds -seeds 1,2,3 -precision fp32,bf16,bf16act [key=value ...]
//
// The precisions are the CPU backend's: fp32; bf16, bf16 GEMM operands
// only (TRM_CPU_GEMM=bf16 TRM_CPU_ACTIVATIONS=fp32); bf16act, bf16 GEMM
// operands and bf16 activations between ops (TRM_CPU_GEMM=bf16, whose
// default activations are bf16).
//
// key=value arguments change the demo's configuration as on trm-train's
// command line (e.g. epochs=30), to study a variant on the same seeds.
// Every run trains the same puzzles (the demo's data seed is fixed) and is
// scored on the same 200 held-out ones, so one puzzle is 0.5 points; only
// the run's seed (parameter initialisation, batch order, exploration) and
// the precision change. A run is deterministic for a seed and precision
// whatever the thread count, so the table is reproducible on any machine
// with the same instruction set (bf16 needs AVX512_BF16).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/trainer"
)

func main() {
	seeds := flag.String("seeds", "1,2,3", "comma-separated run seeds (trainer config key seed), or a range like 1-10")
	modes := flag.String("precision", "fp32,bf16", "comma-separated precisions (fp32, bf16, bf16act); differences are taken from the first")
	threads := flag.Int("threads", 0, "worker threads per run (0: all cores)")
	flag.Parse()
	ss, err := parseSeeds(*seeds)
	if err != nil {
		log.Fatalf("-seeds: %v", err)
	}
	ms, err := parseModes(*modes)
	if err != nil {
		log.Fatalf("-precision: %v", err)
	}
	dir, err := os.MkdirTemp("", "trm-demoseeds-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	res, err := Study(context.Background(), dir, ss, ms, *threads, flag.Args(), os.Stderr)
	if err != nil {
		os.RemoveAll(dir)
		log.Fatal(err)
	}
	res.Print(os.Stdout)
}

// Precision is a CPU backend's arithmetic: its GEMM mode and how it
// stores activations.
type Precision struct {
	Gemm        cpu.GemmMode
	Activations engine.DType
}

// The precisions a study compares.
var (
	FP32    = Precision{cpu.GemmFP32, engine.F32}
	BF16    = Precision{cpu.GemmBF16, engine.F32}
	BF16Act = Precision{cpu.GemmBF16, engine.BF16}
)

// String names p as -precision does.
func (p Precision) String() string {
	switch p {
	case FP32:
		return "fp32"
	case BF16:
		return "bf16"
	case BF16Act:
		return "bf16act"
	}
	return fmt.Sprintf("%v GEMM, %v activations", p.Gemm, p.Activations)
}

// Result is one trained demo run.
type Result struct {
	Seed      uint64
	Precision Precision
	Exact     float64 // held-out exact accuracy, in points (percent)
	Token     float64 // held-out cell accuracy, in points
	Count     int     // held-out puzzles scored
	Steps     int
	Wall      time.Duration
	// Curve is the held-out exact accuracy (points) of every evaluation,
	// the last one included, with the step it was taken at.
	Curve []EvalPoint
}

// EvalPoint is one evaluation of a run.
type EvalPoint struct {
	Step  int
	Exact float64
}

// curveHook records a run's evaluations.
type curveHook struct {
	trainer.NopHook
	curve []EvalPoint
}

// OnEval implements trainer.Hook.
func (h *curveHook) OnEval(r *trainer.EvalReport) {
	h.curve = append(h.curve, EvalPoint{r.Step, 100 * r.Flat["all/exact_accuracy"]})
}

// Results are a study's runs, indexed [seed][precision] in the order asked.
type Results struct {
	Seeds      []uint64
	Precisions []Precision
	Runs       [][]Result
}

// Study builds the demo's data under dir (a directory of its own, which it
// fills) and trains the demo, changed by the key=value overrides, once for
// every seed and precision, logging each run's outcome to log.
func Study(ctx context.Context, dir string, seeds []uint64, precs []Precision, threads int, overrides []string, log io.Writer) (*Results, error) {
	if len(seeds) == 0 || len(precs) == 0 {
		return nil, errors.New("demoseeds: no seeds or no precisions")
	}
	check := trainer.DemoConfig() // a bad override fails before any training
	if err := check.SetAll(overrides); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoData(data, io.Discard); err != nil {
		return nil, err
	}
	out := &Results{Seeds: seeds, Precisions: precs}
	for _, s := range seeds {
		row := make([]Result, len(precs))
		for j, g := range precs {
			r, err := Train(ctx, data, s, g, threads, overrides)
			if err != nil {
				return nil, fmt.Errorf("seed %d, %s: %w", s, g, err)
			}
			var curve []string
			for _, p := range r.Curve {
				curve = append(curve, fmt.Sprintf("%d:%.1f", p.Step, p.Exact))
			}
			fmt.Fprintf(log, "seed %d %s: held-out exact %.1f%% (cells %.1f%%) of %d after %d steps in %s; by step %s\n",
				s, g, r.Exact, r.Token, r.Count, r.Steps, r.Wall.Round(100*time.Millisecond), strings.Join(curve, " "))
			row[j] = r
		}
		out.Runs = append(out.Runs, row)
	}
	return out, nil
}

// Train trains the demo (trainer.DefaultDemo on data, built by
// trainer.BuildDemoData, changed by the key=value overrides) with the
// given seed and precision and returns its final held-out evaluation.
func Train(ctx context.Context, data string, seed uint64, p Precision, threads int, overrides []string) (Result, error) {
	be, err := cpu.NewWithOptions(cpu.Options{Threads: threads, Gemm: p.Gemm, Activations: p.Activations})
	if err != nil {
		return Result{}, err
	}
	cfg := trainer.DefaultDemo(data)
	if err := cfg.SetAll(overrides); err != nil {
		return Result{}, err
	}
	cfg.Seed = seed
	h := &curveHook{}
	sum, err := trainer.Run(ctx, cfg, trainer.RunOptions{Backend: be, Hooks: []trainer.Hook{h}, Warn: io.Discard})
	if err != nil {
		return Result{}, err
	}
	if sum.Interrupted || sum.LastEval == nil {
		return Result{}, errors.New("the run ended without a final evaluation")
	}
	f := sum.LastEval.Flat
	return Result{
		Seed: seed, Precision: p,
		Exact: 100 * f["all/exact_accuracy"], Token: 100 * f["all/accuracy"], Count: int(f["all/count"]),
		Steps: sum.Steps, Wall: sum.Wall, Curve: h.curve,
	}, nil
}

// Mean returns the mean held-out exact accuracy of precision j (an index
// into Precisions) over the seeds.
func (r *Results) Mean(j int) float64 {
	s := 0.0
	for _, row := range r.Runs {
		s += row[j].Exact
	}
	return s / float64(len(r.Runs))
}

// Diff returns the mean and sample standard deviation over the seeds of
// the paired difference of precision j from precision 0 (same seed), in
// points; the deviation is 0 for a single seed.
func (r *Results) Diff(j int) (mean, sd float64) {
	n := float64(len(r.Runs))
	for _, row := range r.Runs {
		mean += row[j].Exact - row[0].Exact
	}
	mean /= n
	if len(r.Runs) < 2 {
		return mean, 0
	}
	for _, row := range r.Runs {
		d := row[j].Exact - row[0].Exact - mean
		sd += d * d
	}
	return mean, math.Sqrt(sd / (n - 1))
}

// Print writes the table: one row per seed, the mean, and the paired
// differences from the first precision with their spread.
func (r *Results) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "seed\t")
	for _, g := range r.Precisions {
		fmt.Fprintf(tw, "%s\t", g)
	}
	for _, g := range r.Precisions[1:] {
		fmt.Fprintf(tw, "%s-%s\t", g, r.Precisions[0])
	}
	fmt.Fprintln(tw)
	for i, row := range r.Runs {
		fmt.Fprintf(tw, "%d\t", r.Seeds[i])
		for _, x := range row {
			fmt.Fprintf(tw, "%.1f\t", x.Exact)
		}
		for _, x := range row[1:] {
			fmt.Fprintf(tw, "%+.1f\t", x.Exact-row[0].Exact)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "mean\t")
	for j := range r.Precisions {
		fmt.Fprintf(tw, "%.2f\t", r.Mean(j))
	}
	for j := range r.Precisions[1:] {
		m, _ := r.Diff(j + 1)
		fmt.Fprintf(tw, "%+.2f\t", m)
	}
	fmt.Fprintln(tw)
	tw.Flush()
	fmt.Fprintf(w, "held-out exact accuracy in %% of %d puzzles over %d seeds", r.Runs[0][0].Count, len(r.Runs))
	for j, g := range r.Precisions[1:] {
		m, sd := r.Diff(j + 1)
		fmt.Fprintf(w, "; %s-%s paired: mean %+.2f, sd %.2f, standard error %.2f", g, r.Precisions[0], m, sd, sd/math.Sqrt(float64(len(r.Runs))))
	}
	fmt.Fprintln(w)
}

// parseSeeds parses "1,2,3" or "1-10" (or a mix: "1-3,7").
func parseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: not a seed or a range of seeds", f)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("%q: not a range of seeds (want e.g. 1-10)", f)
			}
		}
		for x := a; x <= b; x++ {
			out = append(out, x)
		}
	}
	return out, nil
}

// parseModes parses "fp32,bf16,bf16act".
func parseModes(s string) ([]Precision, error) {
	var out []Precision
	for _, f := range strings.Split(s, ",") {
		switch f = strings.TrimSpace(f); f {
		case "fp32":
			out = append(out, FP32)
		case "bf16":
			out = append(out, BF16)
		case "bf16act":
			out = append(out, BF16Act)
		default:
			return nil, fmt.Errorf("%q: want fp32, bf16 or bf16act", f)
		}
	}
	return out, nil
}
