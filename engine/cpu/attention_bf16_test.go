package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/enginetest"
)

// TestBF16ActAttention runs the backend-generic bf16 checks of Rope,
// Attention and AttentionBackward (enginetest.RunBF16ActAttention: the
// bits of the op on widened operands) on 1 and 3 threads, with the
// production blocks and with small ones (16 query rows, 32 keys) under
// which every test sequence spans several query and key blocks, so a
// worker's units start heads mid-way and the widened keys and values are
// reused across query blocks; the small blocks under every SIMD variant.
// A backend from New takes BF16 operands whatever its storage options.
func TestBF16ActAttention(t *testing.T) {
	for _, threads := range []int{1, 3} {
		forEachAttnBlocks(t, fmt.Sprintf("threads%d", threads), func(t *testing.T) {
			enginetest.RunBF16ActAttention(t, func() engine.Backend { return New(threads) })
		})
	}
	q, k := attnQBlock, attnKBlock
	defer func() { attnQBlock, attnKBlock = q, k }()
	attnQBlock, attnKBlock = 16, 32
	forEachSIMD(t, func(t *testing.T) {
		enginetest.RunBF16ActAttention(t, func() engine.Backend { return New(2) })
	})
}

// TestBF16ActAttentionAllocs: Rope, Attention and AttentionBackward on
// BF16 operands allocate nothing once warm (their widened copies live in
// the kept scratch), for every mix of BF16 and float32 qkv and out.
func TestBF16ActAttentionAllocs(t *testing.T) {
	const batch, seq, heads, hd = 2, 37, 2, 16
	H := heads * hd
	be := New(2)
	rng := rand.New(rand.NewPCG(21, 22))
	up := func(dt engine.DType, v []float32) engine.Buf {
		b := be.Alloc(dt, len(v))
		be.Upload(b, v)
		return b
	}
	x := randVec(rng, batch*seq*3*H, 1)
	cos, sin := engine.RopeTables(seq, hd, 10000)
	cb, sb := up(engine.F32, cos), up(engine.F32, sin)
	dout, lse := up(engine.F32, randVec(rng, batch*seq*H, 1)), be.Alloc(engine.F32, batch*heads*seq)
	dqkv := be.Alloc(engine.F32, len(x))
	for _, xdt := range []engine.DType{engine.F32, engine.BF16} {
		for _, odt := range []engine.DType{engine.F32, engine.BF16} {
			qkv, out := up(xdt, x), be.Alloc(odt, batch*seq*H)
			ops := func() {
				be.Rope(qkv, cb, sb, batch, seq, heads, hd, false)
				be.Attention(out, lse, qkv, batch, seq, heads, hd)
				be.AttentionBackward(dqkv, dout, qkv, out, lse, batch, seq, heads, hd)
				be.Rope(qkv, cb, sb, batch, seq, heads, hd, true)
			}
			ops()
			if n := testing.AllocsPerRun(5, ops); n != 0 {
				t.Errorf("%v qkv, %v out: %v heap allocations per Rope, Attention and backward, want 0", xdt, odt, n)
			}
			if err := be.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BenchmarkAttentionBF16Act compares Attention and AttentionBackward on
// float32 and on BF16 qkv and out (the backward's dout and dqkv stay
// float32) at the Sudoku step shape and an ARC-like one (S 916: several
// query blocks per head, so a worker widens a head's keys and values
// once for the blocks it runs), with the GFLOP/s of the useful work as
// BenchmarkAttention counts it.
//
//	go test ./engine/cpu/ -run '^$' -bench AttentionBF16Act -benchtime 20x
func BenchmarkAttentionBF16Act(b *testing.B) {
	for _, s := range []struct{ batch, seq, heads, hd int }{{16, 97, 8, 64}, {4, 916, 8, 64}} {
		benchAttentionBF16Act(b, s.batch, s.seq, s.heads, s.hd)
	}
}

func benchAttentionBF16Act(b *testing.B, batch, seq, heads, hd int) {
	H := heads * hd
	be := New(0)
	rng := rand.New(rand.NewPCG(1, 1))
	up := func(dt engine.DType, v []float32) engine.Buf {
		x := be.Alloc(dt, len(v))
		be.Upload(x, v)
		return x
	}
	x := randVec(rng, batch*seq*3*H, 1)
	dout, lse := up(engine.F32, randVec(rng, batch*seq*H, 1)), be.Alloc(engine.F32, batch*heads*seq)
	dqkv := be.Alloc(engine.F32, len(x))
	flops := float64(batch*heads) * float64(seq*seq*hd)
	for _, dt := range []engine.DType{engine.F32, engine.BF16} {
		qkv, out := up(dt, x), be.Alloc(dt, batch*seq*H)
		name := fmt.Sprintf("B%d-S%d-h%d-hd%d-%v", batch, seq, heads, hd, dt)
		b.Run(name+"/fwd", func(b *testing.B) {
			for range b.N {
				be.Attention(out, lse, qkv, batch, seq, heads, hd)
			}
			b.ReportMetric(4*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		be.Attention(out, lse, qkv, batch, seq, heads, hd)
		b.Run(name+"/bwd", func(b *testing.B) {
			for range b.N {
				be.AttentionBackward(dqkv, dout, qkv, out, lse, batch, seq, heads, hd)
			}
			b.ReportMetric(8*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		if err := be.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}
