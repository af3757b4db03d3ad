package data

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// DType names an integer element type the way NumPy's `descr` does, without
// the byte-order character: "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8".
// Only integer types exist in the dataset layout, so only they are modelled.
type DType string

// The integer dtypes a dataset file may hold.
const (
	Uint8  DType = "u1"
	Int8   DType = "i1"
	Uint16 DType = "u2"
	Int16  DType = "i2"
	Uint32 DType = "u4"
	Int32  DType = "i4"
	Uint64 DType = "u8"
	Int64  DType = "i8"
)

// Size is the number of bytes of one element, 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case Uint8, Int8:
		return 1
	case Uint16, Int16:
		return 2
	case Uint32, Int32:
		return 4
	case Uint64, Int64:
		return 8
	}
	return 0
}

// descr is the NumPy descr string np.save writes for d: single bytes have no
// byte order ('|'), wider types are little endian ('<').
func (d DType) descr() string {
	if d.Size() == 1 {
		return "|" + string(d)
	}
	return "<" + string(d)
}

// npyMagic opens every .npy file; the version bytes follow it.
const npyMagic = "\x93NUMPY"

// Array is an n-dimensional little-endian integer array in C order, as read
// from a .npy file. Its bytes are either on the heap or memory-mapped; Close
// releases a mapping (and is harmless on a heap array).
type Array struct {
	DType DType
	Shape []int
	data  []byte
	unmap func() error
	// path and mapped are set for a memory-mapped file: its name and the
	// whole mapping, so a fault address can be traced to the file.
	path   string
	mapped []byte
}

// NewArray wraps raw little-endian bytes as an array after checking that
// their length matches the shape; builders use it to hand data to WriteNPY.
func NewArray(dtype DType, shape []int, data []byte) (*Array, error) {
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("npy: unsupported dtype %q", dtype)
	}
	n, err := numElements(shape)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != n*int64(dtype.Size()) {
		return nil, fmt.Errorf("npy: %d bytes for shape %v of %s (want %d)", len(data), shape, dtype, n*int64(dtype.Size()))
	}
	return &Array{DType: dtype, Shape: append([]int(nil), shape...), data: data}, nil
}

// Int32Array wraps values as an int32 array of the given shape (a 1-D shape
// when shape is empty); index files are built this way.
func Int32Array(values []int32, shape ...int) *Array {
	if len(shape) == 0 {
		shape = []int{len(values)}
	}
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return &Array{DType: Int32, Shape: shape, data: b}
}

// Len is the number of elements.
func (a *Array) Len() int { return len(a.data) / a.DType.Size() }

// Bytes returns the raw little-endian element bytes (mapped memory for an
// opened file: read only, valid until Close). Reads through it are not
// guarded against a file truncated under the process, as the iterators'
// and Check's are: a caller reading mapped bytes itself must be ready for
// SIGBUS (see FaultError).
func (a *Array) Bytes() []byte { return a.data }

// At returns element i (flat C-order index) widened to int64. A uint64 above
// MaxInt64 wraps; no dataset token or index comes near that.
func (a *Array) At(i int) int64 {
	switch a.DType {
	case Uint8:
		return int64(a.data[i])
	case Int8:
		return int64(int8(a.data[i]))
	case Uint16:
		return int64(binary.LittleEndian.Uint16(a.data[2*i:]))
	case Int16:
		return int64(int16(binary.LittleEndian.Uint16(a.data[2*i:])))
	case Uint32:
		return int64(binary.LittleEndian.Uint32(a.data[4*i:]))
	case Int32:
		return int64(int32(binary.LittleEndian.Uint32(a.data[4*i:])))
	case Uint64:
		return int64(binary.LittleEndian.Uint64(a.data[8*i:]))
	case Int64:
		return int64(binary.LittleEndian.Uint64(a.data[8*i:]))
	}
	panic("npy: unknown dtype " + string(a.DType))
}

// CopyInt32 converts elements [off, off+len(dst)) to int32 into dst. The
// dtype switch sits outside the loop because batch assembly copies whole
// 900-token rows at a time. Values beyond int32 are truncated; callers that
// care (vocabulary checks) compare against small bounds first.
func (a *Array) CopyInt32(dst []int32, off int) {
	switch a.DType {
	case Uint8:
		for j, v := range a.data[off : off+len(dst)] {
			dst[j] = int32(v)
		}
	case Int8:
		for j, v := range a.data[off : off+len(dst)] {
			dst[j] = int32(int8(v))
		}
	default:
		for j := range dst {
			dst[j] = int32(a.At(off + j))
		}
	}
}

// Int32s returns all elements as int32 (for the small index files).
func (a *Array) Int32s() []int32 {
	out := make([]int32, a.Len())
	a.CopyInt32(out, 0)
	return out
}

// Close unmaps a memory-mapped array; the array must not be used after.
func (a *Array) Close() error {
	if a.unmap == nil {
		return nil
	}
	err := a.unmap()
	a.unmap, a.data, a.mapped = nil, nil, nil
	return err
}

// numElements multiplies out a shape, rejecting negative dimensions and
// products that do not fit the address space (a corrupt header must not
// make us allocate or index absurdly).
func numElements(shape []int) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("npy: negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt64/8/int64(d) {
			return 0, fmt.Errorf("npy: shape %v too large", shape)
		}
		n *= int64(d)
	}
	return n, nil
}

// npyHeader is the parsed header dict of a .npy file.
type npyHeader struct {
	dtype DType
	shape []int
}

// ParseNPY decodes a complete .npy file held in b (versions 1, 2 and 3; the
// later ones only widen the header length). The returned array aliases b.
func ParseNPY(b []byte) (*Array, error) {
	h, off, err := parseNPYPrefix(b)
	if err != nil {
		return nil, err
	}
	n, _ := numElements(h.shape) // checked by parseNPYPrefix
	want := n * int64(h.dtype.Size())
	if int64(len(b)-off) != want {
		return nil, fmt.Errorf("npy: data is %d bytes, shape %v of %s needs %d", len(b)-off, h.shape, h.dtype, want)
	}
	return &Array{DType: h.dtype, Shape: h.shape, data: b[off:]}, nil
}

// parseNPYPrefix parses magic, version and header dict and returns the
// offset at which the element data starts.
func parseNPYPrefix(b []byte) (npyHeader, int, error) {
	var h npyHeader
	if len(b) < 10 || string(b[:6]) != npyMagic {
		return h, 0, errors.New("npy: not a .npy file (bad magic)")
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return h, 0, errors.New("npy: truncated header")
		}
		l := binary.LittleEndian.Uint32(b[8:12])
		if l > 1<<24 {
			return h, 0, fmt.Errorf("npy: header length %d implausible", l)
		}
		hlen, off = int(l), 12
	default:
		return h, 0, fmt.Errorf("npy: unsupported format version %d.%d", b[6], b[7])
	}
	if len(b) < off+hlen {
		return h, 0, fmt.Errorf("npy: header claims %d bytes, file has %d", hlen, len(b)-off)
	}
	h, err := parseHeaderDict(string(b[off : off+hlen]))
	return h, off + hlen, err
}

// parseHeaderDict reads the Python dict literal NumPy writes, e.g.
// {'descr': '<i4', 'fortran_order': False, 'shape': (3, 81), }.
// It is a tiny hand parser rather than a general literal evaluator: only
// the three keys NumPy defines are accepted.
func parseHeaderDict(s string) (npyHeader, error) {
	var h npyHeader
	p := &litParser{s: strings.TrimRight(s, " \n\x00")}
	if !p.eat('{') {
		return h, errors.New("npy: header is not a dict")
	}
	var descr string
	var haveDescr, haveFortran, haveShape bool
	for {
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return h, err
		}
		if !p.eat(':') {
			return h, fmt.Errorf("npy: header: missing ':' after %q", key)
		}
		switch key {
		case "descr":
			if descr, err = p.str(); err != nil {
				return h, fmt.Errorf("npy: header descr: %v (structured dtypes are not supported)", err)
			}
			haveDescr = true
		case "fortran_order":
			f, err := p.boolean()
			if err != nil {
				return h, err
			}
			if f {
				return h, errors.New("npy: Fortran-order arrays are not supported")
			}
			haveFortran = true
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return h, err
			}
			haveShape = true
		default:
			return h, fmt.Errorf("npy: header: unknown key %q", key)
		}
		if !p.eat(',') {
			if !p.eat('}') {
				return h, errors.New("npy: header: expected ',' or '}'")
			}
			break
		}
	}
	if p.skip(); p.i != len(p.s) {
		return h, errors.New("npy: header: trailing characters after dict")
	}
	if !haveDescr || !haveFortran || !haveShape {
		return h, errors.New("npy: header lacks descr, fortran_order or shape")
	}
	dt, err := parseDescr(descr)
	if err != nil {
		return h, err
	}
	h.dtype = dt
	if _, err := numElements(h.shape); err != nil {
		return h, err
	}
	return h, nil
}

// parseDescr accepts little-endian or byte-order-free integer descrs.
func parseDescr(d string) (DType, error) {
	if len(d) != 3 {
		return "", fmt.Errorf("npy: unsupported dtype %q (want an integer type)", d)
	}
	t := DType(d[1:])
	if t.Size() == 0 {
		return "", fmt.Errorf("npy: unsupported dtype %q (want an integer type)", d)
	}
	switch d[0] {
	case '<', '|':
	case '=':
		// '=' is native order; every platform Go runs this on here is little endian.
	default:
		return "", fmt.Errorf("npy: dtype %q is not little endian", d)
	}
	if d[0] == '|' && t.Size() != 1 {
		return "", fmt.Errorf("npy: dtype %q lacks a byte order", d)
	}
	return t, nil
}

// litParser scans the small subset of Python literals in a .npy header.
type litParser struct {
	s string
	i int
}

func (p *litParser) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *litParser) eat(c byte) bool {
	p.skip()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *litParser) str() (string, error) {
	p.skip()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("npy: header: expected a quoted string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("npy: header: unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, nil
}

func (p *litParser) boolean() (bool, error) {
	p.skip()
	switch {
	case strings.HasPrefix(p.s[p.i:], "True"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "False"):
		p.i += 5
		return false, nil
	}
	return false, errors.New("npy: header: expected True or False")
}

func (p *litParser) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("npy: header: shape is not a tuple")
	}
	shape := []int{}
	for {
		if p.eat(')') {
			return shape, nil
		}
		p.skip()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j == p.i {
			return nil, errors.New("npy: header: shape holds a non-integer")
		}
		d, err := strconv.Atoi(p.s[p.i:j])
		if err != nil || d > math.MaxInt32*64 {
			return nil, fmt.Errorf("npy: header: dimension %q out of range", p.s[p.i:j])
		}
		p.i = j
		shape = append(shape, d)
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, errors.New("npy: header: expected ',' or ')' in shape")
			}
			return shape, nil
		}
	}
}

// MaxReadNPYBytes bounds the files ReadNPY reads onto the heap: the
// index arrays are megabytes, and only the fallback without memory
// mapping reads token arrays this way.
const MaxReadNPYBytes = 16 << 30

// ReadNPY reads a whole .npy file onto the heap; errors name the file.
// path must be a regular file of at most MaxReadNPYBytes.
func ReadNPY(path string) (*Array, error) {
	b, err := safetensors.ReadRegular(path, MaxReadNPYBytes)
	if err != nil {
		return nil, err
	}
	a, err := ParseNPY(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// npyHeaderBytes renders the header exactly as NumPy's np.save does (format
// 1.0): keys sorted, Python reprs, 21-digit growth room for the first axis,
// then spaces and a newline so the data starts on a 64-byte boundary. When
// the prefix already ends on a boundary NumPy still adds a full 64 spaces;
// that quirk is kept so our files are byte-identical to the reference's.
func npyHeaderBytes(dtype DType, shape []int) []byte {
	var sb strings.Builder
	sb.WriteString("{'descr': '" + dtype.descr() + "', 'fortran_order': False, 'shape': (")
	for i, d := range shape {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		sb.WriteString(",")
	}
	sb.WriteString("), }")
	if len(shape) > 0 {
		sb.WriteString(strings.Repeat(" ", 21-len(strconv.Itoa(shape[0]))))
	}
	h := sb.String()
	hlen := len(h) + 1
	pad := 64 - (10+hlen)%64
	out := make([]byte, 0, 10+hlen+pad)
	out = append(out, npyMagic...)
	out = append(out, 1, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(hlen+pad))
	out = append(out, h...)
	out = append(out, strings.Repeat(" ", pad)...)
	return append(out, '\n')
}

// WriteNPY writes a in .npy format 1.0 to w.
func WriteNPY(w io.Writer, a *Array) error {
	if _, err := w.Write(npyHeaderBytes(a.DType, a.Shape)); err != nil {
		return err
	}
	_, err := w.Write(a.data)
	return err
}

// WriteNPYFile writes a to path (created or truncated).
func WriteNPYFile(path string, a *Array) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteNPY(f, a); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// NPYWriter streams a .npy file whose shape is known up front but whose
// rows are produced one at a time, so builders never hold a multi-gigabyte
// array in memory. Close checks that exactly the promised bytes arrived.
type NPYWriter struct {
	f    *os.File
	w    *bufio.Writer
	path string
	left int64
}

// CreateNPY starts a streamed .npy file of the given dtype and shape.
func CreateNPY(path string, dtype DType, shape []int) (*NPYWriter, error) {
	n, err := numElements(shape)
	if err != nil {
		return nil, err
	}
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("npy: unsupported dtype %q", dtype)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := w.Write(npyHeaderBytes(dtype, shape)); err != nil {
		f.Close()
		return nil, err
	}
	return &NPYWriter{f: f, w: w, path: path, left: n * int64(dtype.Size())}, nil
}

// Write appends raw little-endian element bytes.
func (w *NPYWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > w.left {
		return 0, fmt.Errorf("%s: more data than the declared shape", w.path)
	}
	w.left -= int64(len(b))
	return w.w.Write(b)
}

// Close flushes the file and fails if fewer bytes than declared were written.
func (w *NPYWriter) Close() error {
	err := w.w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && w.left != 0 {
		err = fmt.Errorf("%s: %d bytes short of the declared shape", w.path, w.left)
	}
	return err
}
