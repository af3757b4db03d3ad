package gemm

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// measurePeak returns the zmm FMA throughput in GFLOP/s with g goroutines,
// each running the fmaPeakZMM loop for about d.
func measurePeak(g int, d time.Duration) float64 {
	const iters = 1 << 20
	var total float64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for time.Since(start) < d {
				fmaPeakZMM(iters)
				n++
			}
			mu.Lock()
			total += float64(n) * iters * fmaPeakFlopsPerIter
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total / time.Since(start).Seconds() / 1e9
}

// peakMeter measures the FMA peak in short windows interleaved with a GEMM
// benchmark loop (timer stopped). The cores are shared with other work and
// the available throughput moves from second to second; sampling both in
// alternation makes the reported percentage compare like with like.
type peakMeter struct {
	g           int
	flops, secs float64
	last        time.Time
}

func newPeakMeter(g int) *peakMeter { return &peakMeter{g: g, last: time.Now()} }

// maybeSample takes a 10 ms peak sample after every 20 ms of benchmark time.
func (pm *peakMeter) maybeSample(b *testing.B) {
	if !haveFMAPeak() || time.Since(pm.last) < 20*time.Millisecond {
		return
	}
	b.StopTimer()
	pm.sample(10 * time.Millisecond)
	b.StartTimer()
	pm.last = time.Now()
}

func (pm *peakMeter) sample(d time.Duration) {
	gf := measurePeak(pm.g, d)
	pm.flops += gf * d.Seconds()
	pm.secs += d.Seconds()
}

// report adds %peak and the peak itself to b's metrics.
func (pm *peakMeter) report(b *testing.B, gflops float64) {
	if !haveFMAPeak() {
		return
	}
	if pm.secs == 0 {
		pm.sample(20 * time.Millisecond)
	}
	peak := pm.flops / pm.secs
	b.ReportMetric(peak, "peakGFLOP/s")
	b.ReportMetric(100*gflops/peak, "%peak")
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
	pm := newPeakMeter(min(int(threads.Load()), runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		call()
		pm.maybeSample(b)
	}
	gf := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(s.batch) * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(gf, "GFLOP/s")
	pm.report(b, gf)
}

// BenchmarkMicroKernel runs each micro-kernel alone on one core over a
// packed B block of nc columns (kc = the kernel's kc), i.e. one A sweep of
// the real loop, with the C tiles resident. It shows how close the inner
// loop gets to the single-core FMA peak measured right after it.
func BenchmarkMicroKernel(b *testing.B) {
	for _, k := range kernels {
		b.Run(k.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(2, 2))
			nTiles := k.nc / k.nr
			ap := randSlice(rng, k.mr*k.kc)
			bp := randSlice(rng, k.nc*k.kc)
			c := make([]float32, k.mr*k.nc)
			pm := newPeakMeter(1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for jr := 0; jr < nTiles; jr++ {
					k.fn(k.kc, &ap[0], &bp[jr*k.nr*k.kc], &c[jr*k.nr], k.nc, 1, 1)
				}
				pm.maybeSample(b)
			}
			gf := 2 * float64(k.mr*k.nc*k.kc) * float64(b.N) / b.Elapsed().Seconds() / 1e9
			b.ReportMetric(gf, "GFLOP/s")
			pm.report(b, gf)
		})
	}
}
