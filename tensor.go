package trm

import (
	"fmt"
	"sort"

	"gorgonia.org/tensor"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/internal/safetensors"
)

// PuzzlesFromDense reads a token batch [N, SeqLen] (int32, int64 or int
// elements) as N puzzles with the given puzzle identifiers (nil: all 0,
// the blank identifier). The tokens are copied: t may be reused.
func PuzzlesFromDense(t *tensor.Dense, ids []int32) ([]Puzzle, error) {
	sh := t.Shape()
	if len(sh) != 2 {
		return nil, fmt.Errorf("trm: a token batch is [N, SeqLen], got shape %v", sh)
	}
	n, l := sh[0], sh[1]
	if ids != nil && len(ids) != n {
		return nil, fmt.Errorf("trm: %d puzzle identifiers for a batch of %d", len(ids), n)
	}
	if t.IsView() {
		if d, ok := t.Materialize().(*tensor.Dense); ok {
			t = d
		}
	}
	if t.DataSize() < n*l {
		return nil, fmt.Errorf("trm: token batch of shape %v holds %d elements", sh, t.DataSize())
	}
	flat := make([]int32, n*l)
	switch d := t.Data().(type) {
	case []int32:
		copy(flat, d)
	case []int64:
		for i := range flat {
			flat[i] = int32(d[i])
			if int64(flat[i]) != d[i] {
				return nil, fmt.Errorf("trm: token batch element %d: %d does not fit a token", i, d[i])
			}
		}
	case []int:
		for i := range flat {
			flat[i] = int32(d[i])
			if int(flat[i]) != d[i] {
				return nil, fmt.Errorf("trm: token batch element %d: %d does not fit a token", i, d[i])
			}
		}
	default:
		return nil, fmt.Errorf("trm: a token batch holds int32, int64 or int, got %v", t.Dtype())
	}
	out := make([]Puzzle, n)
	for i := range out {
		out[i].Tokens = flat[i*l : (i+1)*l : (i+1)*l]
		if ids != nil {
			out[i].ID = ids[i]
		}
	}
	return out, nil
}

// AnswersDense stacks the answers of sols into an int32 tensor [N, SeqLen].
func AnswersDense(sols []Solution) *tensor.Dense {
	l := 0
	if len(sols) > 0 {
		l = len(sols[0].Answer)
	}
	flat := make([]int32, 0, len(sols)*l)
	for _, s := range sols {
		flat = append(flat, s.Answer...)
	}
	return tensor.New(tensor.WithShape(len(sols), l), tensor.WithBacking(flat))
}

// TraceDense returns the predictions after every step as an int32 tensor
// [Steps, SeqLen] (nil without Request.Trace).
func (s *Solution) TraceDense() *tensor.Dense {
	if len(s.Trace) == 0 {
		return nil
	}
	l := len(s.Trace[0])
	flat := make([]int32, 0, len(s.Trace)*l)
	for _, p := range s.Trace {
		flat = append(flat, p...)
	}
	return tensor.New(tensor.WithShape(len(s.Trace), l), tensor.WithBacking(flat))
}

// LogitsDense returns every step's logits as a float32 tensor [Steps,
// SeqLen, VocabSize] (nil without Request.Logits).
func (s *Solution) LogitsDense(vocab int) *tensor.Dense {
	if len(s.Logits) == 0 || vocab <= 0 {
		return nil
	}
	l := len(s.Logits[0]) / vocab
	flat := make([]float32, 0, len(s.Logits)*l*vocab)
	for _, p := range s.Logits {
		flat = append(flat, p...)
	}
	return tensor.New(tensor.WithShape(len(s.Logits), l, vocab), tensor.WithBacking(flat))
}

// StatesDense returns each carried state over the steps as float32
// tensors [Steps, S, hidden], keyed by state name (z_H, z_L, ...); nil
// without Request.States.
func (s *Solution) StatesDense(hidden int) map[string]*tensor.Dense {
	if len(s.States) == 0 || hidden <= 0 {
		return nil
	}
	out := map[string]*tensor.Dense{}
	for k, name := range s.StateNames {
		n := len(s.States[0][k])
		flat := make([]float32, 0, len(s.States)*n)
		for _, st := range s.States {
			flat = append(flat, st[k]...)
		}
		out[name] = tensor.New(tensor.WithShape(len(s.States), n/hidden, hidden), tensor.WithBacking(flat))
	}
	return out
}

// Weights returns a copy of the model's weights as float32 tensors under
// the reference's state-dict keys (inner.lm_head.weight, ...), in their
// reference shapes.
func (m *Model) Weights() map[string]*tensor.Dense {
	out := map[string]*tensor.Dense{}
	for k, t := range m.params.Tensors() {
		v, err := t.Float32()
		if err != nil {
			panic(fmt.Sprintf("trm: weight %s: %v", k, err)) // Params.Tensors writes F32 only
		}
		out[k] = tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(append([]float32(nil), v...)))
	}
	return out
}

// WeightNames returns the keys of Weights in sorted order.
func (m *Model) WeightNames() []string {
	var ks []string
	for k := range m.params.Tensors() {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// FromWeights builds a Model from named float32 tensors (Weights' form)
// and an architecture with its dataset-dependent sizes set: the way in
// for weights that another Go library produced or changed. Every key of
// the architecture must be present with its shape.
func FromWeights(cfg engine.Config, arch engine.ArchSettings, weights map[string]*tensor.Dense) (*Model, error) {
	ts := map[string]safetensors.Tensor{}
	for k, d := range weights {
		v, ok := d.Data().([]float32)
		if !ok {
			return nil, fmt.Errorf("trm: weight %s holds %v, want float32", k, d.Dtype())
		}
		sh := []int(d.Shape())
		n := 1
		for _, x := range sh {
			n *= x
		}
		if len(v) != n {
			return nil, fmt.Errorf("trm: weight %s of shape %v holds %d values", k, sh, len(v))
		}
		ts[k] = safetensors.FromFloat32(append([]int(nil), sh...), v)
	}
	return fromTensors(sizesFromWeights(cfg, ts), arch, ts, "weights")
}
