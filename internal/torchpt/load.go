// Package torchpt reads PyTorch state dicts written by torch.save, in both
// the zip format (default since torch 1.6) and the legacy format
// (_use_new_zipfile_serialization=False), without Python.
//
// A checkpoint is a pickle describing the dict, with tensors as strided
// views of storages whose bytes live outside the pickle (in zip entries,
// or after the pickle in the legacy format). This package runs the pickle
// on a small virtual machine that only knows the few Python globals a
// state dict needs (OrderedDict, the tensor/parameter rebuild functions and
// the storage classes); any other global is refused by name, so loading a
// file never executes anything. Tensors come back contiguous in C order,
// in their own dtype, as safetensors.Tensor values.
package torchpt

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/bits"
	"strings"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// legacyMagic is the number the legacy format pickles first
// (torch.serialization.MAGIC_NUMBER).
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// legacyProtocolVersion is torch.serialization.PROTOCOL_VERSION.
const legacyProtocolVersion = 1001

// Load reads the state dict saved at path with the default Options. It
// returns every tensor by its raw key (prefixes such as
// "_orig_mod.model." are kept; see CanonicalKey) and the keys in the
// order the file lists them.
func Load(path string) (map[string]safetensors.Tensor, []string, error) {
	return LoadWith(path, Options{})
}

// LoadWith is Load under explicit bounds. path must be a regular file (a
// FIFO or device is refused instead of blocking or reading forever); a zip
// archive is read entry by entry, a legacy file whole (so it must fit
// Options.MaxBytes).
func LoadWith(path string, o Options) (map[string]safetensors.Tensor, []string, error) {
	return LoadContext(context.Background(), path, o)
}

// LoadContext is LoadWith stopping when ctx ends: checked every
// safetensors.ChunkBytes read from the file or copied out of a storage,
// and between tensors, it then returns an error that names the file and
// what was being read and wraps ctx.Err(). Nothing is returned from an
// interrupted load.
func LoadContext(ctx context.Context, path string, o Options) (map[string]safetensors.Tensor, []string, error) {
	o = o.withDefaults()
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("torchpt: loading %s interrupted: %w", path, err)
	}
	f, size, err := safetensors.OpenRegular(path)
	if err != nil {
		return nil, nil, fmt.Errorf("torchpt: %w", err)
	}
	defer f.Close()
	head := make([]byte, min(size, 512))
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, nil, fmt.Errorf("torchpt: %s: %w", path, err)
	}
	var ck *checkpoint
	b := &budget{max: o.MaxBytes}
	if isZip(head) {
		ck, err = parseZip(ctx, f, size, o, b)
	} else if err = checkFormat(head); err == nil {
		if err = b.take(size, "reading the legacy-format file"); err == nil {
			var data []byte
			if data, err = readAllAt(ctx, f, size, "the legacy-format file"); err == nil {
				ck, err = parseLegacy(data, o, b)
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("torchpt: %s: %w", path, err)
	}
	return ck.materializeAll(ctx, path)
}

// readAllAt reads the first size bytes of ra in chunks of
// safetensors.ChunkBytes, checking ctx before each.
func readAllAt(ctx context.Context, ra io.ReaderAt, size int64, what string) ([]byte, error) {
	data := make([]byte, size)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading %s interrupted after %d of %d bytes: %w", what, off, size, err)
		}
		n, err := ra.ReadAt(data[off:min(off+safetensors.ChunkBytes, size)], off)
		off += int64(n)
		if err != nil && !(err == io.EOF && off == size) {
			return nil, fmt.Errorf("reading %s: %w", what, err)
		}
	}
	return data, nil
}

// Decode reads a state dict from the bytes of a torch.save file with the
// default Options. name (usually the path) labels error messages. The
// returned tensors do not alias data.
func Decode(data []byte, name string) (map[string]safetensors.Tensor, []string, error) {
	return DecodeWith(data, name, Options{})
}

// DecodeWith is Decode under explicit bounds; data itself is not counted
// against Options.MaxBytes, only what decoding allocates.
func DecodeWith(data []byte, name string, o Options) (map[string]safetensors.Tensor, []string, error) {
	return DecodeContext(context.Background(), data, name, o)
}

// DecodeContext is DecodeWith stopping when ctx ends, checked as
// LoadContext does.
func DecodeContext(ctx context.Context, data []byte, name string, o Options) (map[string]safetensors.Tensor, []string, error) {
	o = o.withDefaults()
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("torchpt: decoding %s interrupted: %w", name, err)
	}
	ck, err := parse(ctx, data, o, &budget{max: o.MaxBytes})
	if err != nil {
		return nil, nil, fmt.Errorf("torchpt: %s: %w", name, err)
	}
	return ck.materializeAll(ctx, name)
}

// materializeAll copies every planned view out of its storage.
func (ck *checkpoint) materializeAll(ctx context.Context, name string) (map[string]safetensors.Tensor, []string, error) {
	out := make(map[string]safetensors.Tensor, len(ck.keys))
	for _, k := range ck.keys {
		t, err := ck.refs[k].materialize(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("torchpt: %s: tensor %q: %w", name, k, err)
		}
		out[k] = t
	}
	return out, ck.keys, nil
}

// CanonicalKey maps a key of a reference training checkpoint to the model's
// own state-dict key: it removes a leading "_orig_mod." (added by
// torch.compile's wrapper) and then a leading "model." (the loss head that
// wraps the model), so "_orig_mod.model.inner.H_init" and
// "model.inner.H_init" both become "inner.H_init". Other keys are returned
// unchanged.
func CanonicalKey(k string) string {
	k = strings.TrimPrefix(k, "_orig_mod.")
	return strings.TrimPrefix(k, "model.")
}

// checkpoint is a parsed file before tensors are copied out.
type checkpoint struct {
	keys []string
	refs map[string]*tensorRef
}

func isZip(head []byte) bool { return bytes.HasPrefix(head, []byte("PK\x03\x04")) }

// checkFormat refuses what is neither format, judging by the first bytes
// (at least 262 of them when the file has them).
func checkFormat(head []byte) error {
	switch {
	case len(head) > 262 && string(head[257:262]) == "ustar":
		return fmt.Errorf("tar-format checkpoint (torch < 0.4) is not supported")
	case len(head) >= 2 && head[0] == opProto:
		return nil
	case len(head) == 0:
		return fmt.Errorf("empty file")
	}
	return fmt.Errorf("not a torch.save file (neither a zip archive nor a legacy pickle stream)")
}

// parse detects the format and returns the state dict's tensor views with
// their storage bytes attached and every view checked against b.
func parse(ctx context.Context, data []byte, o Options, b *budget) (*checkpoint, error) {
	if isZip(data) {
		return parseZip(ctx, bytes.NewReader(data), int64(len(data)), o, b)
	}
	if err := checkFormat(data); err != nil {
		return nil, err
	}
	return parseLegacy(data, o, b)
}

// stateDict turns the unpickled top-level object into ordered tensor views.
// Only a flat dict of tensors is accepted: that is what a state dict is,
// and anything else (a nested training checkpoint) would need a caller's
// decision about which part to use.
func stateDict(obj any) (*checkpoint, error) {
	d, ok := obj.(*pyDict)
	if !ok {
		return nil, fmt.Errorf("top-level object is a %s, not a state dict", pyTypeName(obj))
	}
	ck := &checkpoint{refs: make(map[string]*tensorRef, len(d.keys))}
	for i, k := range d.keys {
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("state dict key %v is a %s, not a str", k, pyTypeName(k))
		}
		t, ok := d.vals[i].(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("state dict entry %q is a %s, not a tensor", ks, pyTypeName(d.vals[i]))
		}
		ck.keys = append(ck.keys, ks)
		ck.refs[ks] = t
	}
	return ck, nil
}

// parseZip reads the zip format: <archive>/data.pkl is the pickle and
// <archive>/data/<key> holds each storage's raw bytes. The archive folder
// name is whatever the file was first saved as, so it is discovered.
// Every entry's declared sizes are checked before it is read: the pickle
// against Options.MaxPickleBytes, each storage against the size its
// element count implies, and all of it against the budget.
func parseZip(ctx context.Context, ra io.ReaderAt, size int64, o Options, b *budget) (*checkpoint, error) {
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return nil, fmt.Errorf("zip archive: %w (truncated or corrupt file?)", err)
	}
	files := map[string]*zip.File{}
	prefix := ""
	for _, f := range zr.File {
		files[f.Name] = f
		if dir, ok := strings.CutSuffix(f.Name, "/data.pkl"); ok && !strings.Contains(dir, "/") {
			if prefix != "" {
				return nil, fmt.Errorf("zip archive holds several data.pkl files")
			}
			prefix = dir + "/"
		}
	}
	if prefix == "" {
		return nil, fmt.Errorf("zip archive has no <name>/data.pkl: not a torch.save file")
	}
	pf := files[prefix+"data.pkl"]
	if err := checkZipEntry(pf, size, o); err != nil {
		return nil, err
	}
	if pf.UncompressedSize64 > uint64(o.MaxPickleBytes) {
		return nil, fmt.Errorf("zip entry %s declares %d bytes, more than the %d-byte pickle limit (Options.MaxPickleBytes)",
			pf.Name, pf.UncompressedSize64, o.MaxPickleBytes)
	}
	pkl, err := readZipEntry(ctx, pf, int64(pf.UncompressedSize64))
	if err != nil {
		return nil, err
	}
	bigEndian := false
	if f, ok := files[prefix+"byteorder"]; ok {
		// Written by torch >= 2.1; older files are little-endian.
		if f.UncompressedSize64 > 16 {
			return nil, fmt.Errorf("zip entry %s is %d bytes, want at most 16", f.Name, f.UncompressedSize64)
		}
		b, err := readZipEntry(ctx, f, int64(f.UncompressedSize64))
		if err != nil {
			return nil, err
		}
		switch string(b) {
		case "little":
		case "big":
			bigEndian = true
		default:
			return nil, fmt.Errorf("unknown byteorder %q", b)
		}
	}
	table := newStorageTable()
	u := &unpickler{data: pkl, findGlobal: findGlobal, persistentLoad: table.persistentLoad}
	obj, err := u.run()
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	if u.pos != len(pkl) {
		return nil, fmt.Errorf("data.pkl: %d bytes after STOP", len(pkl)-u.pos)
	}
	ck, err := stateDict(obj)
	if err != nil {
		return nil, err
	}
	// Every size is known now: check the storage entries and the views,
	// and commit the memory, before reading any tensor bytes.
	entries := make([]*zip.File, len(table.order))
	for i, key := range table.order {
		st := table.byKey[key]
		name := prefix + "data/" + key
		f, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("storage %s: zip entry %s is missing", key, name)
		}
		want, ok := mulBytes(st.numel, int64(st.dtype.Size()))
		if !ok {
			return nil, fmt.Errorf("storage %s: %d %s elements overflow a byte count", key, st.numel, st.dtype)
		}
		if f.UncompressedSize64 != uint64(want) {
			return nil, fmt.Errorf("storage %s: %s holds %d bytes, want %d (%d %s elements)", key, name, f.UncompressedSize64, want, st.numel, st.dtype)
		}
		if err := checkZipEntry(f, size, o); err != nil {
			return nil, fmt.Errorf("storage %s: %w", key, err)
		}
		if err := b.take(want, "storage "+key); err != nil {
			return nil, err
		}
		entries[i] = f
	}
	if err := ck.plan(o, b); err != nil {
		return nil, err
	}
	for i, key := range table.order {
		st := table.byKey[key]
		data, err := readZipEntry(ctx, entries[i], int64(entries[i].UncompressedSize64))
		if err != nil {
			return nil, err
		}
		if bigEndian {
			swapBytes(data, st.dtype.Size())
		}
		st.data = data
	}
	return ck, nil
}

// checkZipEntry checks an entry's declared sizes against the archive: a
// stored entry's bytes must lie in the file, a compressed one may not
// inflate more than Options.MaxExpansion times its compressed size.
func checkZipEntry(f *zip.File, archiveSize int64, o Options) error {
	if f.CompressedSize64 > uint64(archiveSize) {
		return fmt.Errorf("zip entry %s declares %d compressed bytes in a %d-byte file", f.Name, f.CompressedSize64, archiveSize)
	}
	switch f.Method {
	case zip.Store:
		if f.UncompressedSize64 != f.CompressedSize64 {
			return fmt.Errorf("zip entry %s is stored but declares %d bytes and %d compressed", f.Name, f.UncompressedSize64, f.CompressedSize64)
		}
	default:
		hi, lo := bits.Mul64(f.CompressedSize64, uint64(o.MaxExpansion))
		if f.UncompressedSize64 > minExpansionExempt && hi == 0 && f.UncompressedSize64 > lo {
			return fmt.Errorf("zip entry %s inflates %d compressed bytes to %d, more than %d times (a zip bomb? Options.MaxExpansion)",
				f.Name, f.CompressedSize64, f.UncompressedSize64, o.MaxExpansion)
		}
	}
	return nil
}

// readZipEntry reads one entry of exactly size bytes (its declared size,
// checked by the caller): the buffer is allocated once, and an entry
// whose data runs longer or shorter than declared is an error, so a
// forged size cannot make us allocate more than we planned. CRC errors
// from a corrupted entry surface here.
//
// The entry is read in chunks of safetensors.ChunkBytes with a check of
// ctx before each, so a cancelled load of a multi-gigabyte storage stops
// within milliseconds.
func readZipEntry(ctx context.Context, f *zip.File, size int64) ([]byte, error) {
	if f == nil {
		return nil, fmt.Errorf("zip entry missing")
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("zip entry %s: %w", f.Name, err)
	}
	defer rc.Close()
	b := make([]byte, size)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading zip entry %s interrupted after %d of %d bytes: %w", f.Name, off, size, err)
		}
		n, err := io.ReadFull(rc, b[off:min(off+safetensors.ChunkBytes, size)])
		off += int64(n)
		if errors.Is(err, zip.ErrFormat) {
			return nil, fmt.Errorf("zip entry %s: data runs past its declared %d bytes, or is corrupt", f.Name, size)
		} else if err != nil {
			return nil, fmt.Errorf("zip entry %s: %w (shorter than its declared %d bytes?)", f.Name, err, size)
		}
	}
	// Reading to the end makes the zip reader verify the CRC.
	var extra [1]byte
	if n, err := rc.Read(extra[:]); n != 0 || err != io.EOF {
		if n != 0 || err == nil || errors.Is(err, zip.ErrFormat) {
			return nil, fmt.Errorf("zip entry %s: data runs past its declared %d bytes, or is corrupt", f.Name, size)
		}
		return nil, fmt.Errorf("zip entry %s: %w", f.Name, err)
	}
	return b, nil
}

// swapBytes reverses each element of b in place (big-endian storage to the
// little-endian layout safetensors.Tensor uses).
func swapBytes(b []byte, size int) {
	if size == 1 {
		return
	}
	for i := 0; i+size <= len(b); i += size {
		e := b[i : i+size]
		for l, r := 0, size-1; l < r; l, r = l+1, r-1 {
			e[l], e[r] = e[r], e[l]
		}
	}
}

// parseLegacy reads the legacy format: pickles of the magic number, the
// protocol version and the saving system's info, then the object pickle,
// then a pickle of the storage keys in the order their bytes follow, each
// as a little-endian u64 element count and the raw elements. Storages
// alias data; the views are copied out of them.
func parseLegacy(data []byte, o Options, b *budget) (*checkpoint, error) {
	pos := 0
	next := func(what string, table *storageTable) (any, error) {
		u := &unpickler{data: data, pos: pos, findGlobal: findGlobal}
		if table != nil {
			u.persistentLoad = table.persistentLoad
		}
		v, err := u.run()
		if err != nil {
			return nil, fmt.Errorf("legacy format, %s: %w", what, err)
		}
		pos = u.pos
		return v, nil
	}
	magic, err := next("magic number", nil)
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, fmt.Errorf("legacy format: bad magic number %v (not a torch.save file)", magic)
	}
	version, err := next("protocol version", nil)
	if err != nil {
		return nil, err
	}
	if v, ok := version.(int64); !ok || v != legacyProtocolVersion {
		return nil, fmt.Errorf("legacy format: protocol version %v, want %d", version, legacyProtocolVersion)
	}
	info, err := next("system info", nil)
	if err != nil {
		return nil, err
	}
	if err := checkSysInfo(info); err != nil {
		return nil, err
	}
	table := newStorageTable()
	obj, err := next("state dict", table)
	if err != nil {
		return nil, err
	}
	ck, err := stateDict(obj)
	if err != nil {
		return nil, err
	}
	keysObj, err := next("storage keys", nil)
	if err != nil {
		return nil, err
	}
	keyList, ok := keysObj.(*pyList)
	if !ok {
		return nil, fmt.Errorf("legacy format: storage key list is a %s", pyTypeName(keysObj))
	}
	for _, k := range keyList.items {
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("legacy format: storage key %v is a %s", k, pyTypeName(k))
		}
		st, ok := table.byKey[key]
		if !ok {
			// Its dtype, hence its byte length, is unknown: cannot skip it.
			return nil, fmt.Errorf("legacy format: storage %s is listed but no tensor uses it", key)
		}
		if st.data != nil {
			return nil, fmt.Errorf("legacy format: storage %s listed twice", key)
		}
		if len(data)-pos < 8 {
			return nil, fmt.Errorf("legacy format: storage %s: file truncated at byte %d", key, pos)
		}
		n := binary.LittleEndian.Uint64(data[pos:])
		pos += 8
		if n != uint64(st.numel) {
			return nil, fmt.Errorf("legacy format: storage %s holds %d elements, the pickle says %d", key, n, st.numel)
		}
		size, ok := mulBytes(st.numel, int64(st.dtype.Size()))
		if !ok || size > int64(len(data)-pos) {
			return nil, fmt.Errorf("legacy format: storage %s: %d %s elements need more than the %d bytes left in the file (truncated?)",
				key, st.numel, st.dtype, len(data)-pos)
		}
		st.data = data[pos : pos+int(size) : pos+int(size)]
		pos += int(size)
	}
	for _, key := range table.order {
		if table.byKey[key].data == nil {
			return nil, fmt.Errorf("legacy format: storage %s is used but missing from the key list", key)
		}
	}
	if pos != len(data) {
		return nil, fmt.Errorf("legacy format: %d unexpected bytes after the last storage", len(data)-pos)
	}
	if err := ck.plan(o, b); err != nil {
		return nil, err
	}
	return ck, nil
}

// checkSysInfo refuses files saved on big-endian machines: their byte
// order handling differs across torch versions, and no such file exists
// here to test against, so guessing would risk silently wrong weights.
func checkSysInfo(info any) error {
	d, ok := info.(*pyDict)
	if !ok {
		return fmt.Errorf("legacy format: system info is a %s, not a dict", pyTypeName(info))
	}
	if i, ok := d.index["little_endian"]; ok {
		if le, ok := d.vals[i].(bool); ok && !le {
			return fmt.Errorf("legacy format: saved on a big-endian machine, not supported")
		}
	}
	return nil
}
