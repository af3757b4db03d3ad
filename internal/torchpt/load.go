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
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// legacyMagic is the number the legacy format pickles first
// (torch.serialization.MAGIC_NUMBER).
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// legacyProtocolVersion is torch.serialization.PROTOCOL_VERSION.
const legacyProtocolVersion = 1001

// Load reads the state dict saved at path. It returns every tensor by its
// raw key (prefixes such as "_orig_mod.model." are kept; see CanonicalKey)
// and the keys in the order the file lists them.
func Load(path string) (map[string]safetensors.Tensor, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("torchpt: %w", err)
	}
	return Decode(data, path)
}

// Decode reads a state dict from the bytes of a torch.save file. name
// (usually the path) labels error messages. The returned tensors do not
// alias data.
func Decode(data []byte, name string) (map[string]safetensors.Tensor, []string, error) {
	ck, err := parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("torchpt: %s: %w", name, err)
	}
	out := make(map[string]safetensors.Tensor, len(ck.keys))
	for _, k := range ck.keys {
		t, err := ck.refs[k].materialize()
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

// parse detects the format and returns the state dict's tensor views with
// their storage bytes attached.
func parse(data []byte) (*checkpoint, error) {
	switch {
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		return parseZip(data)
	case len(data) > 262 && string(data[257:262]) == "ustar":
		return nil, fmt.Errorf("tar-format checkpoint (torch < 0.4) is not supported")
	case len(data) >= 2 && data[0] == opProto:
		return parseLegacy(data)
	case len(data) == 0:
		return nil, fmt.Errorf("empty file")
	}
	return nil, fmt.Errorf("not a torch.save file (neither a zip archive nor a legacy pickle stream)")
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
func parseZip(data []byte) (*checkpoint, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
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
	pkl, err := readZipEntry(files[prefix+"data.pkl"], -1)
	if err != nil {
		return nil, err
	}
	bigEndian := false
	if f, ok := files[prefix+"byteorder"]; ok {
		// Written by torch >= 2.1; older files are little-endian.
		b, err := readZipEntry(f, 16)
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
	for _, key := range table.order {
		st := table.byKey[key]
		name := prefix + "data/" + key
		f, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("storage %s: zip entry %s is missing", key, name)
		}
		want := st.numel * int64(st.dtype.Size())
		b, err := readZipEntry(f, want)
		if err != nil {
			return nil, err
		}
		if int64(len(b)) != want {
			return nil, fmt.Errorf("storage %s: %s holds %d bytes, want %d (%d %s elements)", key, name, len(b), want, st.numel, st.dtype)
		}
		if bigEndian {
			swapBytes(b, st.dtype.Size())
		}
		st.data = b
	}
	return ck, nil
}

// readZipEntry reads one entry, refusing more than limit bytes (limit < 0:
// no limit beyond the archive's own size) so a forged size cannot make us
// allocate gigabytes. CRC errors from a corrupted entry surface here.
func readZipEntry(f *zip.File, limit int64) ([]byte, error) {
	if f == nil {
		return nil, fmt.Errorf("zip entry missing")
	}
	if limit >= 0 && f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("zip entry %s is %d bytes, want at most %d", f.Name, f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("zip entry %s: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
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
// as a little-endian u64 element count and the raw elements.
func parseLegacy(data []byte) (*checkpoint, error) {
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
		size := st.numel * int64(st.dtype.Size())
		if int64(len(data)-pos) < size {
			return nil, fmt.Errorf("legacy format: storage %s: file truncated (%d bytes left, want %d)", key, len(data)-pos, size)
		}
		st.data = append([]byte(nil), data[pos:pos+int(size)]...)
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
