package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// rawFile assembles a file from a literal header, so malformed headers can
// be written exactly as a broken writer would.
func rawFile(header string, blob []byte) []byte {
	out := make([]byte, 8, 8+len(header)+len(blob))
	binary.LittleEndian.PutUint64(out, uint64(len(header)))
	out = append(out, header...)
	return append(out, blob...)
}

func sampleTensors() map[string]Tensor {
	return map[string]Tensor{
		"b.weight": FromFloat32([]int{2, 3}, []float32{1, 2, 3, 4, 5, -6.5}),
		"a.loss":   FromFloat64(nil, []float64{0.25}),
		"labels":   FromInt32([]int{4}, []int32{-100, 1, 2, 3}),
		"steps":    FromInt64([]int{2}, []int64{1, 1 << 40}),
		"h":        FromBF16([]int{2}, []uint16{0x3F80, 0xC000}),
		"mask":     {DType: BOOL, Shape: []int{3}, Data: []byte{1, 0, 1}},
		"empty":    FromFloat32([]int{0, 5}, nil),
	}
}

// TestEncodeLayout checks the on-disk layout: header length field, space
// padding to a multiple of 8, tensors ordered by element size then name
// with contiguous offsets, and every tensor aligned to its element size.
func TestEncodeLayout(t *testing.T) {
	var buf bytes.Buffer
	meta := map[string]string{"z": "<&>", "a": "ünï"}
	if err := Encode(&buf, sampleTensors(), meta); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	n := binary.LittleEndian.Uint64(data)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	header := string(data[8 : 8+n])
	if trimmed := strings.TrimRight(header, " "); !strings.HasSuffix(trimmed, "}") || len(header)-len(trimmed) >= 8 {
		t.Errorf("header is not the JSON object plus fewer than 8 spaces: %q", header)
	}
	if !strings.Contains(header, `"z":"<&>"`) {
		t.Errorf("metadata was HTML-escaped or lost: %s", header)
	}
	f, err := Decode(data, "mem")
	if err != nil {
		t.Fatal(err)
	}
	// 8-byte elements first, then 4 ("empty" is F32), 2 and 1; by name within.
	want := []string{"a.loss", "steps", "b.weight", "empty", "labels", "h", "mask"}
	if !reflect.DeepEqual(f.Names, want) {
		t.Errorf("names = %v, want %v", f.Names, want)
	}
	// Read the offsets back with a plain JSON decoder, independently of Decode.
	var raw map[string]struct {
		DataOffsets [2]int `json:"data_offsets"`
	}
	if err := json.Unmarshal([]byte(header), &raw); err != nil {
		t.Fatal(err)
	}
	blobStart := 8 + int(n)
	off := 0
	for _, name := range f.Names {
		tn := f.Tensors[name]
		if got := raw[name].DataOffsets; got != [2]int{off, off + len(tn.Data)} {
			t.Errorf("%s has data_offsets %v, want [%d %d] (contiguous)", name, got, off, off+len(tn.Data))
		}
		if (blobStart+off)%tn.DType.Size() != 0 {
			t.Errorf("%s is not aligned to its %d-byte elements", name, tn.DType.Size())
		}
		if !bytes.Equal(data[blobStart+off:blobStart+off+len(tn.Data)], sampleTensors()[name].Data) {
			t.Errorf("%s: bytes at its offset differ from the input", name)
		}
		off += len(tn.Data)
	}
	if blobStart+off != len(data) {
		t.Errorf("file has %d bytes after the last tensor", len(data)-blobStart-off)
	}
	if !reflect.DeepEqual(f.Metadata, meta) {
		t.Errorf("metadata = %v, want %v", f.Metadata, meta)
	}
}

// TestRoundTripValues writes and re-reads tensors of every dtype and checks
// values, not just bytes.
func TestRoundTripValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	in := sampleTensors()
	if err := WriteFile(path, in, nil); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Metadata) != 0 || f.Metadata == nil {
		t.Errorf("metadata = %#v, want empty non-nil map", f.Metadata)
	}
	w, _ := f.Tensors["b.weight"].Float32()
	if !reflect.DeepEqual(w, []float32{1, 2, 3, 4, 5, -6.5}) || !reflect.DeepEqual(f.Tensors["b.weight"].Shape, []int{2, 3}) {
		t.Errorf("b.weight = %v %v", f.Tensors["b.weight"].Shape, w)
	}
	l, _ := f.Tensors["a.loss"].Float64()
	if len(f.Tensors["a.loss"].Shape) != 0 || !reflect.DeepEqual(l, []float64{0.25}) {
		t.Errorf("a.loss = %v %v", f.Tensors["a.loss"].Shape, l)
	}
	s, _ := f.Tensors["steps"].Int64()
	if !reflect.DeepEqual(s, []int64{1, 1 << 40}) {
		t.Errorf("steps = %v", s)
	}
	lab, _ := f.Tensors["labels"].Int64()
	if !reflect.DeepEqual(lab, []int64{-100, 1, 2, 3}) {
		t.Errorf("labels = %v", lab)
	}
	h, _ := f.Tensors["h"].Float32()
	if !reflect.DeepEqual(h, []float32{1, -2}) {
		t.Errorf("h = %v", h)
	}
	m, _ := f.Tensors["mask"].Int64()
	if !reflect.DeepEqual(m, []int64{1, 0, 1}) {
		t.Errorf("mask = %v", m)
	}
	if e := f.Tensors["empty"]; e.NumElements() != 0 || !reflect.DeepEqual(e.Shape, []int{0, 5}) {
		t.Errorf("empty = %v", e.Shape)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v; want 0644", info.Mode(), err)
	}
}

// TestDecodeErrors feeds malformed files and checks that each is refused
// with an error naming the file and the problem.
func TestDecodeErrors(t *testing.T) {
	var good bytes.Buffer
	if err := Encode(&good, sampleTensors(), map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	g := good.Bytes()
	hdrLen := int(binary.LittleEndian.Uint64(g))
	f32 := make([]byte, 8)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than the 8-byte"},
		{"seven bytes", g[:7], "shorter than the 8-byte"},
		{"truncated header", g[:8+hdrLen/2], "larger than"},
		{"truncated blob", g[:len(g)-3], "run past"},
		{"not json", rawFile("{not json}     ", nil), "invalid JSON"},
		{"json array", rawFile("[1,2]   ", nil), "not a JSON object"},
		{"trailing garbage", rawFile(`{}x`, nil), "after the header"},
		{"unknown dtype", rawFile(`{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}`, f32), "unknown dtype"},
		{"negative dim", rawFile(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, f32), "negative dimension"},
		{"fractional dim", rawFile(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}`, f32), "bad description"},
		{"end before begin", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}`, f32), "not an increasing range"},
		{"past blob", rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, f32), "run past"},
		{"size mismatch", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, f32), "needs 4 bytes"},
		{"one offset", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, f32), "want [begin, end]"},
		{"missing shape", rawFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, f32), "needs dtype, shape and data_offsets"},
		{"unknown field", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, f32), "unknown field"},
		{"duplicate", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32), "duplicate key"},
		{"overlap", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32), "overlap"},
		{"metadata not strings", rawFile(`{"__metadata__":{"k":1}}`, nil), "__metadata__"},
		{"huge shape", rawFile(`{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}}`, f32), "too large"},
	}
	for _, c := range cases {
		_, err := Decode(c.data, "case-"+strings.ReplaceAll(c.name, " ", "_")+".safetensors")
		if err == nil {
			t.Errorf("%s: decoded without error", c.name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "case-"+strings.ReplaceAll(c.name, " ", "_")+".safetensors") || !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q should name the file and contain %q", c.name, msg, c.want)
		}
	}
	// Gaps between tensors and padding after the header are legal.
	gap := rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}  `, []byte{9, 9, 9, 9, 0, 0, 0x80, 0x3F})
	f, err := Decode(gap, "gap")
	if err != nil {
		t.Fatalf("file with a gap before its tensor: %v", err)
	}
	if v, _ := f.Tensors["a"].Float32(); v[0] != 1 {
		t.Errorf("a = %v, want [1]", v)
	}
}

// TestGoldenCorrupted damages a real fixture in the ways a crash or a bad
// copy would and checks each is caught with the path in the message.
func TestGoldenCorrupted(t *testing.T) {
	path := filepath.Join(goldenDir(t), "att_rope_small", "weights.safetensors")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.LittleEndian.Uint64(orig))
	corrupt := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), orig...)) }
	cases := map[string][]byte{
		"truncated data":    orig[:len(orig)-100],
		"truncated header":  orig[:8+n/3],
		"truncated length":  orig[:5],
		"broken JSON":       corrupt(func(b []byte) []byte { b[8] = '['; return b }),
		"bad offsets":       corrupt(func(b []byte) []byte { return bytes.Replace(b, []byte(`[0,256]`), []byte(`[0,999]`), 1) }),
		"bad dtype":         corrupt(func(b []byte) []byte { return bytes.Replace(b, []byte(`"F32"`), []byte(`"X32"`), 1) }),
		"huge header len":   corrupt(func(b []byte) []byte { binary.LittleEndian.PutUint64(b, 1<<62); return b }),
		"overlapping range": corrupt(func(b []byte) []byte { return bytes.Replace(b, []byte(`[256,512]`), []byte(`[128,384]`), 1) }),
	}
	dir := t.TempDir()
	for name, data := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".safetensors")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadFile(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want an error naming %s", name, err, p)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.safetensors")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want a wrapped not-exist error", err)
	}
}

// TestWriteFileAtomic checks that failed writes leave the previous file
// intact and no temporary files behind.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	if err := WriteFile(path, sampleTensors(), map[string]string{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	bad := sampleTensors()
	bad["broken"] = Tensor{DType: F32, Shape: []int{3}, Data: make([]byte, 8)}
	err = WriteFile(path, bad, nil)
	if err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), path) {
		t.Errorf("WriteFile with a short tensor: err = %v, want one naming the tensor and the path", err)
	}
	for _, reserved := range []string{"__metadata__", ""} {
		r := map[string]Tensor{reserved: FromFloat32([]int{1}, []float32{1})}
		if err := WriteFile(path, r, nil); err == nil {
			t.Errorf("WriteFile accepted tensor name %q", reserved)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(before, after) {
		t.Errorf("the old file changed after failed writes (err %v)", err)
	}

	// A failure after the temporary file exists: the target is a
	// non-empty directory, so the final rename fails.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(blocked, sampleTensors(), nil); err == nil {
		t.Errorf("WriteFile over a non-empty directory succeeded")
	}
	// A directory that does not exist cannot hold the temporary file.
	if err := WriteFile(filepath.Join(dir, "nope", "x.safetensors"), sampleTensors(), nil); err == nil {
		t.Errorf("WriteFile into a missing directory succeeded")
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{"blocked", "ckpt.safetensors"}) {
		t.Errorf("directory holds %v, want only blocked and ckpt.safetensors (temporary files left behind?)", names)
	}

	// A successful rewrite replaces the content.
	if err := WriteFile(path, map[string]Tensor{"x": FromInt32(nil, []int32{7})}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil || len(f.Names) != 1 || f.Names[0] != "x" {
		t.Errorf("after rewrite: %v, %v", f, err)
	}
}

// failWriter fails after accepting limit bytes, like a full disk.
type failWriter struct{ limit int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		n := w.limit
		w.limit = 0
		return n, errors.New("disk full")
	}
	w.limit -= len(p)
	return len(p), nil
}

func TestEncodeWriterError(t *testing.T) {
	for _, limit := range []int{0, 4, 20, 200} {
		err := Encode(&failWriter{limit: limit}, sampleTensors(), nil)
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("limit %d: err = %v, want the writer's error", limit, err)
		}
	}
}
