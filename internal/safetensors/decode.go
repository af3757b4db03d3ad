package safetensors

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
)

// metadataKey is the reserved header entry holding free-form string pairs.
const metadataKey = "__metadata__"

// File is a decoded safetensors file.
type File struct {
	// Names lists the tensor names in the order the header lists them.
	// Files written by this package (and the golden fixtures) list them
	// in blob order: by element size, largest first, then by name.
	Names []string
	// Tensors maps every name in Names to its tensor.
	Tensors map[string]Tensor
	// Metadata holds the header's "__metadata__" pairs; empty, never
	// nil, when the file has none.
	Metadata map[string]string
}

// ReadOptions bound what reading one file may cost; the zero value means
// the documented defaults.
type ReadOptions struct {
	// MaxBytes refuses a larger file before reading it
	// (0: DefaultMaxFileBytes).
	MaxBytes int64
	// MaxHeaderBytes refuses a longer JSON header (0:
	// DefaultMaxHeaderBytes).
	MaxHeaderBytes int64
}

const (
	// DefaultMaxFileBytes (64 GiB) is far above any checkpoint of this
	// project; a file is read whole, so it bounds the memory ReadFile
	// allocates.
	DefaultMaxFileBytes = 64 << 30
	// DefaultMaxHeaderBytes is the limit of the format's reference
	// implementation (100 MB, about a million tensor descriptions).
	DefaultMaxHeaderBytes = 100_000_000
)

func (o ReadOptions) withDefaults() ReadOptions {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxFileBytes
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return o
}

// ReadFile reads and decodes the safetensors file at path with the
// default ReadOptions. The tensors own the memory read from disk.
func ReadFile(path string) (*File, error) {
	return ReadFileWith(path, ReadOptions{})
}

// ReadFileWith is ReadFile under explicit bounds. path must be a regular
// file: a FIFO or device is refused at once instead of blocking the
// reader or feeding it without end.
func ReadFileWith(path string, o ReadOptions) (*File, error) {
	return ReadFileContext(context.Background(), path, o)
}

// ReadFileContext is ReadFileWith stopping when ctx ends: the file is
// read in chunks of ChunkBytes with a check of ctx before each, and the
// error then wraps ctx.Err() and names the file.
func ReadFileContext(ctx context.Context, path string, o ReadOptions) (*File, error) {
	o = o.withDefaults()
	data, err := ReadRegularContext(ctx, path, o.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return DecodeWith(data, path, o)
}

// headerEntry is one tensor description of the JSON header. Pointers tell
// a missing field from a zero value, so that {"dtype":"F32"} alone is an
// error instead of a silent empty scalar at offset 0.
type headerEntry struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

// span is the byte range of one tensor inside the blob, kept to check
// that no two tensors overlap.
type span struct {
	name       string
	begin, end int
}

// Decode parses a safetensors file held in data with the default
// ReadOptions. name (usually the path) only labels error messages. The
// returned tensors' Data slices alias data (no copy), capped so that
// appending to one cannot overwrite its neighbour; copy them if data is
// going to be reused.
func Decode(data []byte, name string) (*File, error) {
	return DecodeWith(data, name, ReadOptions{})
}

// DecodeWith is Decode with an explicit header bound (ReadOptions.MaxBytes
// does not apply: data is already in memory).
func DecodeWith(data []byte, name string, o ReadOptions) (*File, error) {
	o = o.withDefaults()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("safetensors: %s: %s", name, fmt.Sprintf(format, args...))
	}
	if len(data) < 8 {
		return nil, fail("file is %d bytes, shorter than the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > uint64(len(data)-8) {
		return nil, fail("header length %d is larger than the %d bytes after the length field (truncated file?)", n, len(data)-8)
	}
	if n > uint64(o.MaxHeaderBytes) {
		return nil, fail("header length %d is more than the %d-byte limit (ReadOptions.MaxHeaderBytes)", n, o.MaxHeaderBytes)
	}
	header := data[8 : 8+int(n)]
	blob := data[8+int(n):]

	keys, raw, err := parseHeaderObject(header)
	if err != nil {
		return nil, fail("invalid JSON header: %v", err)
	}
	f := &File{Tensors: make(map[string]Tensor, len(keys)), Metadata: map[string]string{}}
	var spans []span
	for _, key := range keys {
		if key == metadataKey {
			if err := json.Unmarshal(raw[key], &f.Metadata); err != nil {
				return nil, fail("%s must map strings to strings: %v", metadataKey, err)
			}
			if f.Metadata == nil { // "__metadata__": null
				f.Metadata = map[string]string{}
			}
			continue
		}
		t, sp, err := decodeEntry(key, raw[key], blob)
		if err != nil {
			return nil, fail("tensor %q: %v", key, err)
		}
		f.Names = append(f.Names, key)
		f.Tensors[key] = t
		spans = append(spans, sp)
	}
	if err := checkOverlap(spans); err != nil {
		return nil, fail("%v", err)
	}
	return f, nil
}

// parseHeaderObject splits the header's top-level JSON object into its keys
// (in file order, which a plain map would lose) and raw values. Duplicate
// keys are rejected: which copy would win is undefined across readers.
func parseHeaderObject(header []byte) ([]string, map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("header is not a JSON object")
	}
	var keys []string
	raw := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key := tok.(string) // inside an object the decoder only yields string keys
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("value of %q: %v", key, err)
		}
		if _, dup := raw[key]; dup {
			return nil, nil, fmt.Errorf("duplicate key %q", key)
		}
		keys = append(keys, key)
		raw[key] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, err
	}
	// Only the space padding the writer adds may follow the object.
	rest := header[dec.InputOffset():]
	if len(bytes.TrimRight(rest, " \t\r\n")) != 0 {
		return nil, nil, fmt.Errorf("unexpected data after the header object")
	}
	return keys, raw, nil
}

// decodeEntry validates one tensor description against the blob and
// returns the tensor with its Data aliasing the blob.
func decodeEntry(key string, raw json.RawMessage, blob []byte) (Tensor, span, error) {
	var e headerEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Tensor{}, span{}, fmt.Errorf("bad description: %v", err)
	}
	if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
		return Tensor{}, span{}, fmt.Errorf("description needs dtype, shape and data_offsets")
	}
	dt := DType(*e.DType)
	size := dt.Size()
	if size == 0 {
		return Tensor{}, span{}, fmt.Errorf("unknown dtype %q", *e.DType)
	}
	shape := make([]int, len(*e.Shape))
	for i, d := range *e.Shape {
		if d < 0 {
			return Tensor{}, span{}, fmt.Errorf("negative dimension %d in shape %v", d, *e.Shape)
		}
		if int64(int(d)) != d {
			return Tensor{}, span{}, fmt.Errorf("dimension %d does not fit an int", d)
		}
		shape[i] = int(d)
	}
	numel, err := checkedNumel(shape, size)
	if err != nil {
		return Tensor{}, span{}, err
	}
	offs := *e.DataOffsets
	if len(offs) != 2 {
		return Tensor{}, span{}, fmt.Errorf("data_offsets has %d entries, want [begin, end]", len(offs))
	}
	begin, end := offs[0], offs[1]
	if begin < 0 || end < begin {
		return Tensor{}, span{}, fmt.Errorf("data_offsets [%d, %d] are not an increasing range", begin, end)
	}
	if end > int64(len(blob)) {
		return Tensor{}, span{}, fmt.Errorf("data_offsets [%d, %d] run past the %d-byte data blob", begin, end, len(blob))
	}
	if want := int64(numel) * int64(size); end-begin != want {
		return Tensor{}, span{}, fmt.Errorf("%s shape %v needs %d bytes, data_offsets [%d, %d] hold %d", dt, shape, want, begin, end, end-begin)
	}
	b, en := int(begin), int(end)
	return Tensor{DType: dt, Shape: shape, Data: blob[b:en:en]}, span{key, b, en}, nil
}

// checkOverlap rejects two tensors sharing bytes. Gaps between tensors
// are tolerated: they waste space but cannot make a reader misread.
func checkOverlap(spans []span) error {
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	prev := -1
	for i, s := range spans {
		if s.begin == s.end { // empty tensors own no bytes
			continue
		}
		if prev >= 0 && s.begin < spans[prev].end {
			return fmt.Errorf("tensors %q [%d, %d] and %q [%d, %d] overlap",
				spans[prev].name, spans[prev].begin, spans[prev].end, s.name, s.begin, s.end)
		}
		prev = i
	}
	return nil
}
