package data

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNPYHeaderMatchesNumPy checks the exact bytes np.save (NumPy >= 1.24)
// writes for np.arange(3, dtype=np.int32) and a uint8 [2, 81] array: the
// sorted dict, 21-digit growth room, padding to 64 bytes.
func TestNPYHeaderMatchesNumPy(t *testing.T) {
	dict := "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }"
	want := "\x93NUMPY\x01\x00\x76\x00" + dict + strings.Repeat(" ", 128-10-len(dict)-1) + "\n"
	got := string(npyHeaderBytes(Int32, []int{3}))
	if got != want {
		t.Fatalf("header\n got %q\nwant %q", got, want)
	}
	h := npyHeaderBytes(Uint8, []int{2, 81})
	if len(h)%64 != 0 || !bytes.HasPrefix(h[10:], []byte("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 81), }")) {
		t.Fatalf("uint8 header %q", h)
	}
	// 0-d arrays have no growth room and the empty tuple.
	if h := npyHeaderBytes(Int64, nil); !bytes.Contains(h, []byte("'shape': (), }")) || len(h)%64 != 0 {
		t.Fatalf("0-d header %q", h)
	}
}

// TestNPYRoundTrip writes every dtype and reads it back through both the
// heap reader and the memory map.
func TestNPYRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, dt := range []DType{Uint8, Int8, Uint16, Int16, Uint32, Int32, Uint64, Int64} {
		vals := []int64{0, 1, 5, 100, 7, 3}
		if dt[0] == 'i' {
			vals[4] = -7
		}
		raw := make([]byte, len(vals)*dt.Size())
		for i, v := range vals {
			switch dt.Size() {
			case 1:
				raw[i] = byte(v)
			case 2:
				binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
			case 4:
				binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
			case 8:
				binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
			}
		}
		a, err := NewArray(dt, []int{2, 3}, raw)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, string(dt)+".npy")
		if err := WriteNPYFile(path, a); err != nil {
			t.Fatal(err)
		}
		for name, open := range map[string]func(string) (*Array, error){"read": ReadNPY, "mmap": OpenNPY} {
			b, err := open(path)
			if err != nil {
				t.Fatalf("%s %s: %v", name, dt, err)
			}
			if b.DType != dt || len(b.Shape) != 2 || b.Shape[0] != 2 || b.Shape[1] != 3 {
				t.Fatalf("%s %s: got %s %v", name, dt, b.DType, b.Shape)
			}
			got := make([]int32, 6)
			b.CopyInt32(got, 0)
			for i, v := range vals {
				if b.At(i) != v || got[i] != int32(v) {
					t.Errorf("%s %s: element %d = %d / %d, want %d", name, dt, i, b.At(i), got[i], v)
				}
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestNPYStreamWriter checks the streamed writer produces the same file as
// the one-shot writer and refuses short or long data.
func TestNPYStreamWriter(t *testing.T) {
	dir := t.TempDir()
	w, err := CreateNPY(filepath.Join(dir, "s.npy"), Uint8, []int{2, 2})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte{1, 2})
	w.Write([]byte{3, 4})
	if _, err := w.Write([]byte{5}); err == nil {
		t.Error("write past the shape accepted")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a, _ := NewArray(Uint8, []int{2, 2}, []byte{1, 2, 3, 4})
	WriteNPYFile(filepath.Join(dir, "o.npy"), a)
	x, _ := os.ReadFile(filepath.Join(dir, "s.npy"))
	y, _ := os.ReadFile(filepath.Join(dir, "o.npy"))
	if !bytes.Equal(x, y) {
		t.Error("streamed and one-shot files differ")
	}
	w, _ = CreateNPY(filepath.Join(dir, "short.npy"), Uint8, []int{2, 2})
	w.Write([]byte{1})
	if err := w.Close(); err == nil {
		t.Error("short stream accepted")
	}
}

// TestNPYRejects lists corruptions the reader must refuse, with a piece of
// the message that explains each.
func TestNPYRejects(t *testing.T) {
	good := append(npyHeaderBytes(Int32, []int{2}), 1, 0, 0, 0, 2, 0, 0, 0)
	if _, err := ParseNPY(good); err != nil {
		t.Fatalf("good file rejected: %v", err)
	}
	hdr := func(dict string) []byte {
		b := []byte(npyMagic + "\x01\x00")
		b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)+1))
		return append(append(b, dict...), '\n')
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"magic", append([]byte("NUMPY\x93"), good[6:]...), "bad magic"},
		{"short", good[:5], "bad magic"},
		{"version", append(append([]byte(npyMagic), 9, 0), good[8:]...), "version"},
		{"truncated data", good[:len(good)-1], "needs 8"},
		{"extra data", append(append([]byte{}, good...), 0), "needs 8"},
		{"header length", append(append([]byte(npyMagic), 1, 0, 0xff, 0xff), good[10:]...), "header claims"},
		{"float", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }"), "unsupported dtype"},
		{"big endian", hdr("{'descr': '>i4', 'fortran_order': False, 'shape': (0,), }"), "not little endian"},
		{"fortran", hdr("{'descr': '<i4', 'fortran_order': True, 'shape': (0,), }"), "Fortran"},
		{"structured", hdr("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (0,), }"), "structured"},
		{"missing key", hdr("{'descr': '<i4', 'shape': (0,), }"), "lacks"},
		{"unknown key", hdr("{'descr': '<i4', 'fortran_order': False, 'shape': (0,), 'x': 1}"), "unknown key"},
		{"negative", hdr("{'descr': '<i4', 'fortran_order': False, 'shape': (-1,), }"), "non-integer"},
		{"huge", hdr("{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999, 99999999999), }"), "too large"},
		{"overflow", hdr("{'descr': '<i8', 'fortran_order': False, 'shape': (4000000000, 4000000000, 4000000000), }"), "too large"},
		{"not dict", hdr("['descr']"), "not a dict"},
	}
	for _, c := range cases {
		_, err := ParseNPY(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// Errors from files name the file.
	path := filepath.Join(t.TempDir(), "bad.npy")
	os.WriteFile(path, good[:20], 0o644)
	for _, open := range []func(string) (*Array, error){ReadNPY, OpenNPY} {
		if _, err := open(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v does not name %s", err, path)
		}
	}
}

// FuzzParseNPY feeds arbitrary bytes to the parser: it must never panic,
// and whatever it accepts must be consistent and survive a rewrite.
func FuzzParseNPY(f *testing.F) {
	f.Add(append(npyHeaderBytes(Int32, []int{2}), 1, 0, 0, 0, 2, 0, 0, 0))
	f.Add(append(npyHeaderBytes(Uint8, []int{2, 2}), 1, 2, 3, 4))
	f.Add(npyHeaderBytes(Int64, []int{0, 900}))
	f.Add(npyHeaderBytes(Uint16, nil))
	f.Add([]byte(npyMagic + "\x02\x00\x10\x00\x00\x00{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }\n\x07"))
	f.Add([]byte(npyMagic + "\x01\x00\x05\x00{}   "))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseNPY(b)
		if err != nil {
			return
		}
		n, err := numElements(a.Shape)
		if err != nil || int64(a.Len()) != n || len(a.Bytes()) != a.Len()*a.DType.Size() {
			t.Fatalf("accepted inconsistent array %s %v with %d bytes", a.DType, a.Shape, len(a.Bytes()))
		}
		var buf bytes.Buffer
		if err := WriteNPY(&buf, a); err != nil {
			t.Fatal(err)
		}
		b2, err := ParseNPY(buf.Bytes())
		if err != nil || !bytes.Equal(b2.Bytes(), a.Bytes()) || b2.DType != a.DType {
			t.Fatalf("rewrite does not parse back: %v", err)
		}
	})
}
