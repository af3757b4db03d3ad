package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadFileRefusesNonRegular gives ReadFile a FIFO nobody writes to
// and a device that never ends: both must be refused at once.
func TestReadFileRefusesNonRegular(t *testing.T) {
	paths := []string{"/dev/zero"}
	if p := mkfifo(t); p != "" {
		paths = append(paths, p)
	}
	for _, p := range paths {
		done := make(chan error, 1)
		go func() { _, err := ReadFile(p); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), p) {
				t.Errorf("%s: err = %v, want a refusal naming the file", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: ReadFile still blocked after 5 s", p)
		}
	}
}

// TestReadBounds checks the file-size and header-length bounds.
func TestReadBounds(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, sampleTensors(), nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "w.safetensors")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	size := int64(buf.Len())
	if _, err := ReadFileWith(p, ReadOptions{MaxBytes: size}); err != nil {
		t.Errorf("limit = file size: %v", err)
	}
	if _, err := ReadFileWith(p, ReadOptions{MaxBytes: size - 1}); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("limit below the file size: err = %v", err)
	}
	hdr := int64(buf.Bytes()[0]) | int64(buf.Bytes()[1])<<8
	if _, err := DecodeWith(buf.Bytes(), p, ReadOptions{MaxHeaderBytes: hdr}); err != nil {
		t.Errorf("header limit = header length: %v", err)
	}
	if _, err := DecodeWith(buf.Bytes(), p, ReadOptions{MaxHeaderBytes: hdr - 1}); err == nil || !strings.Contains(err.Error(), "MaxHeaderBytes") {
		t.Errorf("header limit below the header length: err = %v", err)
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder, seeded with a valid
// file and hostile headers: it must return a File whose every tensor
// validates, or an error, and never panic or allocate beyond the input.
func FuzzDecode(f *testing.F) {
	var good bytes.Buffer
	if err := Encode(&good, sampleTensors(), map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f32 := make([]byte, 8)
	for _, h := range []string{
		`{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}}`,
		`{"a":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,8]}}`,
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,9223372036854775807]}}`,
		`{"a":{"dtype":"BF16","shape":[0,1152921504606846976],"data_offsets":[0,0]}}`,
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`,
		`{"__metadata__":{"k":"v"},"a":{"dtype":"U8","shape":[],"data_offsets":[7,8]}}`,
	} {
		f.Add(rawFile(h, f32))
	}
	huge := rawFile(`{}`, nil)
	huge[7] = 0x40 // header length 2^62
	f.Add(huge)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Decode(data, "fuzz.safetensors")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.safetensors") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, name := range file.Names {
			tn := file.Tensors[name]
			if err := tn.Validate(); err != nil {
				t.Fatalf("tensor %q decoded but does not validate: %v", name, err)
			}
			if len(tn.Data) > len(data) {
				t.Fatalf("tensor %q holds %d bytes from a %d-byte file", name, len(tn.Data), len(data))
			}
		}
	})
}
