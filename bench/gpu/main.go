//go:build cuda

// Command trm-gpubench times training steps of the paper configurations on
// the CUDA backend and prints the table of the GPU check (bench/gpu-check):
// ms per step, examples/s, achieved TFLOP/s and MFU against the bf16 GEMM
// rate it measures first, launches and host synchronisations per step, and
// graph replay against eager launches; beside each measurement, the cost
// model's prediction for the same step on this GPU (engine/costmodel).
//
//	trm-gpubench [-steps 3] [-configs sudoku-mlp:768,sudoku-att:768,maze:192,arc1:192] [-json out.json]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tinyrecursive/trm/cuda"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/costmodel"
)

// row is one line of the table.
type row struct {
	Config         string  `json:"config"`
	Batch          int     `json:"batch"`
	Mode           string  `json:"mode"` // "graphs" or "eager"
	MsPerStep      float64 `json:"ms_per_step"`
	ExamplesPerSec float64 `json:"examples_per_s"`
	TFLOPs         float64 `json:"tflop_s"`
	MFU            float64 `json:"mfu"`
	LaunchesStep   float64 `json:"launches_per_step"`
	GraphOpsStep   float64 `json:"graph_ops_per_step"`
	SyncsStep      float64 `json:"syncs_per_step"`
	// PredictedMs is the cost model's step time for the same model step,
	// batch and launch mode on this GPU's datasheet figures (0: no figures
	// for this GPU); PredictedMFU its MFU against the datasheet bf16 peak.
	PredictedMs  float64 `json:"predicted_ms_per_step,omitempty"`
	PredictedMFU float64 `json:"predicted_mfu,omitempty"`
	Err          string  `json:"error,omitempty"`
}

func main() {
	steps := flag.Int("steps", 3, "timed steps per configuration and mode (after 2 warm-up steps)")
	configs := flag.String("configs", "sudoku-mlp:768,sudoku-att:768,maze:192,arc1:192", "preset:batch list")
	jsonOut := flag.String("json", "", "also write the rows as JSON to this file")
	device := flag.Int("device", 0, "CUDA device ordinal")
	flag.Parse()

	// On the CPU stand-in of the CUDA libraries every time and capacity
	// below would be the CPU's, labelled as a GPU's: refuse.
	if cuda.Emulated() {
		fmt.Fprintln(os.Stderr, "trm-gpubench: the CUDA libraries are the CPU stand-in; this check needs a GPU")
		os.Exit(2)
	}
	peak, info, err := gemmPeak(*device)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trm-gpubench:", err)
		os.Exit(1)
	}
	fmt.Printf("device: %s\n", info)
	fmt.Printf("measured bf16 GEMM rate (8192^3 through cuBLAS, fp32 in/out, bf16 operands): %.1f TFLOP/s\n", peak)
	// The driver's device name leads the description; the cost model
	// knows the GPUs of costmodel.GPUs().
	gpu := strings.SplitN(info, ",", 2)[0]
	if g, err := costmodel.LookupGPU(gpu); err != nil {
		fmt.Printf("cost model: %v; no predictions\n\n", err)
		gpu = ""
	} else {
		fmt.Printf("cost model: %s datasheet figures (bf16 tensor %.0f TFLOP/s dense, memory %.2f TB/s)\n\n", g.Name, g.TensorBF16/1e12, g.HBM/1e12)
	}

	var rows []row
	for _, spec := range strings.Split(*configs, ",") {
		name, bs, _ := strings.Cut(spec, ":")
		batch, _ := strconv.Atoi(bs)
		for _, graphs := range []bool{true, false} {
			r := runConfig(*device, name, batch, graphs, *steps, peak)
			predict(&r, gpu, name, batch, graphs)
			rows = append(rows, r)
			fmt.Fprintf(os.Stderr, "done %s B%d %s: %.1f ms/step %s\n", r.Config, r.Batch, r.Mode, r.MsPerStep, r.Err)
		}
	}
	fmt.Println("| config | batch | mode | ms/step | predicted ms/step | measured / predicted | examples/s | TFLOP/s | MFU | predicted MFU (datasheet peak) | launches/step | graph ops/step | host syncs/step |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		if r.Err != "" {
			fmt.Printf("| %s | %d | %s | error: %s ||||||||||\n", r.Config, r.Batch, r.Mode, r.Err)
			continue
		}
		pred, ratio, pmfu := "-", "-", "-"
		if r.PredictedMs > 0 {
			pred, ratio, pmfu = fmt.Sprintf("%.1f", r.PredictedMs), fmt.Sprintf("%.2f", r.MsPerStep/r.PredictedMs), fmt.Sprintf("%.1f%%", 100*r.PredictedMFU)
		}
		fmt.Printf("| %s | %d | %s | %.1f | %s | %s | %.0f | %.1f | %.1f%% | %s | %.0f | %.0f | %.1f |\n", r.Config, r.Batch, r.Mode, r.MsPerStep, pred, ratio,
			r.ExamplesPerSec, r.TFLOPs, 100*r.MFU, pmfu, r.LaunchesStep, r.GraphOpsStep, r.SyncsStep)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"device": info, "bf16_gemm_tflops": peak, "rows": rows}, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "trm-gpubench:", err)
		}
	}
}

// gemmPeak measures the bf16 GEMM rate the MFU is quoted against: an
// 8192^3 product of random fp32 matrices in GemmBF16 mode, the mean of ten
// after three warm-ups (random data: zeros run faster than real data).
func gemmPeak(device int) (float64, string, error) {
	b, err := cuda.NewWithOptions(device, cuda.Options{Gemm: cuda.GemmBF16})
	if err != nil {
		return 0, "", err
	}
	defer b.Close()
	const n = 8192
	rng := rand.New(rand.NewPCG(1, 2))
	host := make([]float32, n*n)
	for i := range host {
		host[i] = float32(rng.NormFloat64())
	}
	A, B, C := b.Alloc(engine.F32, n*n), b.Alloc(engine.F32, n*n), b.Alloc(engine.F32, n*n)
	b.Upload(A, host)
	b.Upload(B, host)
	g := engine.Gemm{M: n, N: n, K: n, Alpha: 1, A: A, Lda: n, B: B, Ldb: n, C: C, Ldc: n}
	for range 3 {
		b.Gemm(g)
	}
	if err := b.Sync(); err != nil {
		return 0, "", err
	}
	t0 := time.Now()
	for range 10 {
		b.Gemm(g)
	}
	if err := b.Sync(); err != nil {
		return 0, "", err
	}
	sec := time.Since(t0).Seconds() / 10
	return 2 * n * n * n / sec / 1e12, b.Device(), nil
}

// predict fills in the cost model's prediction for the step runConfig
// times (engine.Model.Step with backward) when the GPU is known.
func predict(r *row, gpu, name string, batch int, graphs bool) {
	if gpu == "" || r.Err != "" {
		return
	}
	p, err := engine.LookupPreset(name)
	if err != nil {
		return
	}
	cfg := p.Model
	cfg.BatchSize = batch
	rep, err := costmodel.PredictModelStep(cfg, gpu, graphs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cost model for %s B%d: %v\n", name, batch, err)
		return
	}
	r.PredictedMs, r.PredictedMFU = 1e3*rep.Time, rep.MFU
}

// runConfig times one preset at one batch size in one mode.
func runConfig(device int, name string, batch int, graphs bool, steps int, peak float64) (r row) {
	r = row{Config: name, Batch: batch, Mode: "eager"}
	if graphs {
		r.Mode = "graphs"
	}
	p, err := engine.LookupPreset(name)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	cfg := p.Model
	cfg.BatchSize = batch
	be, err := cuda.NewWithOptions(device, cuda.Options{Gemm: cuda.GemmBF16, Graphs: graphs, BatchHint: batch})
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer be.Close()
	m, err := engine.NewModel(cfg, be, engine.Options{Backward: true, ExplorationSeed: 1})
	if err != nil {
		r.Err = err.Error()
		return r
	}
	if err := m.SetParams(engine.InitParams(m.Layout, 1)); err != nil {
		r.Err = err.Error()
		return r
	}
	rng := rand.New(rand.NewPCG(3, 4))
	B, L := cfg.BatchSize, cfg.SeqLen
	in, labels, pids := make([]int32, B*L), make([]int32, B*L), make([]int32, B)
	for i := range in {
		in[i] = int32(rng.IntN(cfg.VocabSize))
		labels[i] = int32(rng.IntN(cfg.VocabSize))
	}
	if err := m.SetBatch(in, labels, pids); err != nil {
		r.Err = err.Error()
		return r
	}
	c := m.NewCarry()
	so := engine.StepOptions{Train: true, Backward: true, GradScale: 1 / float32(B)}
	// Two warm-ups: the first sighting of the step's op sequence runs
	// eagerly, the second is captured and replayed.
	for range 2 {
		if err := m.Step(c, so); err != nil {
			r.Err = err.Error()
			return r
		}
	}
	be.Stats()
	t0 := time.Now()
	for range steps {
		if err := m.Step(c, so); err != nil {
			r.Err = err.Error()
			return r
		}
	}
	sec := time.Since(t0).Seconds() / float64(steps)
	s := be.Stats()
	flops := engine.MatmulFLOPs(cfg, true)
	r.MsPerStep = 1e3 * sec
	r.ExamplesPerSec = float64(B) / sec
	r.TFLOPs = flops / sec / 1e12
	r.MFU = r.TFLOPs / peak
	r.LaunchesStep = float64(s.Launches) / float64(steps)
	r.GraphOpsStep = float64(s.GraphOps) / float64(steps)
	r.SyncsStep = float64(s.Syncs) / float64(steps)
	return r
}
