//go:build unix

package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// BenchmarkAttention times the attention op alone, forward and backward,
// on the Sudoku step shape and an ARC-like one (S 916), with the GFLOP/s
// of the useful work (4 S^2 hd per head forward, 8 backward: the
// recomputed scores are not counted) and the CPU time per call of all
// threads, which a shared machine inflates less than the wall time.
//
//	go test ./engine/cpu/ -run '^$' -bench Attention -benchtime 5x
func BenchmarkAttention(b *testing.B) {
	for _, s := range []struct{ batch, seq, heads, hd int }{{16, 97, 8, 64}, {4, 916, 8, 64}} {
		be := cpu.New(0)
		H := s.heads * s.hd
		rng := rand.New(rand.NewPCG(1, 1))
		up := func(n int) engine.Buf {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			x := be.Alloc(engine.F32, n)
			be.Upload(x, v)
			return x
		}
		qkv, dout := up(s.batch*s.seq*3*H), up(s.batch*s.seq*H)
		out, lse := be.Alloc(engine.F32, s.batch*s.seq*H), be.Alloc(engine.F32, s.batch*s.heads*s.seq)
		dqkv := be.Alloc(engine.F32, s.batch*s.seq*3*H)
		flops := float64(s.batch*s.heads) * float64(s.seq*s.seq*s.hd)
		name := fmt.Sprintf("B%d-S%d-h%d-hd%d", s.batch, s.seq, s.heads, s.hd)
		b.Run(name+"/fwd", func(b *testing.B) {
			cpu0 := cpuSeconds()
			for range b.N {
				be.Attention(out, lse, qkv, s.batch, s.seq, s.heads, s.hd)
			}
			b.ReportMetric(4*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N)*1e3, "cpu-ms/op")
		})
		be.Attention(out, lse, qkv, s.batch, s.seq, s.heads, s.hd)
		b.Run(name+"/bwd", func(b *testing.B) {
			cpu0 := cpuSeconds()
			for range b.N {
				be.AttentionBackward(dqkv, dout, qkv, out, lse, s.batch, s.seq, s.heads, s.hd)
			}
			b.ReportMetric(8*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N)*1e3, "cpu-ms/op")
		})
		if err := be.Sync(); err != nil {
			b.Fatal(err)
		}
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
