package torchpt

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// This file generates hostile checkpoints: files of a few hundred bytes
// to a megabyte that declare sizes far beyond what they hold. Each must be
// refused with a clear error, naming the file, before the load allocates
// more than a few megabytes.

// oneView is a state dict of one F32 tensor "w" viewing storage "0".
func oneView(numel int64, size, stride []int64) []byte {
	return statePickle([]fakeTensor{{key: "w", storageClass: "FloatStorage", storageKey: "0",
		numel: numel, size: size, stride: stride}}, pickleOptions{})
}

// hostileZeroStride is a 600-odd-byte file whose one tensor is a
// 1.5 GiB zero-stride view of a single float.
func hostileZeroStride(t testing.TB) []byte {
	return zipCheckpoint(t, oneView(1, []int64{384 << 20}, []int64{0}), map[string][]byte{"0": f32Bytes(7)}, nil)
}

// hostileHugeView declares a view of 2^40 elements (4 TiB) of one float.
func hostileHugeView(t testing.TB) []byte {
	return zipCheckpoint(t, oneView(1, []int64{1 << 40}, []int64{0}), map[string][]byte{"0": f32Bytes(7)}, nil)
}

// hostileNumelOverflow declares a storage of 2^62 F32 elements: 2^64
// bytes, which wraps to 0 in int64 arithmetic, so an empty zip entry
// "matches" it and the view reads past the end of the buffer.
func hostileNumelOverflow(t testing.TB) []byte {
	return zipCheckpoint(t, oneView(1<<62, []int64{4}, []int64{1}), map[string][]byte{"0": nil}, nil)
}

// hostileNumelOverflowLegacy is the same storage in the legacy format.
func hostileNumelOverflowLegacy() []byte {
	return legacyCheckpointRaw(oneView(1<<62, []int64{4}, []int64{1}), "0", 1<<62, nil)
}

// legacyCheckpointRaw is legacyCheckpoint with one storage whose element
// count is written as given, whatever its bytes.
func legacyCheckpointRaw(pkl []byte, key string, count uint64, raw []byte) []byte {
	full := legacyCheckpoint(pkl, []string{key}, map[string][]byte{key: raw}, map[string]int{key: 4}, true)
	// The count is the 8 bytes before the storage bytes at the end.
	n := len(full) - len(raw) - 8
	for i := 0; i < 8; i++ {
		full[n+i] = byte(count >> (8 * i))
	}
	return full
}

// deflatedZeros returns a raw deflate stream of n MiB of zeros, built by
// repeating the identical flushed block a compressor emits for each MiB
// after the first (so a 1 GiB bomb costs milliseconds), and its CRC-32.
func deflatedZeros(t testing.TB, mib int) ([]byte, uint32) {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	var segs [][]byte
	for i := 0; i < 3; i++ {
		w.Write(zero)
		w.Flush()
		segs = append(segs, bytes.Clone(buf.Bytes()))
		buf.Reset()
	}
	w.Close()
	if !bytes.Equal(segs[1], segs[2]) {
		t.Fatal("flate emits different blocks for identical input; cannot build the bomb")
	}
	out := bytes.Clone(segs[0])
	for i := 1; i < mib; i++ {
		out = append(out, segs[1]...)
	}
	out = append(out, buf.Bytes()...)
	crc := uint32(0)
	for i := 0; i < mib; i++ {
		crc = crc32.Update(crc, crc32.IEEETable, zero)
	}
	return out, crc
}

// zipWithRaw writes a torch-shaped archive whose entry name holds a raw
// deflate stream declaring size bytes; the other entries are stored.
func zipWithRaw(t testing.TB, name string, raw []byte, crc uint32, size uint64, stored map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "archive/" + name, Method: zip.Deflate,
		CRC32: crc, CompressedSize64: uint64(len(raw)), UncompressedSize64: size})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(raw)
	for k, v := range stored {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + k, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(v)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hostilePickleBomb is a 1 MB archive whose data.pkl inflates to 1 GiB.
func hostilePickleBomb(t testing.TB, mib int) []byte {
	raw, crc := deflatedZeros(t, mib)
	return zipWithRaw(t, "data.pkl", raw, crc, uint64(mib)<<20, nil)
}

// hostileLyingPickle declares a 1000-byte data.pkl whose stream inflates
// to mib MiB: the reader must stop at the declared size.
func hostileLyingPickle(t testing.TB, mib int) []byte {
	raw, crc := deflatedZeros(t, mib)
	return zipWithRaw(t, "data.pkl", raw, crc, 1000, nil)
}

// hostileStorageBomb is a valid state dict whose one storage, mib MiB of
// zeros, is deflated to about a thousandth of that.
func hostileStorageBomb(t testing.TB, mib int) []byte {
	raw, crc := deflatedZeros(t, mib)
	numel := int64(mib) << 18 // F32 elements in mib MiB
	pkl := oneView(numel, []int64{numel}, []int64{1})
	return zipWithRaw(t, "data/0", raw, crc, uint64(mib)<<20, map[string][]byte{"data.pkl": pkl})
}

// hostileCase is one generated hostile file and the error it must get.
type hostileCase struct {
	name string
	data []byte
	want string
}

func hostileCases(t testing.TB, bombMiB int) []hostileCase {
	return []hostileCase{
		{"zero-stride view", hostileZeroStride(t), "materialises 402653184 elements from a 1-element storage"},
		{"2^40-element view", hostileHugeView(t), "materialises 1099511627776 elements"},
		{"numel 2^62 (zip)", hostileNumelOverflow(t), "overflow a byte count"},
		{"numel 2^62 (legacy)", hostileNumelOverflowLegacy(), "need more than the"},
		{"pickle bomb", hostilePickleBomb(t, bombMiB), "archive/data.pkl inflates"},
		{"lying pickle size", hostileLyingPickle(t, bombMiB), "data runs past its declared 1000 bytes"},
		{"storage bomb", hostileStorageBomb(t, bombMiB), "zip bomb"},
	}
}

// TestHostileFiles decodes each hostile file from memory and from disk
// with the default options: each must fail naming the file and the
// problem, allocating at most a few MiB beyond the file itself.
func TestHostileFiles(t *testing.T) {
	dir := t.TempDir()
	for _, c := range hostileCases(t, 1024) {
		path := filepath.Join(dir, "hostile.pt")
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, from := range []string{"memory", "disk"} {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var err error
			if from == "memory" {
				_, _, err = Decode(c.data, path)
			} else {
				_, _, err = Load(path)
			}
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("%s (%d bytes, from %s): err = %v, want %q and the path", c.name, len(c.data), from, err, c.want)
			}
			if alloc > 8<<20 {
				t.Errorf("%s (%d bytes, from %s): allocated %d MiB", c.name, len(c.data), from, alloc>>20)
			}
		}
	}
}

// TestExpandedViewsOnRequest checks that a zero-stride view is still
// available to a caller that asks for it, within its budget.
func TestExpandedViewsOnRequest(t *testing.T) {
	data := zipCheckpoint(t, oneView(2, []int64{3, 2}, []int64{0, 1}), map[string][]byte{"0": f32Bytes(1, 2)}, nil)
	if _, _, err := Decode(data, "expand.pt"); err == nil || !strings.Contains(err.Error(), "AllowExpandedViews") {
		t.Fatalf("default options: err = %v, want the expanded view refused", err)
	}
	got, _, err := DecodeWith(data, "expand.pt", Options{AllowExpandedViews: true})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := got["w"].Float32(); len(v) != 6 || v[0] != 1 || v[1] != 2 || v[4] != 1 || v[5] != 2 {
		t.Errorf("expanded view = %v, want [1 2 1 2 1 2]", v)
	}
	// The budget still bounds what the caller allowed.
	_, _, err = DecodeWith(zipCheckpoint(t, oneView(1, []int64{1 << 20}, []int64{0}), map[string][]byte{"0": f32Bytes(7)}, nil),
		"expand.pt", Options{AllowExpandedViews: true, MaxBytes: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "memory budget") {
		t.Errorf("4 MiB view under a 1 MiB budget: err = %v", err)
	}
}

// TestBudgetCountsStoragesAndCopies checks the accounting: a 1 KiB
// storage copied into a 1 KiB tensor needs 2 KiB.
func TestBudgetCountsStoragesAndCopies(t *testing.T) {
	data := zipCheckpoint(t, oneView(256, []int64{256}, []int64{1}), map[string][]byte{"0": make([]byte, 1024)}, nil)
	if _, _, err := DecodeWith(data, "b.pt", Options{MaxBytes: 2048}); err != nil {
		t.Errorf("2 KiB budget: %v", err)
	}
	if _, _, err := DecodeWith(data, "b.pt", Options{MaxBytes: 2047}); err == nil || !strings.Contains(err.Error(), `tensor "w" needs 1024 bytes`) {
		t.Errorf("2047-byte budget: err = %v", err)
	}
}

// TestPickleLimit refuses a data.pkl larger than Options.MaxPickleBytes
// by its declared size, before reading it.
func TestPickleLimit(t *testing.T) {
	pkl := oneView(1, []int64{1}, []int64{1})
	data := zipCheckpoint(t, pkl, map[string][]byte{"0": f32Bytes(1)}, nil)
	if _, _, err := DecodeWith(data, "p.pt", Options{MaxPickleBytes: int64(len(pkl))}); err != nil {
		t.Errorf("limit = pickle size: %v", err)
	}
	_, _, err := DecodeWith(data, "p.pt", Options{MaxPickleBytes: int64(len(pkl)) - 1})
	if err == nil || !strings.Contains(err.Error(), "pickle limit") {
		t.Errorf("limit below the pickle size: err = %v", err)
	}
}

// TestPickleWorkBound feeds a pickle that copies one large list again
// and again through the memo: a few bytes per copy of thousands of items.
func TestPickleWorkBound(t *testing.T) {
	p := &pickleWriter{}
	p.op(opProto, 2)
	p.global("collections", "OrderedDict")
	p.op(opEmptyList)
	p.put() // memo 1
	p.op(opMark)
	for i := 0; i < 60000; i++ {
		p.int(int64(i))
		p.op(opNone, opTuple2)
	}
	p.op(opAppends, opPop)
	for i := 0; i < 100000; i++ {
		p.op(opBinGet, 0, opBinGet, 1, opTuple1, opReduce, opPop)
	}
	p.op(opEmptyDict, opStop)
	u := &unpickler{data: p.Bytes(), findGlobal: findGlobal}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := u.run()
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "more than 1048576 values") {
		t.Errorf("err = %v, want the work bound", err)
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > 512<<20 {
		t.Errorf("allocated %d MiB", a>>20)
	}
}

// TestRegularFilesOnly refuses a FIFO and a device at once instead of
// blocking on them.
func TestRegularFilesOnly(t *testing.T) {
	for _, path := range []string{"/dev/zero", mkfifo(t)} {
		if path == "" {
			continue
		}
		if _, _, err := Load(path); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s: err = %v", path, err)
		}
	}
}
