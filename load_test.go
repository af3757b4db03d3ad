package trm_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/trainer"
)

const golden = "testdata/golden/att_rope_small"

// TestLoadReferenceMatchesPyTorch: a reference .pt loaded through the
// importer, solved in the reference mode on the golden batch, gives the
// logits, q_halt and latent states the reference code computed (eval
// mode, three consecutive ACT steps from the initial carry), read back
// through the tensor boundary.
func TestLoadReferenceMatchesPyTorch(t *testing.T) {
	cfg := filepath.Join(golden, "config.json")
	m, err := trm.Load("testdata/golden/torch/att_rope_small.nocompile.pt", trm.LoadOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	st, err := trm.Load(filepath.Join(golden, "weights.safetensors"), trm.LoadOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	wp, ws := m.Weights(), st.Weights()
	if len(wp) != len(ws) || len(wp) == 0 {
		t.Fatalf("%d weights from the .pt, %d from safetensors", len(wp), len(ws))
	}
	for k, a := range wp {
		b := ws[k]
		if b == nil || !a.Shape().Eq(b.Shape()) || !equalF32(a.Data().([]float32), b.Data().([]float32)) {
			t.Errorf("weight %s differs between the .pt and the safetensors file", k)
		}
	}
	bf, err := safetensors.ReadFile(filepath.Join(golden, "batch.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	in, _ := bf.Tensors["inputs"].Int64()
	ids, _ := bf.Tensors["puzzle_identifiers"].Int64()
	batch := tensor.New(tensor.WithShape(bf.Tensors["inputs"].Shape...), tensor.WithBacking(in))
	pids := make([]int32, len(ids))
	for i, v := range ids {
		pids[i] = int32(v)
	}
	ps, err := trm.PuzzlesFromDense(batch, pids)
	if err != nil {
		t.Fatal(err)
	}
	sols, err := m.Solve(context.Background(), ps, trm.Request{FullSteps: true, Logits: true, States: true, Trace: true})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := safetensors.ReadFile(filepath.Join(golden, "eval_steps.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	f32 := func(key string) []float32 {
		v, err := ref.Tensors[key].Float32()
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return v
	}
	V, H := m.VocabSize(), m.Config().HiddenSize
	for i, sol := range sols {
		logits := sol.LogitsDense(V)
		states := sol.StatesDense(H)
		for k := 1; k <= 3; k++ {
			step := "step" + string(rune('0'+k))
			want := f32(step + ".logits")
			n := m.SeqLen() * V
			got, err := logits.Slice(tensor.S(k - 1))
			if err != nil {
				t.Fatal(err)
			}
			gv := got.(*tensor.Dense).Materialize().(*tensor.Dense).Data().([]float32)
			if d := maxDiff(gv, want[i*n:(i+1)*n]); d > 2e-4 {
				t.Errorf("puzzle %d %s: logits differ from the reference by %g", i, step, d)
			}
			q := f32(step + ".q_halt_logits")[i]
			if p := 1 / (1 + math.Exp(-float64(q))); math.Abs(p-sol.HaltProb[k-1]) > 1e-4 {
				t.Errorf("puzzle %d %s: sigmoid(q_halt) %v, reference %v", i, step, sol.HaltProb[k-1], p)
			}
		}
		for _, z := range []string{"z_H", "z_L"} {
			want := f32("step3." + z)
			d := states[z]
			if d == nil {
				t.Fatalf("no state %s in %v", z, sol.StateNames)
			}
			sh := d.Shape()
			S := sh[1]
			got, _ := d.Slice(tensor.S(2))
			gv := got.(*tensor.Dense).Materialize().(*tensor.Dense).Data().([]float32)
			if diff := maxDiff(gv, want[i*S*H:(i+1)*S*H]); diff > 2e-4 {
				t.Errorf("puzzle %d: %s after step 3 differs from the reference by %g", i, z, diff)
			}
		}
		if tr := sol.TraceDense(); tr == nil || tr.Shape()[0] != m.HaltMaxSteps() {
			t.Errorf("puzzle %d: trace %v", i, tr)
		}
	}
	if a := trm.AnswersDense(sols); a.Shape()[0] != len(ps) || a.Shape()[1] != m.SeqLen() {
		t.Errorf("answers tensor of shape %v", a.Shape())
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestLoadForms: a checkpoint directory, its model.safetensors with its
// arch.json, and weights passed through gorgonia tensors load the same
// model; a checkpoint whose files do not match its manifest, a weights
// file without an architecture and a .pt over the memory bound are
// refused with errors naming the problem.
func TestLoadForms(t *testing.T) {
	dir := t.TempDir()
	run, _ := trainTiny(t, dir, 10)
	m, err := trm.Load(run, trm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ck := mustLatest(t, run)
	f, err := trm.Load(filepath.Join(ck, trainer.ModelFile), trm.LoadOptions{Config: filepath.Join(ck, "arch.json")})
	if err != nil {
		t.Fatal(err)
	}
	w := m.Weights()
	r, err := trm.FromWeights(m.Config(), m.Arch(), w)
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range []*trm.Model{f, r} {
		ow := other.Weights()
		if len(ow) != len(w) || other.SeqLen() != m.SeqLen() || other.VocabSize() != m.VocabSize() {
			t.Fatalf("%s: %d weights, seq %d vocab %d; checkpoint %d, %d, %d", other.Source(), len(ow), other.SeqLen(), other.VocabSize(), len(w), m.SeqLen(), m.VocabSize())
		}
		for _, k := range m.WeightNames() {
			if !ow[k].Shape().Eq(w[k].Shape()) || !equalF32(ow[k].Data().([]float32), w[k].Data().([]float32)) {
				t.Errorf("%s: weight %s differs from the checkpoint's", other.Source(), k)
			}
		}
	}
	// Weights are copies: changing them leaves the model alone.
	w[m.WeightNames()[0]].Data().([]float32)[0] += 1
	if equalF32(m.Weights()[m.WeightNames()[0]].Data().([]float32), w[m.WeightNames()[0]].Data().([]float32)) {
		t.Error("Weights returned the model's own storage")
	}
	delete(w, m.WeightNames()[0])
	if _, err := trm.FromWeights(m.Config(), m.Arch(), w); err == nil {
		t.Error("weights with a key missing accepted")
	}

	for _, c := range []struct {
		name, path string
		opt        trm.LoadOptions
		want       string
		prepare    func()
	}{
		{"no config", filepath.Join(ck, trainer.ModelFile), trm.LoadOptions{}, "LoadOptions.Config", nil},
		{"missing", filepath.Join(dir, "nothing"), trm.LoadOptions{}, "no such file", nil},
		{"pt bound", "testdata/golden/torch/att_rope_small.nocompile.pt", trm.LoadOptions{Config: filepath.Join(golden, "config.json"), MaxBytes: 1000}, "att_rope_small.nocompile.pt", nil},
		{"tampered", ck, trm.LoadOptions{}, trainer.ModelFile, func() {
			p := filepath.Join(ck, trainer.ModelFile)
			b, _ := os.ReadFile(p)
			b[len(b)-1] ^= 1
			os.WriteFile(p, b, 0o644)
		}},
	} {
		if c.prepare != nil {
			c.prepare()
		}
		_, err := trm.Load(c.path, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error naming %q", c.name, err, c.want)
		}
	}
}
