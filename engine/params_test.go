package engine

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// The paper's parameter counts (trained parameters, the puzzle embedding
// excluded: it is a buffer trained by sign-SGD).
func TestPaperParameterCounts(t *testing.T) {
	for name, want := range map[string]int{"sudoku-mlp": 5028866, "sudoku-att": 6828034} {
		p, _ := LookupPreset(name)
		if got := NewLayout(p.Model).NumTrained; got != want {
			t.Errorf("%s: %d trained parameters, want %d", name, got, want)
		}
	}
}

// The layout reproduces the reference's keys, shapes and parameter order,
// as listed in each golden case's meta.json.
func TestLayoutMatchesGoldenMeta(t *testing.T) {
	for _, c := range []string{"att_rope_small", "mlp_t_small"} {
		dir := filepath.Join("..", "testdata", "golden", c)
		cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := safetensors.ReadFile(filepath.Join(dir, "weights.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		l := NewLayout(cfg)
		if len(l.Entries) != len(f.Tensors) {
			t.Errorf("%s: %d layout entries, %d tensors", c, len(l.Entries), len(f.Tensors))
		}
		n := 0
		for _, e := range l.Entries {
			tt, ok := f.Tensors[e.Key]
			if !ok || !slices.Equal(tt.Shape, e.Shape) {
				t.Errorf("%s: key %s shape %v not in the golden weights (%v)", c, e.Key, e.Shape, tt.Shape)
			}
			if e.Kind == Trained {
				n += e.Size()
			}
		}
		meta, _ := os.ReadFile(filepath.Join(dir, "meta.json"))
		if want := map[string]int{"att_rope_small": 132610, "mlp_t_small": 127490}[c]; n != want || !strings.Contains(string(meta), `"num_parameters": `+itoa(want)) {
			t.Errorf("%s: %d trained parameters, want %d", c, n, want)
		}
		// The trained keys in the reference's parameter order.
		var order []string
		for _, e := range l.Entries {
			if e.Kind == Trained {
				order = append(order, e.Key)
			}
		}
		m := string(meta)
		last := -1
		for _, k := range order {
			i := strings.Index(m[strings.Index(m, "parameter_names"):], `"`+k+`"`)
			if i < last {
				t.Errorf("%s: %s out of the reference order", c, k)
			}
			last = i
		}
	}
}

func itoa(n int) string {
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

func TestInitialisation(t *testing.T) {
	p, _ := LookupPreset("sudoku-att")
	cfg := p.Model
	cfg.NumPuzzleIdentifiers = 3
	l := NewLayout(cfg)
	a, b := InitParams(l, 42), InitParams(l, 42)
	if !slices.Equal(a.Trained, b.Trained) || !slices.Equal(a.Buffers, b.Buffers) {
		t.Fatal("same seed gave different parameters")
	}
	if c := InitParams(l, 43); slices.Equal(a.Trained, c.Trained) {
		t.Fatal("different seeds gave the same parameters")
	}
	check := func(key string, std float64) {
		v := a.View(key)
		var s, ss, mx float64
		for _, x := range v {
			s += float64(x)
			ss += float64(x) * float64(x)
			mx = math.Max(mx, math.Abs(float64(x)))
		}
		n := float64(len(v))
		mean, sd := s/n, math.Sqrt(ss/n-(s/n)*(s/n))
		bound := 2 * TruncCompStd(std)
		// Standard errors: mean ~ std/sqrt(n), std ~ std/sqrt(2n).
		if math.Abs(mean) > 5*std/math.Sqrt(n) || math.Abs(sd-std) > 6*std/math.Sqrt(2*n) {
			t.Errorf("%s: mean %.4g std %.5g, want 0 and %.5g (n %d)", key, mean, sd, std, len(v))
		}
		if mx > bound*(1+1e-6) || mx < 0.95*bound {
			t.Errorf("%s: max |x| %.5g, truncation bound %.5g", key, mx, bound)
		}
	}
	H := float64(cfg.HiddenSize)
	check(KeyEmbedTokens, 1/math.Sqrt(H))
	check(KeyLMHead, 1/math.Sqrt(H))
	check(LayerKey(0, keyQKV), 1/math.Sqrt(H))
	check(LayerKey(1, keyDown), 1/math.Sqrt(float64(cfg.Inter(cfg.HiddenSize))))
	for _, x := range a.View(KeyQHeadW) {
		if x != 0 {
			t.Fatal("q_head weight not zero")
		}
	}
	for _, x := range a.View(KeyQHeadB) {
		if x != -5 {
			t.Fatal("q_head bias not -5")
		}
	}
	for _, x := range a.View(KeyPuzzleEmb) {
		if x != 0 {
			t.Fatal("puzzle embedding not zero")
		}
	}
	// c makes the cut normal's std equal to the target: c = std / 0.87962566...
	if r := TruncCompStd(1); math.Abs(r-1.1368472) > 1e-6 {
		t.Errorf("TruncCompStd(1) = %.8g", r)
	}
	// H_init with std 1 over 1e5 draws.
	v := make([]float32, 100000)
	TruncNormal(rand.New(rand.NewPCG(1, 1)), v, 1)
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if sd := math.Sqrt(ss / float64(len(v))); math.Abs(sd-1) > 0.01 {
		t.Errorf("truncated normal std %.4f, want 1", sd)
	}
}

func TestStateRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := LoadConfig("../testdata/golden/att_rope_small/config.json")
	l := NewLayout(cfg)
	golden := "../testdata/golden/att_rope_small/weights.safetensors"
	p, err := LoadState(golden, l)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model.safetensors")
	if err := SaveState(out, p, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	q, err := LoadState(out, l)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Trained, q.Trained) || !slices.Equal(p.Puzzle, q.Puzzle) || !slices.Equal(p.Buffers, q.Buffers) {
		t.Fatal("round trip changed the state")
	}
	// BF16 tensors widen.
	ts := p.Tensors()
	bf := make([]uint16, 64)
	for i := range bf {
		bf[i] = safetensors.Float32ToBF16(p.View(KeyHInit)[i])
	}
	ts[KeyHInit] = safetensors.FromBF16([]int{64}, bf)
	if err := safetensors.WriteFile(out, ts, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := LoadState(out, l); err != nil || r.View(KeyHInit)[3] != safetensors.BF16ToFloat32(bf[3]) {
		t.Fatalf("bf16 load: %v", err)
	}

	bad := func(edit func(map[string]safetensors.Tensor), want string) {
		t.Helper()
		ts := p.Tensors()
		edit(ts)
		path := filepath.Join(dir, "bad.safetensors")
		if err := safetensors.WriteFile(path, ts, nil); err != nil {
			t.Fatal(err)
		}
		_, err := LoadState(path, l)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v, want one naming %s and %q", err, path, want)
		}
	}
	bad(func(m map[string]safetensors.Tensor) { delete(m, KeyLMHead) }, "missing key "+KeyLMHead)
	bad(func(m map[string]safetensors.Tensor) { m["inner.extra"] = m[KeyHInit] }, "unknown key inner.extra")
	bad(func(m map[string]safetensors.Tensor) {
		m[KeyQHeadW] = safetensors.FromFloat32([]int{3, 64}, make([]float32, 192))
	}, "key "+KeyQHeadW+" has shape [3 64], the config needs [2 64]")
}
