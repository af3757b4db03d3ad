package trm_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer"
	"github.com/tinyrecursive/trm/trainer/data"
)

// testPuzzles reads the n first test examples of a dataset as puzzles and
// their labels.
func testPuzzles(t testing.TB, dataDir string, n int) ([]trm.Puzzle, [][]int32) {
	t.Helper()
	var ps []trm.Puzzle
	var labels [][]int32
	for i := range n {
		ex, err := puzzle.ReadExample(dataDir, "test", i)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, trm.Puzzle{Tokens: ex.Input, ID: ex.Identifier})
		labels = append(labels, ex.Label)
	}
	return ps, labels
}

// engineSteps runs every supervision step on all puzzles in one engine
// batch, as trm-train solve does (cmd/trm-train/solve.go, runSteps), and
// returns the predictions and q_halt of every step: [step][puzzle].
func engineSteps(t testing.TB, a engine.Config, weights string, ps []trm.Puzzle) ([][][]int32, [][]float32) {
	t.Helper()
	a.BatchSize = len(ps)
	p, err := engine.LoadState(weights, engine.NewLayout(a))
	if err != nil {
		t.Fatal(err)
	}
	m, err := engine.NewModel(a, cpu.New(0), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetParams(p); err != nil {
		t.Fatal(err)
	}
	var inputs, labels, pids []int32
	for _, q := range ps {
		inputs = append(inputs, q.Tokens...)
		pids = append(pids, q.ID)
		for range q.Tokens {
			labels = append(labels, engine.IgnoreLabel)
		}
	}
	if err := m.SetBatch(inputs, labels, pids); err != nil {
		t.Fatal(err)
	}
	c := m.NewCarry()
	var preds [][][]int32
	var qs [][]float32
	for range a.HaltMaxSteps {
		if err := m.Step(c, engine.StepOptions{}); err != nil {
			t.Fatal(err)
		}
		r, err := m.Result(c, false)
		if err != nil {
			t.Fatal(err)
		}
		var step [][]int32
		for i := range ps {
			step = append(step, r.Preds[i*a.SeqLen:(i+1)*a.SeqLen])
		}
		preds = append(preds, step)
		qs = append(qs, r.QHalt)
	}
	return preds, qs
}

func sigmoid(q float32) float64 { return 1 / (1 + math.Exp(-float64(q))) }

// TestSolveMatchesEngineAndEvaluator: the library's answers, per-step
// predictions and halting confidences equal a direct engine run of all
// puzzles in one batch (what trm-train solve runs), whatever the Solver's
// batch (slots refilled as puzzles finish); the reference mode's answers
// score exactly what the trainer's evaluator reports; early halting stops
// each puzzle at its first q_halt > 0 with that step's answer.
func TestSolveMatchesEngineAndEvaluator(t *testing.T) {
	dir := t.TempDir()
	run, dataDir := trainTiny(t, dir, 150)
	m, err := trm.Load(run, trm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := testPuzzles(t, dataDir, 16)
	checkAgainstEngine(t, m, mustLatest(t, run)+"/"+trainer.ModelFile, ps)

	// The same model with its halting head's bias raised to the median
	// q_halt of step 2: about half the puzzles halt early.
	w := m.Weights()
	_, q := engineSteps(t, m.Config(), mustLatest(t, run)+"/"+trainer.ModelFile, ps)
	qs := slices.Clone(q[1])
	slices.Sort(qs)
	bias := w[engine.KeyQHeadB].Data().([]float32)
	bias[0] -= qs[len(qs)/2]
	m2, err := trm.FromWeights(m.Config(), m.Arch(), w)
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(dir, "shifted.safetensors")
	if err := m2.Save(saved); err != nil {
		t.Fatal(err)
	}
	if halting := checkAgainstEngine(t, m2, saved, ps); halting == 0 {
		t.Errorf("no puzzle halted early with the halting bias raised")
	}
	evaluatorAgrees(t, m, run, dataDir)
}

// checkAgainstEngine compares Solvers of several batches with a direct
// engine run of the weights file and returns how many solves halted
// early.
func checkAgainstEngine(t *testing.T, m *trm.Model, weights string, ps []trm.Puzzle) int {
	t.Helper()
	want, wantQ := engineSteps(t, m.Config(), weights, ps)
	maxSteps := m.HaltMaxSteps()
	halting := 0
	for _, batch := range []int{1, 5, 16} {
		s, err := m.NewSolver(trm.SolverOptions{Batch: batch})
		if err != nil {
			t.Fatal(err)
		}
		full, err := s.Solve(context.Background(), ps, trm.Request{FullSteps: true, Trace: true})
		if err != nil {
			t.Fatal(err)
		}
		early, err := s.Solve(context.Background(), ps, trm.Request{Trace: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		for i, sol := range full {
			if sol.Steps != maxSteps || len(sol.Trace) != maxSteps || len(sol.HaltProb) != maxSteps {
				t.Fatalf("batch %d puzzle %d: %d steps, %d traced, want %d", batch, i, sol.Steps, len(sol.Trace), maxSteps)
			}
			firstHalt := 0
			for k := range maxSteps {
				if !slices.Equal(sol.Trace[k], want[k][i]) {
					t.Errorf("batch %d puzzle %d step %d: predictions %v, engine %v", batch, i, k+1, sol.Trace[k], want[k][i])
				}
				if math.Abs(sol.HaltProb[k]-sigmoid(wantQ[k][i])) > 1e-6 || math.Abs(float64(sol.QHalt[k]-wantQ[k][i])) > 1e-4 {
					t.Errorf("batch %d puzzle %d step %d: halting confidence %v, engine %v", batch, i, k+1, sol.HaltProb[k], sigmoid(wantQ[k][i]))
				}
				if firstHalt == 0 && wantQ[k][i] > 0 {
					firstHalt = k + 1
				}
			}
			if !slices.Equal(sol.Answer, want[maxSteps-1][i]) || sol.HaltStep != firstHalt {
				t.Errorf("batch %d puzzle %d: answer %v halt step %d, want the last step's %v and %d", batch, i, sol.Answer, sol.HaltStep, want[maxSteps-1][i], firstHalt)
			}
			e := early[i]
			wantSteps := maxSteps
			if firstHalt > 0 {
				wantSteps = firstHalt
				halting++
			}
			if e.Steps != wantSteps || e.HaltStep != firstHalt || !slices.Equal(e.Answer, want[wantSteps-1][i]) || len(e.Trace) != wantSteps {
				t.Errorf("batch %d puzzle %d early: %d steps, halt %d, answer %v; want %d steps, halt %d, answer %v",
					batch, i, e.Steps, e.HaltStep, e.Answer, wantSteps, firstHalt, want[wantSteps-1][i])
			}
		}
	}
	t.Logf("%d of %d puzzle solves halted early", halting, 3*len(ps))
	return halting
}

// evaluatorAgrees checks that the reference mode's answers on the whole
// test set score what the trainer's evaluator reports.
func evaluatorAgrees(t *testing.T, m *trm.Model, run, dataDir string) {
	t.Helper()
	meta, err := trainer.LoadMeta(mustLatest(t, run))
	if err != nil {
		t.Fatal(err)
	}
	cfg := meta.Config
	ds, err := data.Open("test", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	n := 0
	for _, st := range ds.Sets {
		n += st.NumExamples()
	}
	all, allLabels := testPuzzles(t, dataDir, n)
	ev, err := trainer.NewEvaluator(cfg, cpu.New(0), ds, n, "")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ev.Evaluate(mustParams(t, run, cfg), data.Sharding{GlobalBatchSize: n, WorldSize: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	sols, err := m.Solve(context.Background(), all, trm.Request{FullSteps: true})
	if err != nil {
		t.Fatal(err)
	}
	exact, tokens := 0.0, 0.0
	for i, s := range sols {
		right := 0
		for k, v := range s.Answer {
			if v == allLabels[i][k] {
				right++
			}
		}
		tokens += float64(right) / float64(len(s.Answer))
		if right == len(s.Answer) {
			exact++
		}
	}
	var gotExact, gotAcc float64
	for k, v := range rep.Flat {
		switch {
		case len(k) > 15 && k[len(k)-15:] == "/exact_accuracy":
			gotExact = v
		case len(k) > 9 && k[len(k)-9:] == "/accuracy":
			gotAcc = v
		}
	}
	if math.Abs(exact/float64(n)-gotExact) > 1e-9 || math.Abs(tokens/float64(n)-gotAcc) > 1e-6 {
		t.Errorf("library answers score exact %v token %v; evaluator %v %v (%v)", exact/float64(n), tokens/float64(n), gotExact, gotAcc, rep.Flat)
	}
}

func mustLatest(t testing.TB, run string) string {
	t.Helper()
	d, err := trainer.LatestCheckpoint(run)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustParams(t testing.TB, run string, cfg trainer.Config) *engine.Params {
	t.Helper()
	p, err := engine.LoadState(mustLatest(t, run)+"/"+trainer.ModelFile, engine.NewLayout(cfg.Arch))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConcurrentSolve: requests from many goroutines, with different
// options, share one Solver's batch and each gets the answers it would
// get alone. Run with -race.
func TestConcurrentSolve(t *testing.T) {
	run, dataDir := trainTiny(t, t.TempDir(), 60)
	m, err := trm.Load(run, trm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := testPuzzles(t, dataDir, 16)
	alone, err := m.Solve(context.Background(), ps, trm.Request{FullSteps: true})
	if err != nil {
		t.Fatal(err)
	}
	aloneEarly, err := m.Solve(context.Background(), ps, trm.Request{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSolver(trm.SolverOptions{Batch: 4, MaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 4 {
				lo := (g + r) % len(ps)
				hi := min(len(ps), lo+1+g%3)
				full := (g+r)%2 == 0
				sols, err := s.Solve(context.Background(), ps[lo:hi], trm.Request{FullSteps: full, States: g == 0})
				if err != nil {
					errs <- err
					return
				}
				for i, sol := range sols {
					ref := aloneEarly[lo+i]
					if full {
						ref = alone[lo+i]
					}
					if !slices.Equal(sol.Answer, ref.Answer) || sol.Steps != ref.Steps || sol.HaltStep != ref.HaltStep {
						errs <- errors.New("a concurrent request's answer differs from the same puzzle solved alone")
						return
					}
					if g == 0 && (len(sol.States) != sol.Steps || len(sol.StateNames) != len(sol.States[0])) {
						errs <- errors.New("states not kept for every step")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.Stats()
	if st.Puzzles == 0 || st.BusySlotSteps <= st.Steps {
		t.Errorf("stats %+v: concurrent requests never shared a step", st)
	}
}

// TestSolveCancel: a cancelled request returns its context's error
// promptly, its puzzles are dropped, and the Solver goes on answering
// others; a closed Solver refuses requests.
func TestSolveCancel(t *testing.T) {
	run, dataDir := trainTiny(t, t.TempDir(), 20)
	m, err := trm.Load(run, trm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := testPuzzles(t, dataDir, 4)
	var many []trm.Puzzle
	for range 500 {
		many = append(many, ps...)
	}
	s, err := m.NewSolver(trm.SolverOptions{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.Solve(ctx, many, trm.Request{FullSteps: true}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled solve: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled solve returned after %v", d)
	}
	done, err := s.Solve(context.Background(), ps[:1], trm.Request{FullSteps: true})
	if err != nil || len(done) != 1 || done[0].Steps != m.HaltMaxSteps() {
		t.Fatalf("solve after a cancelled one: %v %v", done, err)
	}
	if st := s.Stats(); st.Puzzles >= int64(len(many)) {
		t.Errorf("the cancelled request's %d puzzles were all solved (%+v)", len(many), st)
	}
	dead, stop := context.WithCancel(context.Background())
	stop()
	if _, err := s.Solve(dead, ps, trm.Request{}); !errors.Is(err, context.Canceled) {
		t.Errorf("solve with a cancelled context: %v", err)
	}
	s.Close()
	if _, err := s.Solve(context.Background(), ps, trm.Request{}); !errors.Is(err, trm.ErrClosed) {
		t.Errorf("solve on a closed solver: %v", err)
	}
	for _, bad := range [][]trm.Puzzle{
		{{Tokens: ps[0].Tokens[:3]}},
		{{Tokens: append(slices.Clone(ps[0].Tokens[1:]), 99)}},
		{{Tokens: ps[0].Tokens, ID: 7}},
	} {
		if _, err := m.Solve(context.Background(), bad, trm.Request{}); err == nil {
			t.Errorf("puzzle %v accepted", bad)
		}
	}
}
