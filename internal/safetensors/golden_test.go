package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// goldenDir locates the read-only reference fixtures. TRM_GOLDEN_DIR
// overrides the default so the tests run on machines with another layout;
// a missing fixture folder fails the test.
func goldenDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TRM_GOLDEN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "testdata", "golden") // the repository's copy
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("golden fixtures not found at %s (set TRM_GOLDEN_DIR): %v", dir, err)
	}
	return dir
}

func goldenFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(goldenDir(t), "*", "*.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 19 {
		t.Fatalf("found %d golden safetensors files, want at least 19", len(files))
	}
	return files
}

// TestGoldenFilesDecode decodes every fixture and checks invariants that
// must hold for any valid file: names unique and complete, data lengths
// consistent, and every value readable through the accessors.
func TestGoldenFilesDecode(t *testing.T) {
	for _, path := range goldenFiles(t) {
		f, err := ReadFile(path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(f.Names) == 0 || len(f.Names) != len(f.Tensors) {
			t.Errorf("%s: %d names for %d tensors", path, len(f.Names), len(f.Tensors))
		}
		for _, name := range f.Names {
			tn := f.Tensors[name]
			if err := tn.Validate(); err != nil {
				t.Errorf("%s: %s: %v", path, name, err)
			}
			if tn.DType.IsFloat() {
				if _, err := tn.Float32(); err != nil {
					t.Errorf("%s: %s: Float32: %v", path, name, err)
				}
			} else if _, err := tn.Int64(); err != nil {
				t.Errorf("%s: %s: Int64: %v", path, name, err)
			}
		}
	}
}

// TestGoldenKnownShapes pins shapes, dtypes and metadata documented in
// golden/README.md and meta.json.
func TestGoldenKnownShapes(t *testing.T) {
	dir := goldenDir(t)
	w, err := ReadFile(filepath.Join(dir, "att_rope_small", "weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name  string
		dtype DType
		shape []int
	}{
		{"inner.L_level.layers.0.self_attn.qkv_proj.weight", F32, []int{192, 64}},
		{"inner.L_level.layers.1.mlp.down_proj.weight", F32, []int{64, 256}},
		{"inner.H_init", F32, []int{64}},
		{"inner.q_head.bias", F32, []int{2}},
		{"inner.puzzle_emb.weights", F32, []int{5, 64}},
	}
	for _, c := range checks {
		tn, ok := w.Tensors[c.name]
		if !ok {
			t.Errorf("weights: missing %s", c.name)
			continue
		}
		if tn.DType != c.dtype || !reflect.DeepEqual(tn.Shape, c.shape) {
			t.Errorf("weights: %s is %s %v, want %s %v", c.name, tn.DType, tn.Shape, c.dtype, c.shape)
		}
	}
	if len(w.Tensors) != 15 {
		t.Errorf("weights: %d tensors, want 15", len(w.Tensors))
	}
	if w.Metadata["case"] != "att_rope_small" || w.Metadata["torch"] != "1.13.0a0" {
		t.Errorf("weights metadata = %v", w.Metadata)
	}
	// meta.json counts 132610 trained parameters; the file adds the two
	// [64] buffers H_init and L_init and the [5,64] puzzle table.
	total := 0
	for _, tn := range w.Tensors {
		total += tn.NumElements()
	}
	if want := 132610 + 64 + 64 + 5*64; total != want {
		t.Errorf("weights hold %d elements, want %d", total, want)
	}

	e, err := ReadFile(filepath.Join(dir, "att_rope_small", "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	loss := e.Tensors["loss"]
	if loss.DType != F64 || len(loss.Shape) != 0 || loss.NumElements() != 1 {
		t.Fatalf("expected: loss is %s %v, want F64 scalar", loss.DType, loss.Shape)
	}
	lv, err := loss.Float64()
	if err != nil || len(lv) != 1 || !(lv[0] > 0 && lv[0] < 100) {
		t.Errorf("expected: loss = %v, %v; want one positive finite value", lv, err)
	}
	if c := e.Tensors["metrics.count"]; c.DType != I64 || len(c.Shape) != 0 {
		t.Errorf("expected: metrics.count is %s %v, want I64 scalar", c.DType, c.Shape)
	}
	if p := e.Tensors["preds"]; p.DType != I32 || !reflect.DeepEqual(p.Shape, []int{4, 16}) {
		t.Errorf("expected: preds is %s %v, want I32 [4 16]", p.DType, p.Shape)
	}
	if l := e.Tensors["logits"]; l.DType != F32 || !reflect.DeepEqual(l.Shape, []int{4, 16, 11}) {
		t.Errorf("expected: logits is %s %v, want F32 [4 16 11]", l.DType, l.Shape)
	}

	b, err := ReadFile(filepath.Join(dir, "att_rope_small", "batch.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	labels, err := b.Tensors["labels"].Int64()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range labels {
		if v != -100 && (v < 0 || v >= 11) {
			t.Errorf("batch: label %d outside the vocabulary and not -100", v)
		}
	}
}

// TestGoldenReencodeIdentical re-encodes the fixtures that carry no
// metadata: the reference writer's layout (element size descending, then
// name; compact JSON; space padding to 8) must come back byte for byte.
func TestGoldenReencodeIdentical(t *testing.T) {
	dir := goldenDir(t)
	for _, name := range []string{"weights", "batches", "expected"} {
		path := filepath.Join(dir, "trajectory_att_rope_small", name+".safetensors")
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Decode(orig, path)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := Encode(&buf, f.Tensors, f.Metadata); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), orig) {
			t.Errorf("%s: re-encoded bytes differ from the reference file (%d vs %d bytes)", path, buf.Len(), len(orig))
		}
	}
}

// TestGoldenRoundTripWithMetadata writes every fixture to a new file and
// reads it back: names, dtypes, shapes, bytes and metadata must survive.
func TestGoldenRoundTripWithMetadata(t *testing.T) {
	tmp := t.TempDir()
	for _, path := range goldenFiles(t) {
		f, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(tmp, "rt.safetensors")
		if err := WriteFile(out, f.Tensors, f.Metadata); err != nil {
			t.Fatal(err)
		}
		g, err := ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f.Metadata, g.Metadata) {
			t.Errorf("%s: metadata %v came back as %v", path, f.Metadata, g.Metadata)
		}
		if !reflect.DeepEqual(f.Names, g.Names) {
			t.Errorf("%s: tensor order changed on rewrite", path)
		}
		for name, a := range f.Tensors {
			b := g.Tensors[name]
			if a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
				t.Errorf("%s: tensor %s differs after round trip", path, name)
			}
		}
	}
}
