package safetensors

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// blobOrder returns the tensor names in the order their data is laid out:
// element size descending, then name. Largest elements first keeps every
// tensor naturally aligned inside the blob (the header is padded to a
// multiple of 8, so the blob itself starts 8-aligned), which is what the
// reference writer does and what lets a reader map the file and use the
// bytes in place. Within one element size the order is by name, so the
// output is deterministic.
func blobOrder(tensors map[string]Tensor) []string {
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		si, sj := tensors[names[i]].DType.Size(), tensors[names[j]].DType.Size()
		if si != sj {
			return si > sj
		}
		return names[i] < names[j]
	})
	return names
}

// validateAll checks every tensor before a single byte is written, so that
// an invalid input never produces a partial file.
func validateAll(tensors map[string]Tensor) error {
	for _, name := range blobOrder(tensors) {
		if name == "" {
			return fmt.Errorf("safetensors: empty tensor name")
		}
		if name == metadataKey {
			return fmt.Errorf("safetensors: %q is reserved and cannot name a tensor", metadataKey)
		}
		if err := tensors[name].Validate(); err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
	}
	return nil
}

// jsonString encodes s as a JSON string without Go's HTML escaping of
// <, > and &, which other safetensors writers do not apply.
func jsonString(buf *bytes.Buffer, s string) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	buf.Write(bytes.TrimRight(b.Bytes(), "\n"))
}

// buildHeader renders the compact JSON header (tensors in blob order, then
// "__metadata__" with sorted keys) padded with spaces so that its length
// is a multiple of 8.
func buildHeader(tensors map[string]Tensor, names []string, metadata map[string]string) []byte {
	var h bytes.Buffer
	h.WriteByte('{')
	offset := 0
	for i, name := range names {
		t := tensors[name]
		if i > 0 {
			h.WriteByte(',')
		}
		jsonString(&h, name)
		h.WriteString(`:{"dtype":`)
		jsonString(&h, string(t.DType))
		h.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := offset + len(t.Data)
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	if len(metadata) > 0 {
		if len(names) > 0 {
			h.WriteByte(',')
		}
		jsonString(&h, metadataKey)
		h.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			jsonString(&h, k)
			h.WriteByte(':')
			jsonString(&h, metadata[k])
		}
		h.WriteByte('}')
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	return h.Bytes()
}

// Encode writes tensors and metadata (which may be nil) to w in the
// safetensors format. Every tensor is validated first; on a validation
// error nothing is written.
func Encode(w io.Writer, tensors map[string]Tensor, metadata map[string]string) error {
	return EncodeContext(context.Background(), w, tensors, metadata)
}

// EncodeContext is Encode stopping when ctx ends: tensor data is written
// in chunks of ChunkBytes with a check of ctx before each, and the error
// then names the tensor reached and wraps ctx.Err(). What was written to w
// before is not undone; WriteFileContext removes its partial file.
func EncodeContext(ctx context.Context, w io.Writer, tensors map[string]Tensor, metadata map[string]string) error {
	if err := validateAll(tensors); err != nil {
		return err
	}
	names := blobOrder(tensors)
	header := buildHeader(tensors, names, metadata)
	var lenField [8]byte
	binary.LittleEndian.PutUint64(lenField[:], uint64(len(header)))
	if _, err := w.Write(lenField[:]); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	for _, name := range names {
		for b := tensors[name].Data; ; b = b[min(len(b), ChunkBytes):] {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("safetensors: writing tensor %q interrupted: %w", name, err)
			}
			if len(b) == 0 {
				break
			}
			if _, err := w.Write(b[:min(len(b), ChunkBytes)]); err != nil {
				return fmt.Errorf("safetensors: %w", err)
			}
		}
	}
	return nil
}

// WriteFile writes tensors and metadata to path atomically: the file is
// written under a temporary name in the same directory, flushed to disk,
// then renamed over path, and the directory is synced so the rename itself
// survives a crash. Readers therefore see either the old file or the
// complete new one. On any error the temporary file is removed and an
// existing file at path is left untouched, except when only the final
// directory sync fails: the new file is then in place and the error says
// so. The new file gets mode 0644.
func WriteFile(path string, tensors map[string]Tensor, metadata map[string]string) error {
	return WriteFileContext(context.Background(), path, tensors, metadata)
}

// WriteFileContext is WriteFile stopping when ctx ends (checked every
// ChunkBytes of tensor data and before the final rename): the temporary
// file is removed, an existing file at path is left as it was, and the
// error names path and wraps ctx.Err().
func WriteFileContext(ctx context.Context, path string, tensors map[string]Tensor, metadata map[string]string) (err error) {
	// Validate before creating anything: a bad tensor must not even leave
	// a temporary file behind.
	if err := validateAll(tensors); err != nil {
		return fmt.Errorf("%w (writing %s)", err, path)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	tmpName := tmp.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				tmp.Close()
			}
			os.Remove(tmpName)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err = EncodeContext(ctx, bw, tensors, metadata); err != nil {
		return fmt.Errorf("%w (writing %s)", err, path)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	// Flushing a large file to disk can take seconds: not for a write
	// that is being abandoned.
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("safetensors: writing %s interrupted: %w", path, cerr)
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: syncing %s: %w", path, err)
	}
	closed = true
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("safetensors: writing %s interrupted: %w", path, cerr)
		return err
	}
	if err = os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("safetensors: replacing %s: %w", path, err)
	}
	// The data is in place; a failure to sync the directory only weakens
	// crash durability of the rename, but it is still reported.
	if serr := syncDir(dir); serr != nil {
		return fmt.Errorf("safetensors: wrote %s but syncing its directory failed: %w", path, serr)
	}
	return nil
}

// syncDir fsyncs a directory so that a rename inside it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	return errors.Join(serr, cerr)
}
