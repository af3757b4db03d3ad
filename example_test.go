package trm_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"gorgonia.org/tensor"

	"github.com/tinyrecursive/trm"
)

// Solve a 4x4 Sudoku given as a string with a small trained model: the
// answer, the step where the model halted and its confidence, and the
// answer judged against the rules.
func ExampleModel_Solve() {
	m, err := trm.Load("testdata/sudoku4-tiny/model.safetensors", trm.LoadOptions{Config: "testdata/sudoku4-tiny/arch.json"})
	if err != nil {
		log.Fatal(err)
	}
	codec := m.Codec()
	tokens, err := codec.Encode("..4....113...2..")
	if err != nil {
		log.Fatal(err)
	}
	sols, err := m.Solve(context.Background(), []trm.Puzzle{{Tokens: tokens}}, trm.Request{})
	if err != nil {
		log.Fatal(err)
	}
	s := sols[0]
	fmt.Println(codec.Render(s.Answer))
	fmt.Printf("halted after step %d of %d, confidence %.2f\n", s.HaltStep, m.HaltMaxSteps(), s.HaltProb[s.HaltStep-1])
	fmt.Println(codec.Check(tokens, s.Answer, nil))
	// Output:
	// 3 1 | 4 2
	// 2 4 | 3 1
	// ----+----
	// 1 3 | 2 4
	// 4 2 | 1 3
	// halted after step 1 of 4, confidence 1.00
	// valid (Sudoku rules and givens)
}

// Requests from several goroutines share one Solver's batch. The
// reference's evaluation (FullSteps) runs every supervision step; by
// default a puzzle stops when its halting head fires and its slot takes
// the next puzzle.
func ExampleSolver() {
	m, err := trm.Load("testdata/sudoku4-tiny/model.safetensors", trm.LoadOptions{Config: "testdata/sudoku4-tiny/arch.json"})
	if err != nil {
		log.Fatal(err)
	}
	s, err := m.NewSolver(trm.SolverOptions{Batch: 4})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	puzzles := []string{".....2.3...4..32", ".2.3..1......3..", "4..........31..2"}
	steps := make([][2]int, len(puzzles))
	var wg sync.WaitGroup
	for i, p := range puzzles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tokens, err := m.Codec().Encode(p)
			if err != nil {
				log.Fatal(err)
			}
			for k, full := range []bool{false, true} {
				sols, err := s.Solve(context.Background(), []trm.Puzzle{{Tokens: tokens}}, trm.Request{FullSteps: full})
				if err != nil {
					log.Fatal(err)
				}
				steps[i][k] = sols[0].Steps
			}
		}()
	}
	wg.Wait()
	for i, p := range puzzles {
		fmt.Printf("%s: %d step(s) with early halting, %d in the reference evaluation\n", p, steps[i][0], steps[i][1])
	}
	// Output:
	// .....2.3...4..32: 1 step(s) with early halting, 4 in the reference evaluation
	// .2.3..1......3..: 1 step(s) with early halting, 4 in the reference evaluation
	// 4..........31..2: 1 step(s) with early halting, 4 in the reference evaluation
}

// Feed a token batch held in a *tensor.Dense and take the answers back as
// one.
func ExamplePuzzlesFromDense() {
	m, err := trm.Load("testdata/sudoku4-tiny/model.safetensors", trm.LoadOptions{Config: "testdata/sudoku4-tiny/arch.json"})
	if err != nil {
		log.Fatal(err)
	}
	var flat []int64
	for _, p := range []string{".3......2..4..1.", "1..2........4.3."} {
		tokens, err := m.Codec().Encode(p)
		if err != nil {
			log.Fatal(err)
		}
		for _, t := range tokens {
			flat = append(flat, int64(t))
		}
	}
	batch := tensor.New(tensor.WithShape(2, m.SeqLen()), tensor.WithBacking(flat))
	puzzles, err := trm.PuzzlesFromDense(batch, nil)
	if err != nil {
		log.Fatal(err)
	}
	sols, err := m.Solve(context.Background(), puzzles, trm.Request{})
	if err != nil {
		log.Fatal(err)
	}
	answers := trm.AnswersDense(sols)
	fmt.Println(answers.Shape(), answers.Dtype())
	for i := range 2 {
		row, err := answers.Slice(tensor.S(i))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(m.Codec().Decode(row.(*tensor.Dense).Materialize().(*tensor.Dense).Data().([]int32)))
	}
	// Output:
	// (2, 16) int32
	// 4321124321343412
	// 1342241331244231
}

// Export the weights as named tensors, for another Go library to read or
// change, and build a model back from them.
func ExampleModel_Weights() {
	m, err := trm.Load("testdata/sudoku4-tiny/model.safetensors", trm.LoadOptions{Config: "testdata/sudoku4-tiny/arch.json"})
	if err != nil {
		log.Fatal(err)
	}
	w := m.Weights()
	emb := w["inner.embed_tokens.embedding_weight"]
	fmt.Println(len(w), "tensors; token embedding", emb.Shape(), emb.Dtype())
	back, err := trm.FromWeights(m.Config(), m.Arch(), w)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(back.SeqLen(), back.VocabSize(), back.HaltMaxSteps())
	// Output:
	// 15 tensors; token embedding (6, 32) float32
	// 16 6 4
}
