//go:build cuda

package trm_test

import (
	"context"
	"math"
	"slices"
	"testing"

	"gorgonia.org/cu"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/cuda"
)

// needCUDA skips unless the CUDA driver is the CPU stand-in
// (cuda/standin/README.md) or a GPU is visible.
func needCUDA(t *testing.T) {
	t.Helper()
	if cuda.Emulated() {
		return
	}
	n, err := cu.NumDevices()
	if err != nil || n == 0 {
		t.Skipf("no CUDA device (%d visible, %v): run on a GPU, or on the CPU stand-in with make test-cuda-standin", n, err)
	}
}

// TestSolverCUDA solves the same puzzles with the committed fixture
// model on the CPU and on CUDA device 0 in fp32 GEMM mode, eagerly and
// with CUDA graphs, in both the reference's evaluation (every step) and
// the early-halting mode where a halted puzzle's slot takes the next one.
// The answers, the halting steps and every step's predictions must be
// equal, and the halting probabilities agree within 1e-5: the path
// trm.Load -> SolverOptions.Backend -> engine model on the device.
func TestSolverCUDA(t *testing.T) {
	needCUDA(t)
	m, err := trm.Load("testdata/sudoku4-tiny/model.safetensors", trm.LoadOptions{Config: "testdata/sudoku4-tiny/arch.json"})
	if err != nil {
		t.Fatal(err)
	}
	codec := m.Codec()
	// Six puzzles through four slots: early halting refills freed slots.
	var puzzles []trm.Puzzle
	for _, s := range []string{"..4....113...2..", ".....2.3...4..32", ".2.3..1......3..", "4..........31..2", "1..........4..2.", "....3..2.1......"} {
		tokens, err := codec.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		puzzles = append(puzzles, trm.Puzzle{Tokens: tokens})
	}
	const batch = 4
	solve := func(t *testing.T, opt trm.SolverOptions, req trm.Request) []trm.Solution {
		t.Helper()
		opt.Batch = batch
		s, err := m.NewSolver(opt)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sols, err := s.Solve(context.Background(), puzzles, req)
		if err != nil {
			t.Fatal(err)
		}
		return sols
	}
	reqs := map[string]trm.Request{
		"full":  {FullSteps: true, Trace: true, Logits: true},
		"early": {Trace: true, Logits: true},
	}
	want := map[string][]trm.Solution{}
	for name, req := range reqs {
		want[name] = solve(t, trm.SolverOptions{Threads: 1}, req)
	}
	// The fixture solves the first puzzle: parity with a CPU run that
	// answers nothing would say little.
	if v := codec.Check(puzzles[0].Tokens, want["full"][0].Answer, nil); !v.Valid {
		t.Fatalf("the CPU's answer to the first puzzle: %v", v)
	}
	for _, mode := range []struct {
		name   string
		graphs bool
	}{{"eager", false}, {"graphs", true}} {
		t.Run(mode.name, func(t *testing.T) {
			for name, req := range reqs {
				b, err := cuda.NewWithOptions(0, cuda.Options{Gemm: cuda.GemmFP32, Graphs: mode.graphs})
				if err != nil {
					t.Fatal(err)
				}
				got := solve(t, trm.SolverOptions{Backend: b}, req)
				// The Solver has stopped using the backend at Close; the
				// caller closes it.
				if err := b.Close(); err != nil {
					t.Fatalf("%s: closing the backend: %v", name, err)
				}
				t.Logf("%s: %s", name, b.Name())
				compareSolutions(t, name, got, want[name])
			}
		})
	}
}

// compareSolutions fails unless the CUDA solutions got equal the CPU's
// want: same answers, steps, halting steps and per-step predictions,
// halting probabilities within 1e-5.
func compareSolutions(t *testing.T, req string, got, want []trm.Solution) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d solutions on CUDA, %d on the CPU", req, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !slices.Equal(g.Answer, w.Answer) {
			t.Errorf("%s: puzzle %d: answer %v on CUDA, %v on the CPU", req, i, g.Answer, w.Answer)
		}
		if g.Steps != w.Steps || g.HaltStep != w.HaltStep {
			t.Errorf("%s: puzzle %d: %d steps halting at %d on CUDA, %d halting at %d on the CPU", req, i, g.Steps, g.HaltStep, w.Steps, w.HaltStep)
		}
		if len(g.Trace) != len(w.Trace) || len(w.Trace) != w.Steps {
			t.Errorf("%s: puzzle %d: %d traced steps on CUDA, %d on the CPU, %d steps run", req, i, len(g.Trace), len(w.Trace), w.Steps)
		} else {
			for k := range w.Trace {
				if !slices.Equal(g.Trace[k], w.Trace[k]) {
					t.Errorf("%s: puzzle %d step %d: predictions %v on CUDA, %v on the CPU", req, i, k+1, g.Trace[k], w.Trace[k])
				}
			}
		}
		if len(g.HaltProb) != len(w.HaltProb) || len(g.QHalt) != len(w.QHalt) || len(g.Logits) != len(w.Logits) {
			t.Errorf("%s: puzzle %d: %d halting probabilities, %d q_halt and %d logit steps on CUDA; %d, %d and %d on the CPU",
				req, i, len(g.HaltProb), len(g.QHalt), len(g.Logits), len(w.HaltProb), len(w.QHalt), len(w.Logits))
			continue
		}
		for k := range w.HaltProb {
			if d := math.Abs(g.HaltProb[k] - w.HaltProb[k]); !(d <= 1e-5) {
				t.Errorf("%s: puzzle %d step %d: halting probability %.9f on CUDA, %.9f on the CPU (|diff| %.2g > 1e-5)", req, i, k+1, g.HaltProb[k], w.HaltProb[k], d)
			}
		}
		// The fixture's halting head is confident (q_halt near 9), where
		// the sigmoid hides differences: its logit and the output logits
		// are compared too, within what fp32 with another summation order
		// gives (bf16 GEMMs miss by about 1e-2).
		for k := range w.QHalt {
			if d := math.Abs(float64(g.QHalt[k] - w.QHalt[k])); !(d <= qTol) {
				t.Errorf("%s: puzzle %d step %d: q_halt %.7g on CUDA, %.7g on the CPU (|diff| %.2g > %g)", req, i, k+1, g.QHalt[k], w.QHalt[k], d, qTol)
			}
		}
		for k := range w.Logits {
			if len(g.Logits[k]) != len(w.Logits[k]) {
				t.Errorf("%s: puzzle %d step %d: %d logits on CUDA, %d on the CPU", req, i, k+1, len(g.Logits[k]), len(w.Logits[k]))
				continue
			}
			worst, at := 0.0, 0
			for j := range w.Logits[k] {
				if d := math.Abs(float64(g.Logits[k][j] - w.Logits[k][j])); !(d <= worst) {
					worst, at = d, j
				}
			}
			if !(worst <= qTol) {
				t.Errorf("%s: puzzle %d step %d: logit %d is %.7g on CUDA, %.7g on the CPU (|diff| %.2g > %g)", req, i, k+1, at, g.Logits[k][at], w.Logits[k][at], worst, qTol)
			}
		}
	}
}

// qTol bounds the difference of a logit between the CPU and fp32 CUDA.
const qTol = 1e-4
