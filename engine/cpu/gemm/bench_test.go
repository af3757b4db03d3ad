package gemm

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// peakLoop is a loop of independent zmm multiply-adds that measures one
// instruction's issue limit: run does iters iterations of flops each.
type peakLoop struct {
	name  string // metric prefix: "" for the fp32 FMA, "dpbf16" for VDPBF16PS
	run   func(iters int)
	flops float64
	have  func() bool

	coreOnce sync.Once
	core     float64 // see corePeakCPU
}

// fmaPeak is the fp32 VFMADD231PS peak loop, dpbf16Peak the VDPBF16PS
// one (twice the flops per instruction). The bf16 GEMM is measured
// against the higher of the two (BF16GEMMPeak, see fmapeak.go).
var (
	fmaPeak    = &peakLoop{name: "", run: fmaPeakZMM, flops: fmaPeakFlopsPerIter, have: haveFMAPeak}
	dpbf16Peak = &peakLoop{name: "dpbf16", run: runBF16Peak, flops: bf16PeakFlopsPerIter, have: haveBF16Peak}
)

// runBF16Peak runs the bf16 peak loop on zero inputs (no denormal or
// overflow can arise).
func runBF16Peak(iters int) {
	var a, b [16]uint32
	var out [bf16PeakChains * 16]float32
	bf16PeakZMM(iters, &a, &b, &out)
}

// peakMeter measures the FMA peak in short windows interleaved with a GEMM
// benchmark loop (timer stopped). The cores are shared with other work and
// the available throughput moves from second to second; sampling both in
// alternation makes the reported percentage compare like with like.
type peakMeter struct {
	loop        *peakLoop
	g           int
	flops, secs float64
	last        time.Time
	clock       func() time.Duration // the CPU clock maybeSample pauses: threadCPU, or processCPU
}

func newPeakMeter(g int) *peakMeter { return newPeakMeterOf(fmaPeak, g) }

// newPeakMeterOf is newPeakMeter for another peak loop.
func newPeakMeterOf(loop *peakLoop, g int) *peakMeter {
	return &peakMeter{loop: loop, g: g, last: time.Now(), clock: threadCPU}
}

// maybeSample takes a 10 ms peak sample after every 20 ms of benchmark
// time. The CPU clock (pm.clock) is read only around samples (it is a
// system call, too slow to read per iteration of a microsecond loop): *cpu
// accumulates the measured CPU time, *t0 is the start of the current span.
func (pm *peakMeter) maybeSample(b *testing.B, cpu, t0 *time.Duration) {
	if !pm.loop.have() || time.Since(pm.last) < 40*time.Millisecond {
		return
	}
	*cpu += pm.clock() - *t0
	b.StopTimer()
	pm.sample(20 * time.Millisecond)
	b.StartTimer()
	pm.last = time.Now()
	*t0 = pm.clock()
}

// sample measures the loop's concurrent throughput on pm.g threads for
// about d and adds it to the running average: the best of the sample's
// rounds (PeakRate.GFLOPS), taken between the benchmark's own calls so
// that it sees the load they saw. Not the mean over the rounds: a short
// round includes the threads' wake-up after the barrier, which on an idle
// machine put the mean 35-40% under the best round and under what the
// GEMM itself reached on the same threads (20 ms samples of 5 ms rounds
// keep that wake-up a small share of a round).
func (pm *peakMeter) sample(d time.Duration) {
	gf := MeasurePeak(pm.loop.run, pm.loop.flops, pm.g, d).GFLOPS
	pm.flops += gf * d.Seconds()
	pm.secs += d.Seconds()
}

// peak returns the loop's average sampled peak in GFLOP/s (0 where the
// loop cannot run), sampling once if the benchmark was too short to.
func (pm *peakMeter) peak() float64 {
	if !pm.loop.have() {
		return 0
	}
	if pm.secs == 0 {
		pm.sample(20 * time.Millisecond)
	}
	return pm.flops / pm.secs
}

// report adds %peak and the peak itself to b's metrics (%dpbf16peak and
// dpbf16peakGFLOP/s for the VDPBF16PS loop).
func (pm *peakMeter) report(b *testing.B, gflops float64) {
	if !pm.loop.have() {
		return
	}
	peak := pm.peak()
	b.ReportMetric(peak, pm.loop.name+"peakGFLOP/s")
	b.ReportMetric(100*gflops/peak, "%"+pm.loop.name+"peak")
}

// corePeakCPU is loop's single-core peak in GFLOP per second of thread
// CPU time: what one core delivers while it actually runs this thread.
// Measured once per loop.
func corePeakCPU(loop *peakLoop) float64 {
	loop.coreOnce.Do(func() {
		if !loop.have() || !haveThreadCPU {
			return
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		const iters = 1 << 15
		best := 0.0
		for r := 0; r < 20; r++ {
			t0 := threadCPU()
			loop.run(iters)
			loop.run(iters)
			loop.run(iters)
			loop.run(iters)
			gf := 4 * iters * loop.flops / (threadCPU() - t0).Seconds() / 1e9
			best = max(best, gf)
		}
		loop.core = best
	})
	return loop.core
}

// BenchmarkFMAPeak measures the machine's zmm FMA peak per core and with
// one goroutine per GOMAXPROCS.
func BenchmarkFMAPeak(b *testing.B) {
	if !haveFMAPeak() {
		b.Skip("no AVX-512 on this machine")
	}
	for _, g := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			const iters = 1 << 16
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := 0; i < g; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; n < b.N; n++ {
						fmaPeakZMM(iters)
					}
				}()
			}
			wg.Wait()
			flops := float64(b.N) * float64(g) * iters * fmaPeakFlopsPerIter
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

type benchShape struct {
	name           string
	transA, transB bool
	m, n, k, batch int
}

// The engine's matmuls: rows M = B*S = 1552 (Sudoku, B16 S97) and 5184
// (B64 S81). Forward products use the [out,in] weight transposed (NT),
// dX = dY W is NN, dW = dY^T X is TN.
var benchShapes = []benchShape{
	{"fwd_NT_1552x3072x512", false, true, 1552, 3072, 512, 1},
	{"dX_NN_1552x512x1536", false, false, 1552, 512, 1536, 1},
	{"dX_NN_1552x1536x512", false, false, 1552, 1536, 512, 1},
	{"dW_TN_3072x512x1552", true, false, 3072, 512, 1552, 1},
	{"dW_TN_512x1536x1552", true, false, 512, 1536, 1552, 1},
	{"fwd_NT_5184x384x128", false, true, 5184, 384, 128, 1},
	{"fwd_NT_5184x128x128", false, true, 5184, 128, 128, 1},
	{"attn_QK_NT_128x97x97x64", false, true, 97, 97, 64, 128},
	{"attn_PV_NN_128x97x64x97", false, false, 97, 64, 97, 128},
}

func BenchmarkSgemm(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.name, func(b *testing.B) { benchOne(b, s) })
	}
}

// BenchmarkSgemmSingle runs the shapes on one thread against the one-core
// peak: less sensitive to what the other core is doing, so better for
// tuning the kernel and the blocking.
func BenchmarkSgemmSingle(b *testing.B) {
	withThreads(1, func() {
		for _, s := range benchShapes {
			b.Run(s.name, func(b *testing.B) { benchOne(b, s) })
		}
	})
}

// BenchmarkSgemmKernels runs the largest shape with every kernel variant.
func BenchmarkSgemmKernels(b *testing.B) {
	for _, k := range kernels {
		b.Run(k.name, func(b *testing.B) {
			prev, _ := useKernel(k.name)
			defer active.Store(prev)
			benchOne(b, benchShapes[0])
		})
	}
}

func benchOne(b *testing.B, s benchShape) {
	rng := rand.New(rand.NewPCG(1, 1))
	ar, ac := s.m, s.k
	if s.transA {
		ar, ac = s.k, s.m
	}
	br, bc := s.k, s.n
	if s.transB {
		br, bc = s.n, s.k
	}
	sa, sb, sc := ar*ac, br*bc, s.m*s.n
	a := randSlice(rng, s.batch*sa)
	bm := randSlice(rng, s.batch*sb)
	c := make([]float32, s.batch*sc)
	call := func() {
		if s.batch == 1 {
			Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, ac, bm, bc, 0, c, s.n)
			return
		}
		SgemmStridedBatched(s.transA, s.transB, s.m, s.n, s.k, 1, a, ac, sa, bm, bc, sb, 0, c, s.n, sc, s.batch)
	}
	call()
	nt := min(int(threads.Load()), runtime.GOMAXPROCS(0))
	pm := newPeakMeter(nt)
	flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(s.batch)
	if nt == 1 {
		// Single-threaded calls run on this goroutine: pin it so the
		// thread CPU clock covers exactly the GEMM work.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	t0 := threadCPU()
	for i := 0; i < b.N; i++ {
		call()
		pm.maybeSample(b, &cpu, &t0)
	}
	cpu += threadCPU() - t0
	gf := flops * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(gf, "GFLOP/s")
	pm.report(b, gf)
	if nt == 1 && haveThreadCPU {
		reportCPU(b, fmaPeak, flops*float64(b.N), cpu)
	}
}

// reportCPU adds GFLOP per thread-CPU second and its ratio to the
// single-core peak measured the same way: the efficiency of the code on a
// core, insensitive to how often the shared core was taken away.
func reportCPU(b *testing.B, loop *peakLoop, flops float64, cpu time.Duration) {
	gf := flops / cpu.Seconds() / 1e9
	b.ReportMetric(gf, "cpuGFLOP/s")
	if p := corePeakCPU(loop); p > 0 {
		b.ReportMetric(100*gf/p, "%"+loop.name+"corepeak")
	}
}

// BenchmarkMicroKernel runs each micro-kernel alone on one core over a
// packed B block of nc columns (kc = the kernel's kc), i.e. one A sweep of
// the real loop, with the C tiles resident. It shows how close the inner
// loop gets to the single-core FMA peak measured right after it.
func BenchmarkMicroKernel(b *testing.B) {
	ks := kernels
	if BF16Supported() {
		ks = append([]*kernel{bf16Kernel, bf16FMAKernel}, ks...)
	}
	for _, k := range ks {
		for _, kc := range []int{k.kc, 64} {
			b.Run(fmt.Sprintf("%s/kc=%d", k.name, kc), func(b *testing.B) { benchKernel(b, k, kc) })
		}
	}
}

func benchKernel(b *testing.B, k *kernel, kc int) {
	rng := rand.New(rand.NewPCG(2, 2))
	nTiles := k.nc / k.nr
	ap := randSlice(rng, k.ms*kc)
	bp := randSlice(rng, k.nc*kc)
	c := make([]float32, k.mr*k.nc)
	loop := fmaPeak
	if k.bf16 {
		// A bf16 panel holds kc/2 pair steps in the first half of the
		// fp32-sized buffer; any bit pattern is a valid pair.
		loop = dpbf16Peak
	}
	pm := newPeakMeterOf(loop, 1)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cpu time.Duration
	b.ResetTimer()
	t0 := threadCPU()
	for i := 0; i < b.N; i++ {
		for jr := 0; jr < nTiles; jr++ {
			k.fn(kc, &ap[0], &bp[jr*k.nr*kc], &c[jr*k.nr], k.nc, 1, 1)
		}
		pm.maybeSample(b, &cpu, &t0)
	}
	cpu += threadCPU() - t0
	flops := 2 * float64(k.mr*k.nc*kc) * float64(b.N)
	gf := flops / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(gf, "GFLOP/s")
	pm.report(b, gf)
	if haveThreadCPU {
		reportCPU(b, loop, flops, cpu)
	}
}

// BenchmarkBlocking sweeps the K block depth and N block width of the
// default kernel on the large shapes, single-threaded (the blocking targets
// per-core caches), to back the values chosen in the kernel table.
func BenchmarkBlocking(b *testing.B) {
	k := kernels[0]
	kc0, nc0 := k.kc, k.nc
	defer func() { k.kc, k.nc = kc0, nc0 }()
	withThreads(1, func() {
		for _, kc := range []int{128, 256, 384, 512} {
			for _, nc := range []int{256, 512, 1024} {
				for _, s := range []benchShape{benchShapes[0], benchShapes[1], benchShapes[3]} {
					b.Run(fmt.Sprintf("kc=%d/nc=%d/%s", kc, nc, s.name), func(b *testing.B) {
						k.kc, k.nc = kc, nc
						benchOne(b, s)
					})
				}
			}
		}
	})
}
