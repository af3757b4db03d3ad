// Package bench holds the project's benchmarks: one training step of the
// engine on the paper's shapes, and (in engine/cpu/gemm) the GEMM on the
// engine's matrix shapes next to the machine's measured FMA peak.
//
//	go test ./bench/ -run '^$' -bench Step -benchtime 3x
package bench

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/bench/fmapeak"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// StepConfig is one configuration of the step benchmark: a model config
// and its architecture (the zero value is the TRM).
type StepConfig struct {
	Name string
	Cfg  engine.Config
	Arch engine.ArchSettings
}

// StepConfigs are the configurations of the step benchmark: the three TRM
// ones, for which the reference PyTorch (1.13, OpenBLAS, 2 threads) takes
// 7.2 s, 7.9 s and 2.5 s per step on a 2-core machine, and the
// hrm-sudoku preset at the same batch size as the Sudoku TRMs, so that a
// change to the engine's shared forward and backward is timed on the
// HRM's two networks and 1-step gradient too.
func StepConfigs() []StepConfig {
	sudoku := func(mlpT bool) engine.Config {
		c := engine.DefaultConfig()
		c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 81, 11, 1
		c.HiddenSize, c.NumHeads, c.PuzzleEmbNdim, c.PuzzleEmbLen = 512, 8, 512, 16
		c.HCycles, c.LCycles, c.LLayers, c.BatchSize = 3, 6, 2, 16
		if mlpT {
			c.MLPT, c.PosEncodings = true, engine.PosNone
		}
		return c
	}
	small := engine.DefaultConfig()
	small.SeqLen, small.VocabSize, small.NumPuzzleIdentifiers = 81, 11, 1
	small.HiddenSize, small.NumHeads, small.PuzzleEmbNdim, small.PuzzleEmbLen = 128, 4, 128, 16
	small.HCycles, small.LCycles, small.LLayers, small.BatchSize = 2, 3, 2, 64
	hrm, hrmArch, err := engine.ResolveArchConfig("hrm-sudoku")
	if err != nil {
		panic(err) // a built-in preset: its absence is a programming error
	}
	hrm.BatchSize = 16
	return []StepConfig{
		{Name: "sudoku-mlp-B16", Cfg: sudoku(true)},
		{Name: "sudoku-att-B16", Cfg: sudoku(false)},
		{Name: "small-att-H128-B64", Cfg: small},
		{Name: "hrm-sudoku-B16", Cfg: hrm, Arch: hrmArch},
	}
}

// BenchmarkStep times one training step (forward, loss head, backward; no
// optimizer) from a fresh carry, so every slot runs the full recursion.
// The GEMM precision is the CPU backend's default (fp32) unless
// TRM_CPU_GEMM says otherwise.
func BenchmarkStep(b *testing.B) {
	// The machine's FMA peak on all threads running together, measured in
	// the same run so that the share of it is comparable across machines
	// and loads. A bf16 run (TRM_CPU_GEMM=bf16) is measured against the
	// bf16 peak instead: the higher of the FMA and VDPBF16PS peaks, the
	// two instructions the bf16 GEMM computes its bits with (see package
	// fmapeak).
	threads := runtime.GOMAXPROCS(0)
	fma := fmapeak.FMA(threads, 300*time.Millisecond)
	peak := fma.GFLOPS
	dp := fmapeak.DPBF16(threads, 300*time.Millisecond)
	bf16Peak := fmapeak.BF16(peak, dp.GFLOPS)
	b.Logf("peaks on %d threads running together: FMA %.1f GFLOP/s (best thread %.1f), VDPBF16PS %.1f (best thread %.1f), bf16 %.1f",
		threads, peak, fma.PerThread, dp.GFLOPS, dp.PerThread, bf16Peak)
	for _, sc := range StepConfigs() {
		b.Run(sc.Name, func(b *testing.B) {
			// TRM_CPU_GEMM=bf16 times the bf16 GEMM mode (see cpu.NewFromEnv).
			be, err := cpu.NewFromEnv(0)
			if err != nil {
				b.Fatal(err)
			}
			m, err := engine.NewModel(sc.Cfg, be, engine.Options{Backward: true, Arch: sc.Arch})
			if err != nil {
				b.Fatal(err)
			}
			if err := m.SetParams(engine.InitParams(m.Layout, 1)); err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 1))
			B, L := sc.Cfg.BatchSize, sc.Cfg.SeqLen
			in, labels, pids := make([]int32, B*L), make([]int32, B*L), make([]int32, B)
			for i := range in {
				in[i] = int32(1 + rng.IntN(sc.Cfg.VocabSize-1))
				labels[i] = int32(1 + rng.IntN(sc.Cfg.VocabSize-1))
			}
			if err := m.SetBatch(in, labels, pids); err != nil {
				b.Fatal(err)
			}
			c := m.NewCarry()
			so := engine.StepOptions{Train: true, Backward: true, GradScale: 1 / float32(B)}
			// Collect the setup's garbage now, so that no collection runs
			// during the timed steps.
			runtime.GC()
			// One untimed step first: it touches every activation and
			// scratch buffer for the first time, and the page faults of
			// that first touch (13% of a 4-step run of the small config,
			// measured with perf) are paid once per training run, not
			// per step.
			m.ResetCarry(c)
			if err := m.Step(c, so); err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuSeconds()
			// A step reuses every buffer and allocates nothing (the
			// engine's TestStepAllocs enforces it). What allocs/op may
			// still show, a few at small b.N, are the Go runtime's
			// channel-wait records (sudog, 112 B) for the worker pools'
			// parking, allocated until the runtime's per-P caches fill
			// and then recycled (a memory profile of the timed steps
			// shows nothing else).
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				m.ResetCarry(c)
				if err := m.Step(c, so); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(sec, "s/step")
			// CPU seconds (all threads) per step: on a shared machine the
			// wall time inflates with other load, the work done does not.
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/step")
			flops, err := engine.ArchMatmulFLOPs(sc.Cfg, sc.Arch, true)
			if err != nil {
				b.Fatal(err)
			}
			gflops := flops / sec / 1e9
			b.ReportMetric(gflops, "matmul-GFLOP/s")
			// A bf16 step reports both, %bf16peak against the bf16 peak.
			if be.GemmMode() == cpu.GemmBF16 && bf16Peak > 0 {
				b.ReportMetric(100*gflops/bf16Peak, "%bf16peak")
			}
			if peak > 0 {
				b.ReportMetric(100*gflops/peak, "%peak")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// TestMatmulFLOPs pins the FLOP count of the Sudoku MLP step against a
// count written out by hand from the shapes.
func TestMatmulFLOPs(t *testing.T) {
	c := StepConfigs()[0].Cfg
	const B, S, H, I, It, L, V = 16.0, 97.0, 512.0, 1536.0, 512.0, 81.0, 11.0
	block := 2*B*S*H*2*I + 2*B*S*I*H + 2*B*H*S*2*It + 2*B*H*It*S
	heads := 2*B*L*H*V + 2*B*H*2
	fwd := 3*7*2*block + heads
	want := fwd + 7*2*2*block + 2*heads
	if got := engine.MatmulFLOPs(c, true); fmt.Sprintf("%.6g", got) != fmt.Sprintf("%.6g", want) {
		t.Fatalf("MatmulFLOPs %.6g, want %.6g", got, want)
	}
}
