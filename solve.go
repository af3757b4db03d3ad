package trm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// Puzzle is one input to a model: SeqLen tokens and its puzzle
// identifier (the row of the puzzle embedding: 0, the blank identifier,
// for Sudoku and mazes; an ARC version's identifier, see
// puzzle.ARCVersion).
type Puzzle struct {
	// Tokens are the model's input tokens, len Model.SeqLen, each in
	// [0, VocabSize).
	Tokens []int32
	// ID is the puzzle identifier, in [0, NumPuzzleIdentifiers).
	ID int32
}

// Request says what to run and keep for the puzzles of one Solve call.
type Request struct {
	// FullSteps runs every puzzle for halt_max_steps supervision steps
	// and answers with the last step's predictions: the reference's
	// evaluation, the answers trm-train eval scores. Off, a puzzle stops
	// at the first step whose q_halt > 0.
	FullSteps bool
	// Trace keeps the predictions after every step (Solution.Trace).
	Trace bool
	// Logits keeps the output logits of every step (Solution.Logits):
	// SeqLen*VocabSize floats per step and puzzle.
	Logits bool
	// States keeps the carried latent states after every step
	// (Solution.States): per state (z_H, z_L, ...) its [S, H] floats,
	// where S counts the puzzle-embedding positions before the tokens.
	States bool
}

// Solution is what a model made of one puzzle.
type Solution struct {
	// Answer is the predictions of the puzzle's last step.
	Answer []int32
	// Steps is the number of supervision steps run.
	Steps int
	// HaltStep is the first step whose q_halt > 0, from 1; 0 when the
	// halting head never fired.
	HaltStep int
	// HaltProb is sigmoid(q_halt) after each step: the model's confidence
	// that its answer is right.
	HaltProb []float64
	// QHalt is the halting head's logit q_halt after each step (HaltProb
	// is its sigmoid): what an ARC vote weighs each version by.
	QHalt []float32
	// Trace holds the predictions after each step (Request.Trace).
	Trace [][]int32
	// Logits holds each step's logits, [SeqLen*VocabSize] in
	// position-major order (Request.Logits).
	Logits [][]float32
	// States holds each step's carried states, [state][S*H] in the order
	// of StateNames (Request.States).
	States [][][]float32
	// StateNames names the carried states (z_H, z_L, ...) when States is
	// set.
	StateNames []string
}

// SolverOptions configure a Solver.
type SolverOptions struct {
	// Batch is the number of slots of the engine model, fixed for the
	// Solver's life (0: 16). Puzzles beyond it wait for a free slot; free
	// slots are padded and cost as much as busy ones.
	Batch int
	// MaxWait is how long an idle Solver waits, once a request arrives,
	// for more puzzles to fill its slots before it starts stepping (0:
	// it starts at once). Requests arriving while it steps always join
	// at the next step.
	MaxWait time.Duration
	// Threads is the CPU backend's worker count (0: GOMAXPROCS).
	Threads int
	// Backend, when set, runs the model on it instead of a new CPU
	// backend. To solve on a GPU, build with the cuda tag (make kernels
	// first: package cuda embeds kernels/trm.fatbin) and pass package
	// cuda's backend:
	//
	//	b, err := cuda.New(0) // device 0; TRM_CUDA_GEMM=fp32 for fp32 GEMMs
	//	...
	//	s, err := m.NewSolver(trm.SolverOptions{Backend: b})
	//	...
	//	s.Close()
	//	b.Close()
	//
	// cuda.New defaults to bf16 GEMMs, whose answers may differ from the
	// CPU's; cuda.NewWithOptions(0, cuda.Options{Gemm: cuda.GemmFP32,
	// Graphs: true}) matches them (cuda_test.go checks it). Package trm
	// itself never imports cuda, so programs without the tag need no CUDA
	// libraries. The Solver uses the backend until its Close and does not
	// close it: the caller closes it afterwards.
	Backend engine.Backend
	// OnStep, when set, is called after every engine step with the
	// number of busy slots (from the Solver's own goroutine: it must not
	// block), e.g. to record a histogram of batch sizes.
	OnStep func(busy int)
}

// ErrClosed is returned by Solve on a Solver that was closed.
var ErrClosed = errors.New("trm: solver closed")

// Solver solves puzzles with one engine model of fixed batch. All its
// methods are safe for concurrent use: one goroutine owns the model and
// batches the puzzles of all pending requests together.
type Solver struct {
	m      *Model
	em     *engine.Model
	batch  int
	wait   time.Duration
	onStep func(busy int)

	reqs chan *job
	quit chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	stats Stats
}

// Stats count a Solver's work since it was built.
type Stats struct {
	// Steps is the number of engine steps run (each over the whole batch).
	Steps int64
	// BusySlotSteps sums the busy slots over those steps: Steps*Batch
	// minus the padding.
	BusySlotSteps int64
	// Puzzles is the number of puzzles answered.
	Puzzles int64
}

// job is one Solve call.
type job struct {
	ctx     context.Context
	puzzles []Puzzle
	req     Request
	sols    []Solution
	left    int
	err     error
	done    chan struct{}
}

// task is one puzzle of a job.
type task struct {
	j *job
	i int
}

// NewSolver builds an engine model of opt.Batch slots holding m's weights
// and starts its batching loop. Close stops it.
func (m *Model) NewSolver(opt SolverOptions) (*Solver, error) {
	if opt.Batch < 0 || opt.MaxWait < 0 {
		return nil, fmt.Errorf("trm: SolverOptions: Batch %d and MaxWait %v must not be negative", opt.Batch, opt.MaxWait)
	}
	if opt.Batch == 0 {
		opt.Batch = 16
	}
	be := opt.Backend
	if be == nil {
		be = cpu.New(opt.Threads)
	}
	cfg := m.cfg
	cfg.BatchSize = opt.Batch
	em, err := engine.NewModel(cfg, be, engine.Options{Arch: m.arch})
	if err != nil {
		return nil, fmt.Errorf("trm: %w", err)
	}
	if err := em.SetParams(m.params); err != nil {
		return nil, fmt.Errorf("trm: %w", err)
	}
	s := &Solver{m: m, em: em, batch: opt.Batch, wait: opt.MaxWait, onStep: opt.OnStep,
		reqs: make(chan *job), quit: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s, nil
}

// Solve runs puzzles to their answers, one Solution per puzzle in order,
// sharing the engine's batch with every other pending request. It
// returns ctx's error as soon as ctx ends; the puzzles still queued or
// running are then dropped at the next step.
func (s *Solver) Solve(ctx context.Context, puzzles []Puzzle, req Request) ([]Solution, error) {
	if err := s.m.check(puzzles); err != nil {
		return nil, err
	}
	if len(puzzles) == 0 {
		return nil, nil
	}
	j := &job{ctx: ctx, puzzles: puzzles, req: req, sols: make([]Solution, len(puzzles)), left: len(puzzles), done: make(chan struct{})}
	select {
	case s.reqs <- j:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.quit:
		return nil, ErrClosed
	}
	select {
	case <-j.done:
		if j.err != nil {
			return nil, j.err
		}
		return j.sols, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Batch is the Solver's number of slots.
func (s *Solver) Batch() int { return s.batch }

// Stats returns the Solver's counters.
func (s *Solver) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close stops the batching loop: pending requests fail with ErrClosed.
// It waits for the step in progress to end.
func (s *Solver) Close() error {
	s.once.Do(func() { close(s.quit) })
	<-s.done
	return nil
}

// Solve is a one-off solve: a Solver of batch min(len(puzzles), 64),
// closed when done. Programs that solve repeatedly keep a Solver.
func (m *Model) Solve(ctx context.Context, puzzles []Puzzle, req Request) ([]Solution, error) {
	if err := m.check(puzzles); err != nil {
		return nil, err
	}
	s, err := m.NewSolver(SolverOptions{Batch: max(1, min(len(puzzles), 64))})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Solve(ctx, puzzles, req)
}

// check validates puzzles against the model's shape.
func (m *Model) check(puzzles []Puzzle) error {
	for i, p := range puzzles {
		if len(p.Tokens) != m.cfg.SeqLen {
			return fmt.Errorf("trm: puzzle %d has %d tokens; the model reads %d", i, len(p.Tokens), m.cfg.SeqLen)
		}
		for k, t := range p.Tokens {
			if t < 0 || int(t) >= m.cfg.VocabSize {
				return fmt.Errorf("trm: puzzle %d position %d: token %d outside the vocabulary [0, %d)", i, k, t, m.cfg.VocabSize)
			}
		}
		if p.ID < 0 || (p.ID > 0 && int(p.ID) >= m.cfg.NumPuzzleIdentifiers) {
			return fmt.Errorf("trm: puzzle %d: puzzle identifier %d outside [0, %d)", i, p.ID, max(m.cfg.NumPuzzleIdentifiers, 1))
		}
	}
	return nil
}

// slot is the puzzle a batch slot is working on.
type slot struct {
	t    *task
	busy bool
}

// loop owns the engine model: it takes requests, fills free slots and
// steps until every puzzle is answered.
func (s *Solver) loop() {
	defer close(s.done)
	B, L := s.batch, s.m.cfg.SeqLen
	maxSteps := s.m.cfg.HaltMaxSteps
	c := s.em.NewCarry()
	inputs := make([]int32, B*L)
	labels := make([]int32, B*L)
	for i := range labels {
		labels[i] = engine.IgnoreLabel
	}
	pids := make([]int32, B)
	halted := make([]int32, B)
	slots := make([]slot, B)
	var queue []task
	busy := 0
	fail := func(j *job, err error) {
		if j.err == nil && j.left > 0 {
			j.err, j.left = err, 0
			close(j.done)
		}
	}
	accept := func(j *job) {
		for i := range j.puzzles {
			queue = append(queue, task{j: j, i: i})
		}
	}
	for {
		if busy == 0 && len(queue) == 0 {
			select {
			case j := <-s.reqs:
				accept(j)
			case <-s.quit:
				return
			}
			if s.wait > 0 {
				t := time.NewTimer(s.wait)
			fill:
				for len(queue) < B {
					select {
					case j := <-s.reqs:
						accept(j)
					case <-t.C:
						break fill
					case <-s.quit:
						t.Stop()
						for _, q := range queue {
							fail(q.j, ErrClosed)
						}
						return
					}
				}
				t.Stop()
			}
		}
	drain:
		for {
			select {
			case j := <-s.reqs:
				accept(j)
			case <-s.quit:
				for _, q := range queue {
					fail(q.j, ErrClosed)
				}
				for _, sl := range slots {
					if sl.busy {
						fail(sl.t.j, ErrClosed)
					}
				}
				return
			default:
				break drain
			}
		}
		// Drop the puzzles of requests that were cancelled or failed.
		kept := queue[:0]
		for _, q := range queue {
			if q.j.ctx.Err() == nil && q.j.err == nil {
				kept = append(kept, q)
			}
		}
		clear(queue[len(kept):])
		queue = kept
		for b := range slots {
			if sl := &slots[b]; sl.busy && (sl.t.j.ctx.Err() != nil || sl.t.j.err != nil) {
				*sl = slot{}
				busy--
			}
		}
		// Fill the free slots: each starts from the init state (halted).
		for b := range slots {
			sl := &slots[b]
			if sl.busy {
				halted[b] = 0
				continue
			}
			halted[b] = 1
			row := inputs[b*L : (b+1)*L]
			if len(queue) == 0 {
				clear(row)
				pids[b] = 0
				continue
			}
			t := queue[0]
			queue = queue[1:]
			p := t.j.puzzles[t.i]
			copy(row, p.Tokens)
			pids[b] = p.ID
			*sl = slot{t: &t, busy: true}
			busy++
		}
		if busy == 0 {
			continue
		}
		s.em.Backend().Upload(c.St.Halted, halted)
		var res *engine.StepResult
		var states [][]float32
		err := s.em.SetBatch(inputs, labels, pids)
		if err == nil {
			err = s.em.Step(c, engine.StepOptions{})
		}
		wantLogits, wantStates := false, false
		for _, sl := range slots {
			if sl.busy {
				wantLogits = wantLogits || sl.t.j.req.Logits
				wantStates = wantStates || sl.t.j.req.States
			}
		}
		if err == nil {
			res, err = s.em.Result(c, wantLogits)
		}
		if err == nil && wantStates {
			states, err = s.em.CarryStates(c)
		}
		if err != nil {
			for b := range slots {
				if slots[b].busy {
					fail(slots[b].t.j, fmt.Errorf("trm: solving: %w", err))
					slots[b] = slot{}
				}
			}
			busy = 0
			c = s.em.NewCarry()
			continue
		}
		s.mu.Lock()
		s.stats.Steps++
		s.stats.BusySlotSteps += int64(busy)
		s.mu.Unlock()
		if s.onStep != nil {
			s.onStep(busy)
		}
		V, S, H := s.m.cfg.VocabSize, s.em.S, s.em.H
		for b := range slots {
			sl := &slots[b]
			if !sl.busy {
				continue
			}
			j, i := sl.t.j, sl.t.i
			sol := &j.sols[i]
			sol.Steps++
			q := float64(res.QHalt[b])
			sol.HaltProb = append(sol.HaltProb, 1/(1+math.Exp(-q)))
			sol.QHalt = append(sol.QHalt, res.QHalt[b])
			if sol.HaltStep == 0 && q > 0 {
				sol.HaltStep = sol.Steps
			}
			preds := res.Preds[b*L : (b+1)*L]
			if j.req.Trace {
				sol.Trace = append(sol.Trace, append([]int32(nil), preds...))
			}
			if j.req.Logits {
				sol.Logits = append(sol.Logits, append([]float32(nil), res.Logits[b*L*V:(b+1)*L*V]...))
			}
			if j.req.States {
				if sol.StateNames == nil {
					sol.StateNames = s.em.CarryFields()
				}
				st := make([][]float32, len(states))
				for k, z := range states {
					st[k] = append([]float32(nil), z[b*S*H:(b+1)*S*H]...)
				}
				sol.States = append(sol.States, st)
			}
			if sol.Steps >= maxSteps || (!j.req.FullSteps && sol.HaltStep > 0) {
				sol.Answer = append([]int32(nil), preds...)
				*sl = slot{}
				busy--
				s.mu.Lock()
				s.stats.Puzzles++
				s.mu.Unlock()
				if j.left--; j.left == 0 && j.err == nil {
					close(j.done)
				}
			}
		}
	}
}
