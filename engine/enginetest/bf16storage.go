package enginetest

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/tinyrecursive/trm/engine"
)

// WithoutBF16Storage returns be with engine.BF16Storage hidden (a model on
// it stores every activation in float32) and its fusions still visible,
// so that a comparison isolates bf16 storage.
func WithoutBF16Storage(be engine.Backend) engine.Backend {
	if a3, ok := be.(engine.FusedAdd3); ok {
		return noBF16Add3{be, a3}
	}
	return noBF16{be}
}

// noBF16 and noBF16Add3 embed the interfaces, not the backend: their
// method sets are Backend's (plus FusedAdd3), without StoresBF16.
type noBF16 struct{ engine.Backend }

type noBF16Add3 struct {
	engine.Backend
	engine.FusedAdd3
}

// bf16Counter forwards StoresBF16 and counts the BF16 buffers a model
// allocates, so a test can tell that the storage path was taken. With
// packs it reports PacksBF16 true whatever the backend says, so that a
// model stores its workspaces in bf16 too (a statement about cost only:
// the bits must not change).
type bf16Counter struct {
	engine.Backend
	packs bool
	bf16  int
}

func (c *bf16Counter) StoresBF16() bool { return engine.StoresBF16(c.Backend) }

func (c *bf16Counter) PacksBF16() bool {
	return c.packs || c.Backend.(engine.BF16Storage).PacksBF16()
}

func (c *bf16Counter) Alloc(dt engine.DType, n int) engine.Buf {
	if dt == engine.BF16 {
		c.bf16++
	}
	return c.Backend.Alloc(dt, n)
}

// BF16BlockConfigs are step configs at the hidden width of the Sudoku
// models (H 512, S 97 with a 16-position puzzle embedding, I 1536), one
// block of each kind (attention, and the sequence MLP with It 256), with a
// small batch and one cycle so that a step takes a fraction of a second:
// the GEMM and elementwise shapes of the real runs (K blocks, vector
// tails) on top of StepConfigs' tiny ones.
func BF16BlockConfigs() map[string]engine.Config {
	base := func(mlpT bool) engine.Config {
		c := engine.DefaultConfig()
		c.BatchSize, c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers = 2, 81, 11, 3
		c.HiddenSize, c.NumHeads, c.Expansion = 512, 8, 4
		c.PuzzleEmbNdim, c.PuzzleEmbLen = 512, 16
		c.HCycles, c.LCycles, c.LLayers = 1, 1, 2
		c.HaltMaxSteps = 4
		if mlpT {
			c.MLPT, c.PosEncodings = true, engine.PosNone
		}
		if err := c.Validate(); err != nil {
			panic(err)
		}
		return c
	}
	return map[string]engine.Config{"sudoku_attention_block": base(false), "sudoku_mlp_t_block": base(true)}
}

// RunBF16Storage checks a backend that stores GEMM-only buffers in bf16
// (engine.BF16Storage) against itself with the storage hidden: the ops'
// bf16 paths give the bits of the float32 paths rounded as the contract
// says, and a training step (two steps on a persistent carry: logits,
// losses, halting, every gradient) of every StepConfig, ArchStepConfig
// and BF16BlockConfig, and of every golden case, gives the same bits
// either way, with the saved activations in bf16 and with the workspaces
// too (whatever PacksBF16 reports). A backend that reports no bf16
// storage fails it: a caller runs it on a backend that should store bf16,
// so a skip would hide that backend losing the storage.
func RunBF16Storage(t *testing.T, f Factory) {
	if !engine.StoresBF16(f()) {
		t.Fatal("the backend does not store bf16 (engine.BF16Storage)")
	}
	t.Run("Ops", func(t *testing.T) { testBF16Ops(t, newHarness(t, f)) })
	cfgs, names := stepAndArchConfigs(BF16BlockConfigs())
	for _, name := range names {
		ac := cfgs[name]
		t.Run(name, func(t *testing.T) {
			counted := &bf16Counter{Backend: f()}
			stored := deterministicStep(t, counted, ac.Config, ac.Arch)
			all := &bf16Counter{Backend: f(), packs: true}
			allStored := deterministicStep(t, all, ac.Config, ac.Arch)
			if counted.bf16 == 0 || all.bf16 <= counted.bf16 && !counted.PacksBF16() {
				t.Fatalf("the model allocated %d bf16 buffers (%d with the workspaces) on a backend that stores bf16", counted.bf16, all.bf16)
			}
			native := deterministicStep(t, f(), ac.Config, ac.Arch)
			hidden := deterministicStep(t, WithoutBF16Storage(f()), ac.Config, ac.Arch)
			sameBits(t, "bf16 storage, fusions hidden", stored, hidden)
			sameBits(t, "bf16 storage of the workspaces too, fusions hidden", allStored, hidden)
			sameBits(t, "bf16 storage", native, hidden)
		})
	}
	t.Run("Golden", func(t *testing.T) {
		for _, dir := range GoldenCases(t) {
			t.Run(filepath.Base(dir), func(t *testing.T) {
				cfg, params, in, labels, pids := loadGoldenCase(t, dir)
				want := precisionGolden(t, WithoutBF16Storage(f()), cfg, params, in, labels, pids)
				for _, be := range []engine.Backend{f(), &bf16Counter{Backend: f(), packs: true}} {
					got := precisionGolden(t, be, cfg, params, in, labels, pids)
					for i, name := range []string{"logits", "q_halt_logits", "q_continue_logits", "lm_loss", "carry", "gradients", "puzzle gradients"} {
						sameBits(t, name, got[i], want[i])
					}
				}
			})
		}
	})
}

// sameBits requires got and want (float32 or float64 values as float64)
// to be equal element for element, NaN matching NaN.
func sameBits(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d outputs, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
			t.Fatalf("%s: output %d is %v, with float32 storage %v", what, i, got[i], want[i])
		}
	}
}

// roundBF16 is the contract's rounding, written independently of any
// backend: nearest even on the float32 bits, a NaN stays a NaN.
func roundBF16(x float32) float32 {
	u := math.Float32bits(x)
	if x != x {
		return math.Float32frombits((u | 0x00400000) &^ 0xffff)
	}
	return math.Float32frombits((u + 0x7fff + (u >> 16 & 1)) &^ 0xffff)
}

// testBF16Ops checks the ops that take bf16 buffers: Upload rounds,
// Download widens exactly, Fill rounds, SwiGLU and SwiGLUBackward round
// the float32 they compute, Gemm with bf16 operands gives the bits of Gemm
// with their float32 originals (both operands, either, transposed and
// batched), and Slice views a bf16 buffer.
func testBF16Ops(t *testing.T, h *harness) {
	be := h.be
	// Lengths that are no multiple of a vector width.
	const rows, inter = 7, 45
	upBF := func(v []float32) engine.Buf {
		b := be.Alloc(engine.BF16, len(v))
		be.Upload(b, v)
		return b
	}
	rounded := func(v []float32) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = roundBF16(x)
		}
		return out
	}
	exact := func(what string, got, want []float32) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
				t.Fatalf("%s: element %d is %v (%#08x), want %v (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}

	// Upload and Download, on values around the rounding boundaries.
	var vals []float32
	for _, u := range []uint32{0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, 0x7f7fffff, 0x7f7f8000, 0x00008000, 0x00018000, 0x807fffff, 0x7fc00001, 0xff800001, 0x7f800000, 0x80000000} {
		vals = append(vals, math.Float32frombits(u))
	}
	vals = append(vals, h.randn(37)...)
	x := upBF(vals)
	if x.DType() != engine.BF16 || x.Len() != len(vals) {
		t.Fatalf("Alloc(BF16, %d): dtype %v, length %d", len(vals), x.DType(), x.Len())
	}
	exact("Upload then Download", h.down(x), rounded(vals))
	exact("Slice", h.down(be.Slice(x, 3, 20)), rounded(vals[3:23]))
	be.Fill(x, 1.00390625) // 1 + 2^-8: a tie, rounds to 1
	want := make([]float32, len(vals))
	for i := range want {
		want[i] = 1
	}
	exact("Fill", h.down(x), want)

	// SwiGLU and its backward into bf16.
	gu, dact := h.randn(rows*2*inter), h.randn(rows*inter)
	act32, act16 := be.Alloc(engine.F32, rows*inter), be.Alloc(engine.BF16, rows*inter)
	be.SwiGLU(act32, h.up(gu), rows, inter)
	be.SwiGLU(act16, h.up(gu), rows, inter)
	exact("SwiGLU into bf16", h.down(act16), rounded(h.down(act32)))
	dgu32, dgu16 := be.Alloc(engine.F32, rows*2*inter), be.Alloc(engine.BF16, rows*2*inter)
	be.SwiGLUBackward(dgu32, h.up(dact), h.up(gu), rows, inter)
	be.SwiGLUBackward(dgu16, h.up(dact), h.up(gu), rows, inter)
	exact("SwiGLUBackward into bf16", h.down(dgu16), rounded(h.down(dgu32)))

	// Gemm: bf16 operands against their float32 originals.
	const m, n, k, batch = 37, 29, 45, 2
	for _, c := range []struct {
		transA, transB bool
		batch          int
	}{{false, true, 1}, {true, false, 1}, {false, false, batch}, {true, true, 1}} {
		a, b := h.randn(batch*m*k), h.randn(batch*k*n)
		lda, ldb := k, n
		if c.transA {
			lda = m
		}
		if c.transB {
			ldb = k
		}
		c0 := h.randn(batch * m * n) // beta 0.5: C is read
		run := func(A, B engine.Buf) []float32 {
			C := h.up(c0)
			be.Gemm(engine.Gemm{TransA: c.transA, TransB: c.transB, M: m, N: n, K: k, Alpha: 0.75, Beta: 0.5,
				A: A, Lda: lda, StrideA: m * k, B: B, Ldb: ldb, StrideB: k * n, C: C, Ldc: n, StrideC: m * n, Batch: c.batch})
			return h.down(C)
		}
		ref := run(h.up(a), h.up(b))
		for _, op := range []string{"A", "B", "A and B"} {
			A, B := h.up(a), h.up(b)
			if op != "B" {
				A = upBF(a)
			}
			if op != "A" {
				B = upBF(b)
			}
			exact(fmt.Sprintf("Gemm transA %v transB %v batch %d, bf16 %s", c.transA, c.transB, c.batch, op), run(A, B), ref)
		}
	}
}
