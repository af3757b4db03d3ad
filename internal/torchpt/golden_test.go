package torchpt

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// goldenDir locates the read-only reference fixtures (TRM_GOLDEN_DIR
// overrides); a missing fixture folder fails the test.
func goldenDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TRM_GOLDEN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "testdata", "golden") // the repository's copy
	}
	if _, err := os.Stat(filepath.Join(dir, "torch")); err != nil {
		t.Fatalf("golden torch fixtures not found under %s (set TRM_GOLDEN_DIR): %v", dir, err)
	}
	return dir
}

// referenceWeights is the float32 state the .pt files were saved from.
func referenceWeights(t *testing.T) *safetensors.File {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join(goldenDir(t), "att_rope_small", "weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// loadCanonical loads a fixture and re-keys it with CanonicalKey, checking
// that the raw keys carry the expected prefix and come in file order.
func loadCanonical(t *testing.T, file, prefix string) map[string]safetensors.Tensor {
	t.Helper()
	path := filepath.Join(goldenDir(t), "torch", file)
	tensors, keys, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(tensors) {
		t.Fatalf("%s: %d keys for %d tensors", file, len(keys), len(tensors))
	}
	// torch.save wrote these dicts with sorted keys; file order must be kept.
	if !sort.StringsAreSorted(keys) {
		t.Errorf("%s: keys not in file order: %v", file, keys)
	}
	out := map[string]safetensors.Tensor{}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix+"inner.") {
			t.Errorf("%s: key %q lacks the prefix %q", file, k, prefix)
		}
		c := CanonicalKey(k)
		if _, dup := out[c]; dup {
			t.Errorf("%s: two keys map to %q", file, c)
		}
		out[c] = tensors[k]
	}
	return out
}

// compareKeySets reports keys present on one side only; the fixtures are
// expected to hold exactly the same 15 tensors.
func compareKeySets(t *testing.T, file string, got map[string]safetensors.Tensor, ref *safetensors.File) {
	t.Helper()
	for k := range got {
		if _, ok := ref.Tensors[k]; !ok {
			t.Errorf("%s: key %q is not in weights.safetensors", file, k)
		}
	}
	for _, k := range ref.Names {
		if _, ok := got[k]; !ok {
			t.Errorf("%s: weights.safetensors key %q is missing", file, k)
		}
	}
}

// TestGoldenFloat32Checkpoints loads the four float32 fixtures (zip,
// legacy, uncompiled prefix, column-major lm_head) and requires every
// tensor to equal weights.safetensors bit for bit.
func TestGoldenFloat32Checkpoints(t *testing.T) {
	ref := referenceWeights(t)
	files := []struct{ file, prefix string }{
		{"att_rope_small.compiled.pt", "_orig_mod.model."},
		{"att_rope_small.compiled.legacy.pt", "_orig_mod.model."},
		{"att_rope_small.nocompile.pt", "model."},
		{"att_rope_small.strided.pt", "_orig_mod.model."},
	}
	for _, f := range files {
		got := loadCanonical(t, f.file, f.prefix)
		compareKeySets(t, f.file, got, ref)
		for _, k := range ref.Names {
			g, ok := got[k]
			if !ok {
				continue
			}
			r := ref.Tensors[k]
			if g.DType != safetensors.F32 || !reflect.DeepEqual(g.Shape, r.Shape) {
				t.Errorf("%s: %s is %s %v, want F32 %v", f.file, k, g.DType, g.Shape, r.Shape)
				continue
			}
			if !bytes.Equal(g.Data, r.Data) {
				t.Errorf("%s: %s values differ from weights.safetensors", f.file, k)
			}
		}
	}
}

// TestGoldenStridedIsColumnMajor makes sure the strided fixture really
// exercises the strided path: lm_head must be stored with strides (1, 11).
func TestGoldenStridedIsColumnMajor(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(goldenDir(t), "torch", "att_rope_small.strided.pt"))
	if err != nil {
		t.Fatal(err)
	}
	ck, err := parse(context.Background(), data, Options{}.withDefaults(), &budget{max: DefaultMaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	r := ck.refs["_orig_mod.model.inner.lm_head.weight"]
	if r == nil || !reflect.DeepEqual(r.size, []int64{11, 64}) || !reflect.DeepEqual(r.stride, []int64{1, 11}) {
		t.Fatalf("lm_head view = %+v, want size [11 64] stride [1 11]", r)
	}
	// The raw storage is the transpose: element (i, j) sits at j*11 + i.
	want, _ := referenceWeights(t).Tensors["inner.lm_head.weight"].Float32()
	raw := safetensors.Tensor{DType: safetensors.F32, Shape: []int{64, 11}, Data: r.st.root.data}
	stored, err := raw.Float32()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 11; i++ {
		for j := 0; j < 64; j++ {
			if stored[j*11+i] != want[i*64+j] {
				t.Fatalf("storage element (%d,%d) is not the transposed weight", j, i)
			}
		}
	}
}

// isBF16RoundNearestEven checks, from the definition and independently of
// safetensors.Float32ToBF16, that b is x rounded to the nearest bfloat16
// with ties to even: b must be one of the two bfloat16 values bracketing x,
// the closer one, and on an exact tie the one with an even mantissa.
func isBF16RoundNearestEven(x float32, b uint16) bool {
	bits := math.Float32bits(x)
	down := uint16(bits >> 16) // truncation toward zero
	up := down + 1             // next bfloat16 away from zero
	dx := math.Abs(float64(x) - float64(safetensors.BF16ToFloat32(down)))
	ux := math.Abs(float64(safetensors.BF16ToFloat32(up)) - float64(x))
	switch {
	case bits&0xFFFF == 0:
		return b == down
	case dx < ux:
		return b == down
	case ux < dx:
		return b == up
	}
	if down&1 == 0 {
		return b == down
	}
	return b == up
}

// TestGoldenBF16Checkpoint requires every tensor of the bf16 fixture to be
// the float32 weight rounded to nearest-even bfloat16.
func TestGoldenBF16Checkpoint(t *testing.T) {
	ref := referenceWeights(t)
	const file = "att_rope_small.bf16.pt"
	got := loadCanonical(t, file, "_orig_mod.model.")
	compareKeySets(t, file, got, ref)
	ties := 0
	for _, k := range ref.Names {
		g, ok := got[k]
		if !ok {
			continue
		}
		r := ref.Tensors[k]
		if g.DType != safetensors.BF16 || !reflect.DeepEqual(g.Shape, r.Shape) {
			t.Errorf("%s: %s is %s %v, want BF16 %v", file, k, g.DType, g.Shape, r.Shape)
			continue
		}
		want, _ := r.Float32()
		widened, err := g.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range want {
			b := uint16(g.Data[2*i]) | uint16(g.Data[2*i+1])<<8
			w := widened[i]
			if math.Abs(float64(w)-float64(x)) > math.Ldexp(math.Abs(float64(x)), -8) {
				t.Fatalf("%s: %s[%d] = %v, more than 2^-8 relative from %v", file, k, i, w, x)
			}
			if !isBF16RoundNearestEven(x, b) {
				t.Fatalf("%s: %s[%d] = %#04x is not %v rounded to nearest even", file, k, i, b, x)
			}
			if b != safetensors.Float32ToBF16(x) {
				t.Fatalf("%s: %s[%d]: Float32ToBF16 disagrees with the file", file, k, i)
			}
			if math.Float32bits(x)&0xFFFF == 0x8000 {
				ties++
			}
		}
	}
	t.Logf("%d exact ties among the bf16 values", ties)
}

// TestGoldenZipAndLegacyAgree loads the same weights from both containers
// and compares raw keys and order too, not only canonical values.
func TestGoldenZipAndLegacyAgree(t *testing.T) {
	dir := filepath.Join(goldenDir(t), "torch")
	a, ka, err := Load(filepath.Join(dir, "att_rope_small.compiled.pt"))
	if err != nil {
		t.Fatal(err)
	}
	b, kb, err := Load(filepath.Join(dir, "att_rope_small.compiled.legacy.pt"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ka, kb) {
		t.Errorf("key order differs:\n zip    %v\n legacy %v", ka, kb)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("zip and legacy tensors differ")
	}
	if ka[0] != "_orig_mod.model.inner.H_init" || len(ka) != 15 {
		t.Errorf("keys = %v, want 15 starting with _orig_mod.model.inner.H_init", ka)
	}
}

// TestGoldenCorrupted truncates and damages real files: each must fail with
// an error naming the file, never load partial weights.
func TestGoldenCorrupted(t *testing.T) {
	dir := filepath.Join(goldenDir(t), "torch")
	tmp := t.TempDir()
	for _, file := range []string{"att_rope_small.compiled.pt", "att_rope_small.compiled.legacy.pt"} {
		orig, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		damaged := map[string][]byte{
			"empty":      nil,
			"4 bytes":    orig[:4],
			"100 bytes":  orig[:100],
			"1500 bytes": orig[:1500],
			"half":       orig[:len(orig)/2],
			"minus 1":    orig[:len(orig)-1],
			"plus 1":     append(append([]byte(nil), orig...), 0),
		}
		// Flip a byte inside the first storage's data: zip entries are
		// CRC-checked, so this must be caught there. (Legacy files have no
		// checksum; a flipped data byte is undetectable by design.)
		if strings.HasSuffix(file, "compiled.pt") {
			c := append([]byte(nil), orig...)
			c[len(c)/3] ^= 0xFF // inside the largest storages' bytes
			damaged["flipped"] = c
		}
		for what, data := range damaged {
			if strings.HasSuffix(file, "compiled.pt") && what == "plus 1" {
				continue // trailing bytes after a zip's end record are legal for zip readers
			}
			p := filepath.Join(tmp, strings.ReplaceAll(what, " ", "_")+"-"+file)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("%s %s: err = %v, want an error naming %s", file, what, err, p)
			}
		}
	}
	if _, _, err := Load(filepath.Join(tmp, "does-not-exist.pt")); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}
