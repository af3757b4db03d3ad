package torchpt

import (
	"archive/zip"
	"bytes"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// fuzzOptions keep every fuzz input within a small budget, so a mutation
// that slips past a size check shows up as a failure, not as a machine
// out of memory.
var fuzzOptions = Options{MaxBytes: 64 << 20, MaxPickleBytes: 1 << 20}

// fuzzSeedTensors is a small state dict touching the strided, offset,
// broadcast, scalar and parameter paths.
func fuzzSeedTensors() []fakeTensor {
	ts := []fakeTensor{
		{key: "a", size: []int64{2, 3}, stride: []int64{1, 2}},
		{key: "b", offset: 5, size: []int64{2, 2}, stride: []int64{2, 1}, param: true},
		{key: "c", offset: 10, size: []int64{3, 2}, stride: []int64{0, 1}},
		{key: "d", offset: 7, size: []int64{}, stride: []int64{}},
	}
	for i := range ts {
		ts[i].storageClass, ts[i].storageKey, ts[i].numel = "FloatStorage", "0", 24
	}
	return ts
}

// checkDecoded asserts what any successful decode must satisfy: every
// tensor validates and holds no more elements than the budget allows.
func checkDecoded(t *testing.T, got map[string]safetensors.Tensor, keys []string, err error) {
	if err != nil {
		if !strings.Contains(err.Error(), "fuzz.pt") {
			t.Fatalf("error does not name the file: %v", err)
		}
		return
	}
	total := 0
	for _, k := range keys {
		tn, ok := got[k]
		if !ok {
			t.Fatalf("key %q listed but missing", k)
		}
		if err := tn.Validate(); err != nil {
			t.Fatalf("tensor %q: %v", k, err)
		}
		total += len(tn.Data)
	}
	if int64(total) > fuzzOptions.MaxBytes {
		t.Fatalf("decoded %d bytes under a %d-byte budget", total, fuzzOptions.MaxBytes)
	}
}

// FuzzPickle runs the pickle machine on arbitrary bytes with the state
// dict allow-list and storage table: it must return a value or an error,
// never panic, loop or grow past its work bound.
func FuzzPickle(f *testing.F) {
	f.Add(statePickle(fuzzSeedTensors(), pickleOptions{}))
	f.Add(statePickle(fuzzSeedTensors(), pickleOptions{orderedDict: true}))
	f.Add(statePickle(fuzzSeedTensors(), pickleOptions{legacy: true}))
	f.Add(oneView(1<<62, []int64{4}, []int64{1}))
	f.Add(oneView(1, []int64{1 << 40}, []int64{0}))
	f.Add([]byte{opProto, 2, opLong1, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, opStop})
	f.Fuzz(func(t *testing.T, data []byte) {
		table := newStorageTable()
		u := &unpickler{data: data, findGlobal: findGlobal, persistentLoad: table.persistentLoad}
		if _, err := u.run(); err == nil && u.pos > len(data) {
			t.Fatalf("read to byte %d of %d", u.pos, len(data))
		}
		if u.work > maxPickleWork+len(data) {
			t.Fatalf("work %d past the bound", u.work)
		}
	})
}

// FuzzZip decodes arbitrary bytes as a zip-format checkpoint, seeded with
// valid archives and the hostile files (the bombs scaled down to 64 MiB).
func FuzzZip(f *testing.F) {
	storage := make([]float32, 24)
	for i := range storage {
		storage[i] = float32(i)
	}
	f.Add(zipCheckpoint(f, statePickle(fuzzSeedTensors(), pickleOptions{orderedDict: true}), map[string][]byte{"0": f32Bytes(storage...)}, nil))
	f.Add(zipCheckpoint(f, statePickle(fuzzSeedTensors(), pickleOptions{}), map[string][]byte{"0": f32Bytes(storage...)}, map[string]string{"byteorder": "big"}))
	for _, c := range hostileCases(f, 64) {
		if isZip(c.data) {
			f.Add(c.data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, keys, err := DecodeWith(data, "fuzz.pt", fuzzOptions)
		checkDecoded(t, got, keys, err)
	})
}

// FuzzLegacy decodes arbitrary bytes as a legacy-format checkpoint.
func FuzzLegacy(f *testing.F) {
	storage := make([]float32, 24)
	ts := fuzzSeedTensors()
	ts[1].view = []int64{2, 20}
	f.Add(legacyCheckpoint(statePickle(ts, pickleOptions{legacy: true, orderedDict: true}), []string{"0"},
		map[string][]byte{"0": f32Bytes(storage...)}, map[string]int{"0": 4}, true))
	f.Add(hostileNumelOverflowLegacy())
	f.Add(legacyCheckpointRaw(oneView(1, []int64{384 << 20}, []int64{0}), "0", 1, f32Bytes(7)))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, keys, err := DecodeWith(data, "fuzz.pt", fuzzOptions)
		checkDecoded(t, got, keys, err)
	})
}

// FuzzZipEntries packs fuzzed pickle and storage bytes into a well-formed
// archive (valid CRCs, so the mutations reach the state dict and the view
// checks rather than stopping at the zip reader), stored or deflated.
func FuzzZipEntries(f *testing.F) {
	storage := make([]float32, 24)
	for i := range storage {
		storage[i] = float32(i) + 0.5
	}
	f.Add(statePickle(fuzzSeedTensors(), pickleOptions{orderedDict: true}), f32Bytes(storage...), false)
	f.Add(oneView(1, []int64{384 << 20}, []int64{0}), f32Bytes(7), false)
	f.Add(oneView(1, []int64{1 << 40}, []int64{0}), f32Bytes(7), true)
	f.Add(oneView(1<<62, []int64{4}, []int64{1}), []byte{}, false)
	f.Add(oneView(4, []int64{2, 2}, []int64{1, 2}), f32Bytes(1, 2, 3, 4), true)
	f.Fuzz(func(t *testing.T, pkl, st []byte, deflate bool) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		method := zip.Store
		if deflate {
			method = zip.Deflate
		}
		for _, e := range []struct {
			name string
			data []byte
		}{{"archive/data.pkl", pkl}, {"archive/data/0", st}, {"archive/version", []byte("3\n")}} {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: method})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(e.data)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		got, keys, err := DecodeWith(buf.Bytes(), "fuzz.pt", fuzzOptions)
		checkDecoded(t, got, keys, err)
	})
}
