package trm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/puzzle"
)

// Score an ARC task: its test input is put to the model in augmented
// versions, each answer mapped back and voted on, and the two most voted
// grids are the attempts (the Kaggle submission's form). The model here
// is an untrained one of ARC's shape, built for the example; a trained
// ARC model is loaded with trm.Load the same way as any other.
func Example_arcTask() {
	m := arcShapedModel()
	task, err := puzzle.ParseARCTasks([]byte(`{"train": [{"input": [[1,0],[0,1]], "output": [[0,1],[1,0]]}],
		"test": [{"input": [[1,1],[0,0]], "output": [[0,0],[1,1]]}]}`), "flip")
	if err != nil {
		log.Fatal(err)
	}
	versions := puzzle.DrawARCVersions(0, 3) // the identity and 3 augmentations
	queries := puzzle.ARCQueries(task[0], versions)
	ps := make([]trm.Puzzle, len(queries))
	for i, q := range queries {
		ps[i] = trm.Puzzle{Tokens: q.Input, ID: q.Version.Identifier}
	}
	sols, err := m.Solve(context.Background(), ps, trm.Request{FullSteps: true})
	if err != nil {
		log.Fatal(err)
	}
	vote := puzzle.NewARCVote(task[0], versions)
	for i, q := range queries {
		if err := vote.Add(q, sols[i].Answer, float64(sols[i].QHalt[len(sols[i].QHalt)-1])); err != nil {
			log.Fatal(err)
		}
	}
	res := vote.Result()
	fmt.Printf("%d queries; test input 0 answered: %v, with an expected output to score against: %v\n",
		len(queries), res.Tests[0].Answered, res.Tests[0].HasOutput)
	// Output:
	// 4 queries; test input 0 answered: true, with an expected output to score against: true
}

// arcShapedModel writes and loads a small untrained model reading ARC's
// 30x30 canvas (vocabulary 12).
func arcShapedModel() *trm.Model {
	c := engine.Config{SeqLen: puzzle.ARCSeqLen, VocabSize: 12, NumPuzzleIdentifiers: 1, BatchSize: 1, PuzzleEmbNdim: 16,
		HCycles: 1, LCycles: 1, LLayers: 1, HiddenSize: 16, Expansion: 2, NumHeads: 2, PosEncodings: "rope",
		RMSNormEps: 1e-5, RopeTheta: 10000, HaltMaxSteps: 2, ForwardDtype: "float32", NoACTContinue: true, LossType: "stablemax_cross_entropy"}
	dir, err := os.MkdirTemp("", "arc-model")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, _ := json.Marshal(c)
	cfg, weights := filepath.Join(dir, "arch.json"), filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		log.Fatal(err)
	}
	if err := engine.SaveState(weights, engine.InitParams(engine.NewLayout(c), 1), nil); err != nil {
		log.Fatal(err)
	}
	m, err := trm.Load(weights, trm.LoadOptions{Config: cfg})
	if err != nil {
		log.Fatal(err)
	}
	return m
}
