package arc

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/tinyrecursive/trm/trainer/data"
)

// PassKs are the K of the reported ARC/pass@K metrics.
var PassKs = []int{1, 2, 5, 10, 100, 1000}

// Crop cuts a predicted 30x30 token canvas to the grid it encodes
// (docs/arc-scoring.md#cropping-a-prediction): for each row count
// nr = 1..30, the width shrinks to the first column of row nr-1 whose
// token is not a colour (2..11); the (nr, width) of largest area wins,
// the first on ties; colours become 0..9. A 0x0 grid is possible.
func Crop(tokens []int32) Grid {
	const n = MaxSize
	bestArea, bestR, bestC := 0, 0, 0
	width := n
	for nr := 1; nr <= n; nr++ {
		for c := 0; c < width; c++ {
			if x := tokens[(nr-1)*n+c]; x < 2 || x > 11 {
				width = c
				break
			}
		}
		if a := nr * width; a > bestArea {
			bestArea, bestR, bestC = a, nr, width
		}
	}
	g := Grid{H: bestR, W: bestC, Cells: make([]byte, bestR*bestC)}
	for i := 0; i < bestR; i++ {
		for j := 0; j < bestC; j++ {
			g.Cells[i*bestC+j] = byte(tokens[i*n+j] - 2)
		}
	}
	return g
}

// vote is one prediction for a (puzzle, input): the predicted grid's key
// and sigmoid(q_halt).
type vote struct {
	grid string
	q    float64
}

// Evaluator collects test-split predictions and scores them with voting.
// With Aggregated set (the reference's default, aggregated_voting), votes
// are kept across evaluations, so the score at evaluation n pools the
// predictions of evaluations 1..n (an ensemble over checkpoints); without
// it, BeginEval clears them and each evaluation is scored on its own.
type Evaluator struct {
	// Aggregated keeps votes across evaluations (see the type comment).
	Aggregated bool
	names      []string    // identifier -> augmented puzzle name
	tests      []NamedTask // test_puzzles.json in file order
	blank      int32
	votes      map[string]map[string][]vote // original name -> input key -> votes
	grids      map[string]Grid              // grid key -> grid
}

// NewEvaluator scores against test puzzles for a dataset whose
// identifiers are names (identifiers.json) and whose padding rows carry
// blank.
func NewEvaluator(names []string, tests []NamedTask, blank int32, aggregated bool) *Evaluator {
	e := &Evaluator{Aggregated: aggregated, names: names, tests: tests, blank: blank}
	e.reset()
	return e
}

// LoadEvaluator reads identifiers.json and test_puzzles.json of an ARC
// dataset directory.
func LoadEvaluator(dir string, blank int32, aggregated bool) (*Evaluator, error) {
	names, err := data.ReadIdentifiers(dir)
	if err != nil {
		return nil, err
	}
	tests, err := LoadTestPuzzles(filepath.Join(dir, "test_puzzles.json"))
	if err != nil {
		return nil, err
	}
	return NewEvaluator(names, tests, blank, aggregated), nil
}

func (e *Evaluator) reset() {
	e.votes = map[string]map[string][]vote{}
	e.grids = map[string]Grid{}
}

// BeginEval starts an evaluation: it drops earlier votes unless Aggregated.
func (e *Evaluator) BeginEval() {
	if !e.Aggregated {
		e.reset()
	}
}

// Add records the final-step prediction of one test example: its puzzle
// identifier, input and predicted tokens ([900] each) and q_halt logit.
// Padding rows (the blank identifier) are ignored.
func (e *Evaluator) Add(identifier int32, input, pred []int32, qHaltLogit float64) error {
	if identifier == e.blank {
		return nil
	}
	if identifier < 0 || int(identifier) >= len(e.names) {
		return fmt.Errorf("arc: identifier %d outside identifiers.json (%d names)", identifier, len(e.names))
	}
	if len(input) != MaxSize*MaxSize || len(pred) != MaxSize*MaxSize {
		return fmt.Errorf("arc: input/prediction of %d/%d tokens, want %d", len(input), len(pred), MaxSize*MaxSize)
	}
	orig, aug, err := ParseName(e.names[identifier])
	if err != nil {
		return err
	}
	in := aug.Invert(Crop(input))
	p := aug.Invert(Crop(pred))
	pk := p.Key()
	e.grids[pk] = p
	byInput := e.votes[orig]
	if byInput == nil {
		byInput = map[string][]vote{}
		e.votes[orig] = byInput
	}
	ik := in.Key()
	byInput[ik] = append(byInput[ik], vote{pk, 1 / (1 + math.Exp(-qHaltLogit))})
	return nil
}

// AddBatch records every real row of a test batch: preds is [B*900]
// predicted tokens and qHalt [B] logits of the final supervision step.
func (e *Evaluator) AddBatch(b *data.Batch, preds []int32, qHalt []float32) error {
	const L = MaxSize * MaxSize
	for j := range b.PuzzleIdentifiers {
		if err := e.Add(b.PuzzleIdentifiers[j], b.Inputs[j*L:(j+1)*L], preds[j*L:(j+1)*L], float64(qHalt[j])); err != nil {
			return err
		}
	}
	return nil
}

// Merge appends o's votes after e's (replica by replica, so first-seen
// order is the reference's rank order) for scoring on one replica.
func (e *Evaluator) Merge(o *Evaluator) {
	for name, byInput := range o.votes {
		dst := e.votes[name]
		if dst == nil {
			dst = map[string][]vote{}
			e.votes[name] = dst
		}
		for k, v := range byInput {
			dst[k] = append(dst[k], v...)
		}
	}
	for k, g := range o.grids {
		e.grids[k] = g
	}
}

// Attempts is one test pair's submission entry.
type Attempts struct {
	Attempt1 Grid `json:"attempt_1"`
	Attempt2 Grid `json:"attempt_2"`
}

// Submission maps each test puzzle to its pairs' attempts (pairs without
// any prediction are left out, as the reference does), in test order.
type Submission struct {
	Names   []string
	Entries map[string][]Attempts
}

// ranked is a distinct predicted grid with its votes.
type ranked struct {
	grid  string
	count int
	meanQ float64
}

// rank orders the distinct grids of votes by (count, mean q) descending,
// ties in first-seen order.
func rank(votes []vote) []ranked {
	idx := map[string]int{}
	var out []ranked
	sums := []float64{}
	for _, v := range votes {
		i, ok := idx[v.grid]
		if !ok {
			i = len(out)
			idx[v.grid] = i
			out = append(out, ranked{grid: v.grid})
			sums = append(sums, 0)
		}
		out[i].count++
		sums[i] += v.q
	}
	for i := range out {
		out[i].meanQ = sums[i] / float64(out[i].count)
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].count != out[b].count {
			return out[a].count > out[b].count
		}
		return out[a].meanQ > out[b].meanQ
	})
	return out
}

// Result scores the votes: ARC/pass@K for every K in PassKs, and the
// submission (the top two grids per test pair, the first repeated when
// there is only one).
func (e *Evaluator) Result() (map[string]float64, Submission) {
	correct := make([]float64, len(PassKs))
	sub := Submission{Entries: map[string][]Attempts{}}
	for _, t := range e.tests {
		sub.Names = append(sub.Names, t.Name)
		entries := []Attempts{}
		hits := make([]int, len(PassKs))
		for _, pair := range t.Test {
			r := rank(e.votes[t.Name][pair.Input.Key()])
			if len(r) == 0 {
				continue
			}
			want := pair.Output.Key()
			for i, k := range PassKs {
				for _, x := range r[:min(k, len(r))] {
					if x.grid == want {
						hits[i]++
						break
					}
				}
			}
			a := Attempts{Attempt1: e.grids[r[0].grid], Attempt2: e.grids[r[0].grid]}
			if len(r) > 1 {
				a.Attempt2 = e.grids[r[1].grid]
			}
			entries = append(entries, a)
		}
		sub.Entries[t.Name] = entries
		if len(t.Test) > 0 {
			for i := range PassKs {
				correct[i] += float64(hits[i]) / float64(len(t.Test))
			}
		}
	}
	out := map[string]float64{}
	for i, k := range PassKs {
		v := 0.0
		if len(e.tests) > 0 {
			v = correct[i] / float64(len(e.tests))
		}
		out["ARC/pass@"+strconv.Itoa(k)] = v
	}
	return out, sub
}

// MarshalPy renders the submission as the reference's json.dump does.
func (s Submission) MarshalPy() []byte {
	b := []byte{'{'}
	for i, name := range s.Names {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, data.PythonString(name)...)
		b = append(b, ": ["...)
		for j, a := range s.Entries[name] {
			if j > 0 {
				b = append(b, ", "...)
			}
			b = append(b, `{"attempt_1": `...)
			b = appendGridPy(b, a.Attempt1)
			b = append(b, `, "attempt_2": `...)
			b = appendGridPy(b, a.Attempt2)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// WriteSubmission writes submission.json to path.
func WriteSubmission(path string, s Submission) error {
	return os.WriteFile(path, s.MarshalPy(), 0o644)
}
