package torchpt

import (
	"encoding/binary"
	"math"
	bigpkg "math/big"
	"reflect"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// stridedReference gathers a view element by element from the definition
// element(i0..ik) = storage[offset + sum_k i_k * stride_k], walking the
// output in C order by decomposing the flat index. It shares no code with
// copyStrided.
func stridedReference(storage []float32, offset int64, size, stride []int64) []float32 {
	n := int64(1)
	for _, d := range size {
		n *= d
	}
	out := make([]float32, 0, n)
	for flat := int64(0); flat < n; flat++ {
		rem, pos := flat, offset
		for k := len(size) - 1; k >= 0; k-- {
			pos += (rem % size[k]) * stride[k]
			rem /= size[k]
		}
		out = append(out, storage[pos])
	}
	return out
}

// TestStridedViews stores several views of ONE float32 storage (as tensors
// sharing memory are saved) and checks each comes back contiguous with
// the values the strided definition gives.
func TestStridedViews(t *testing.T) {
	storage := make([]float32, 24)
	for i := range storage {
		storage[i] = float32(i) + 0.5
	}
	views := []fakeTensor{
		{key: "colmajor", size: []int64{2, 3}, stride: []int64{1, 2}},
		{key: "offset", offset: 5, size: []int64{2, 2}, stride: []int64{2, 1}},
		{key: "permuted3d", offset: 0, size: []int64{2, 3, 4}, stride: []int64{1, 2, 6}},
		{key: "broadcast", offset: 10, size: []int64{3, 2}, stride: []int64{0, 1}},
		{key: "scalar", offset: 7, size: []int64{}, stride: []int64{}},
		{key: "empty", size: []int64{0, 4}, stride: []int64{4, 1}},
		{key: "rank5", size: []int64{1, 2, 1, 3, 2}, stride: []int64{24, 12, 24, 1, 6}},
		{key: "last", offset: 23, size: []int64{1}, stride: []int64{1}},
		{key: "param.weight", size: []int64{4, 6}, stride: []int64{6, 1}, param: true},
	}
	for i := range views {
		views[i].storageClass, views[i].storageKey, views[i].numel = "FloatStorage", "0", 24
	}
	for _, o := range []pickleOptions{{}, {orderedDict: true}} {
		pkl := statePickle(views, o)
		data := zipCheckpoint(t, pkl, map[string][]byte{"0": f32Bytes(storage...)}, nil)
		got, keys, err := Decode(data, "views.pt")
		if err != nil {
			t.Fatal(err)
		}
		var wantKeys []string
		for _, v := range views {
			wantKeys = append(wantKeys, v.key)
		}
		if !reflect.DeepEqual(keys, wantKeys) {
			t.Errorf("keys = %v, want file order %v", keys, wantKeys)
		}
		for _, v := range views {
			g := got[v.key]
			wantShape := make([]int, len(v.size))
			for i, d := range v.size {
				wantShape[i] = int(d)
			}
			if g.DType != safetensors.F32 || !reflect.DeepEqual(g.Shape, wantShape) {
				t.Errorf("%s: %s %v, want F32 %v", v.key, g.DType, g.Shape, wantShape)
				continue
			}
			vals, err := g.Float32()
			if err != nil {
				t.Fatal(err)
			}
			if want := stridedReference(storage, v.offset, v.size, v.stride); !reflect.DeepEqual(vals, want) {
				t.Errorf("%s: got %v, want %v", v.key, vals, want)
			}
		}
		if c, _ := got["colmajor"].Float32(); !reflect.DeepEqual(c, []float32{0.5, 2.5, 4.5, 1.5, 3.5, 5.5}) {
			t.Errorf("colmajor = %v (hand-computed transpose)", c)
		}
	}
}

// TestDTypes round-trips every supported storage class, including a
// transposed int64 view (8-byte elements on the strided path).
func TestDTypes(t *testing.T) {
	type tc struct {
		class string
		dtype safetensors.DType
		raw   []byte
		check func(safetensors.Tensor) bool
	}
	cases := []tc{
		{"DoubleStorage", safetensors.F64, func() []byte {
			b := make([]byte, 16)
			binary.LittleEndian.PutUint64(b, math.Float64bits(0.1))
			binary.LittleEndian.PutUint64(b[8:], math.Float64bits(-1e300))
			return b
		}(), func(x safetensors.Tensor) bool {
			v, _ := x.Float64()
			return reflect.DeepEqual(v, []float64{0.1, -1e300})
		}},
		{"HalfStorage", safetensors.F16, []byte{0x00, 0x3C, 0x01, 0x80}, func(x safetensors.Tensor) bool {
			v, _ := x.Float64()
			return reflect.DeepEqual(v, []float64{1, -math.Pow(2, -24)})
		}},
		{"BFloat16Storage", safetensors.BF16, []byte{0x80, 0x3F, 0x40, 0xC0}, func(x safetensors.Tensor) bool {
			v, _ := x.Float32()
			return reflect.DeepEqual(v, []float32{1, -3})
		}},
		{"LongStorage", safetensors.I64, i64Bytes(-5, 1<<40), func(x safetensors.Tensor) bool {
			v, _ := x.Int64()
			return reflect.DeepEqual(v, []int64{-5, 1 << 40})
		}},
		{"IntStorage", safetensors.I32, []byte{0x9c, 0xff, 0xff, 0xff, 7, 0, 0, 0}, func(x safetensors.Tensor) bool {
			v, _ := x.Int64()
			return reflect.DeepEqual(v, []int64{-100, 7})
		}},
		{"ShortStorage", safetensors.I16, []byte{0xff, 0xff, 2, 0}, func(x safetensors.Tensor) bool {
			v, _ := x.Int64()
			return reflect.DeepEqual(v, []int64{-1, 2})
		}},
		{"CharStorage", safetensors.I8, []byte{0x80, 0x7f}, func(x safetensors.Tensor) bool {
			v, _ := x.Int64()
			return reflect.DeepEqual(v, []int64{-128, 127})
		}},
		{"ByteStorage", safetensors.U8, []byte{0xff, 3}, func(x safetensors.Tensor) bool {
			v, _ := x.Int64()
			return reflect.DeepEqual(v, []int64{255, 3})
		}},
		{"BoolStorage", safetensors.BOOL, []byte{1, 0}, func(x safetensors.Tensor) bool {
			v, _ := x.Int64()
			return reflect.DeepEqual(v, []int64{1, 0})
		}},
	}
	var ts []fakeTensor
	storages := map[string][]byte{}
	for i, c := range cases {
		key := string(rune('a' + i))
		ts = append(ts, fakeTensor{key: c.class, storageClass: c.class, storageKey: key, numel: 2, size: []int64{2}, stride: []int64{1}})
		storages[key] = c.raw
	}
	// A 3x2 int64 matrix stored column-major (the transpose of a 2x3 one).
	ts = append(ts, fakeTensor{key: "longT", storageClass: "LongStorage", storageKey: "t", numel: 6, size: []int64{3, 2}, stride: []int64{1, 3}})
	storages["t"] = i64Bytes(1, 2, 3, 4, 5, 6)
	got, _, err := Decode(zipCheckpoint(t, statePickle(ts, pickleOptions{}), storages, nil), "dtypes.pt")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		g := got[c.class]
		if g.DType != c.dtype || !reflect.DeepEqual(g.Shape, []int{2}) || !c.check(g) {
			t.Errorf("%s: got %s %v %v", c.class, g.DType, g.Shape, g.Data)
		}
	}
	if v, _ := got["longT"].Int64(); !reflect.DeepEqual(v, []int64{1, 4, 2, 5, 3, 6}) {
		t.Errorf("longT = %v, want [1 4 2 5 3 6]", v)
	}
}

// TestLegacyFormat writes a legacy stream with an OrderedDict, a 7-argument
// rebuild call, a parameter and an old-style storage view, and checks it
// loads like its zip twin.
func TestLegacyFormat(t *testing.T) {
	ts := []fakeTensor{
		{key: "w", storageClass: "FloatStorage", storageKey: "100", numel: 6, size: []int64{2, 3}, stride: []int64{1, 2}, param: true, withMeta: true},
		{key: "v", storageClass: "FloatStorage", storageKey: "100", numel: 6, offset: 1, size: []int64{2}, stride: []int64{1}, view: []int64{3, 3}},
		{key: "steps", storageClass: "LongStorage", storageKey: "200", numel: 2, size: []int64{2}, stride: []int64{1}},
	}
	storages := map[string][]byte{"100": f32Bytes(1, 2, 3, 4, 5, 6), "200": i64Bytes(9, -9)}
	sizes := map[string]int{"100": 4, "200": 8}
	pkl := statePickle(ts, pickleOptions{legacy: true, orderedDict: true})
	data := legacyCheckpoint(pkl, []string{"200", "100"}, storages, sizes, true)
	got, keys, err := Decode(data, "legacy.pt")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keys, []string{"w", "v", "steps"}) {
		t.Errorf("keys = %v", keys)
	}
	if w, _ := got["w"].Float32(); !reflect.DeepEqual(w, []float32{1, 3, 5, 2, 4, 6}) {
		t.Errorf("w = %v", w)
	}
	// View of storage elements [3, 6), then tensor offset 1: elements 4, 5.
	if v, _ := got["v"].Float32(); !reflect.DeepEqual(v, []float32{5, 6}) {
		t.Errorf("v = %v, want [5 6]", v)
	}
	if s, _ := got["steps"].Int64(); !reflect.DeepEqual(s, []int64{9, -9}) {
		t.Errorf("steps = %v", s)
	}

	// The legacy errors a damaged stream can produce.
	bad := []struct {
		name string
		data []byte
		want string
	}{
		{"big endian", legacyCheckpoint(pkl, []string{"200", "100"}, storages, sizes, false), "big-endian"},
		{"missing storage", legacyCheckpoint(pkl, []string{"200"}, storages, sizes, true), "missing from the key list"},
		{"extra bytes", append(append([]byte(nil), data...), 1, 2), "unexpected bytes"},
		{"bad magic", append([]byte{opProto, 2, opBinInt1, 7, opStop}, data[15:]...), "bad magic"},
		{"bad count", func() []byte {
			d := append([]byte(nil), data...)
			i := len(d) - 6*4 - 8 // the count of storage 100, the last one
			binary.LittleEndian.PutUint64(d[i:], 5)
			return d
		}(), "holds 5 elements"},
	}
	for _, b := range bad {
		if _, _, err := Decode(b.data, "bad-legacy.pt"); err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), "bad-legacy.pt") {
			t.Errorf("%s: err = %v, want %q and the file name", b.name, err, b.want)
		}
	}
}

// TestBigEndianZip honours the byteorder entry newer torch writes.
func TestBigEndianZip(t *testing.T) {
	ts := []fakeTensor{
		{key: "f", storageClass: "FloatStorage", storageKey: "0", numel: 2, size: []int64{2}, stride: []int64{1}},
		{key: "u", storageClass: "ByteStorage", storageKey: "1", numel: 2, size: []int64{2}, stride: []int64{1}},
	}
	be := make([]byte, 8)
	binary.BigEndian.PutUint32(be, math.Float32bits(1.5))
	binary.BigEndian.PutUint32(be[4:], math.Float32bits(-2))
	data := zipCheckpoint(t, statePickle(ts, pickleOptions{}), map[string][]byte{"0": be, "1": {7, 8}}, map[string]string{"byteorder": "big"})
	got, _, err := Decode(data, "be.pt")
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := got["f"].Float32(); !reflect.DeepEqual(f, []float32{1.5, -2}) {
		t.Errorf("f = %v", f)
	}
	if u, _ := got["u"].Int64(); !reflect.DeepEqual(u, []int64{7, 8}) {
		t.Errorf("u = %v", u)
	}
	data = zipCheckpoint(t, statePickle(ts, pickleOptions{}), map[string][]byte{"0": be, "1": {7, 8}}, map[string]string{"byteorder": "middle"})
	if _, _, err := Decode(data, "odd.pt"); err == nil || !strings.Contains(err.Error(), "byteorder") {
		t.Errorf("unknown byteorder: err = %v", err)
	}
}

// TestZipErrors covers storages that disagree with the pickle and views
// that reach outside their storage.
func TestZipErrors(t *testing.T) {
	one := func(size, stride []int64, offset int64) []fakeTensor {
		return []fakeTensor{{key: "x", storageClass: "FloatStorage", storageKey: "0", numel: 4, offset: offset, size: size, stride: stride}}
	}
	four := map[string][]byte{"0": f32Bytes(1, 2, 3, 4)}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"view past end", zipCheckpoint(t, statePickle(one([]int64{2, 2}, []int64{2, 1}, 1), pickleOptions{}), four, nil), `tensor "x": view`},
		{"stride past end", zipCheckpoint(t, statePickle(one([]int64{3}, []int64{2}, 0), pickleOptions{}), four, nil), "reaches element 4"},
		{"negative stride", zipCheckpoint(t, statePickle(one([]int64{2}, []int64{-1}, 1), pickleOptions{}), four, nil), "negative stride"},
		{"overflow", zipCheckpoint(t, statePickle(one([]int64{3, 2}, []int64{math.MaxInt64/2 + 1, 1}, 0), pickleOptions{}), four, nil), "overflows"},
		{"short storage", zipCheckpoint(t, statePickle(one([]int64{4}, []int64{1}, 0), pickleOptions{}), map[string][]byte{"0": f32Bytes(1, 2, 3)}, nil), "holds 12 bytes, want 16"},
		{"missing storage", zipCheckpoint(t, statePickle(one([]int64{4}, []int64{1}, 0), pickleOptions{}), nil, nil), "is missing"},
		{"not torch zip", func() []byte {
			d := zipCheckpoint(t, nil, nil, nil)
			return []byte(strings.Replace(string(d), "data.pkl", "data.txt", -1))
		}(), "no <name>/data.pkl"},
	}
	for _, c := range cases {
		_, _, err := Decode(c.data, "bad.pt")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.pt") {
			t.Errorf("%s: err = %v, want %q and the file name", c.name, err, c.want)
		}
	}
}

// TestHostilePickles checks that the machine refuses what it must not run
// or cannot represent, naming the cause.
func TestHostilePickles(t *testing.T) {
	pw := func(f func(p *pickleWriter)) []byte {
		p := &pickleWriter{}
		p.op(opProto, 2)
		f(p)
		p.op(opStop)
		return p.Bytes()
	}
	cases := []struct {
		name string
		pkl  []byte
		want string
	}{
		{"os.system", pw(func(p *pickleWriter) {
			p.global("os", "system")
			p.str("echo pwned")
			p.op(opTuple1, opReduce)
		}), "unsupported global os.system"},
		{"builtins.eval", pw(func(p *pickleWriter) { p.global("builtins", "eval") }), "unsupported global builtins.eval"},
		{"complex storage", pw(func(p *pickleWriter) { p.global("torch", "ComplexFloatStorage") }), "unsupported global torch.ComplexFloatStorage"},
		{"list top level", pw(func(p *pickleWriter) { p.op(opEmptyList) }), "not a state dict"},
		{"int value", pw(func(p *pickleWriter) {
			p.op(opEmptyDict)
			p.str("step")
			p.int(3)
			p.op(opSetItem)
		}), `entry "step" is a int`},
		{"int key", pw(func(p *pickleWriter) {
			p.op(opEmptyDict)
			p.int(1)
			p.int(3)
			p.op(opSetItem)
		}), "key 1 is a int"},
		{"underflow", pw(func(p *pickleWriter) { p.op(opTuple2) }), "stack underflow"},
		{"no mark", pw(func(p *pickleWriter) { p.op(opEmptyDict, opSetItems) }), "no MARK"},
		{"bad memo", pw(func(p *pickleWriter) { p.op(opBinGet, 9) }), "memo index 9"},
		{"newobj", pw(func(p *pickleWriter) { p.op(0x81) }), "unsupported opcode"},
		{"inst text opcode", pw(func(p *pickleWriter) { p.op('i') }), "unsupported opcode"},
		{"append to dict", pw(func(p *pickleWriter) { p.op(opEmptyDict, opNone, opAppend) }), "APPEND to a dict"},
		{"call a string", pw(func(p *pickleWriter) { p.str("x"); p.op(opEmptyTuple, opReduce) }), "not callable"},
		{"left on stack", pw(func(p *pickleWriter) { p.op(opNone, opNone) }), "left on the stack"},
		{"protocol 6", []byte{opProto, 6, opNone, opStop}, "protocol 6"},
		{"truncated string", []byte{opProto, 2, opBinUnicode, 0xff, 0xff, 0, 0, 'a'}, "exceeds"},
		{"no stop", []byte{opProto, 2, opNone}, "truncated"},
		{"bad utf8", []byte{opProto, 2, opShortBinUnicode, 1, 0xff, opStop}, "UTF-8"},
		{"persid in wrong place", pw(func(p *pickleWriter) { p.str("x"); p.op(opBinPersID) }), "persistent id is a str"},
		{"rebuild with junk", pw(func(p *pickleWriter) {
			p.global("torch._utils", "_rebuild_tensor_v2")
			p.op(opMark)
			for i := int64(1); i <= 4; i++ {
				p.int(i)
			}
			p.op(opTuple, opReduce)
		}), "torch._utils._rebuild_tensor_v2: first argument is a int, not a storage"},
	}
	for _, c := range cases {
		data := zipCheckpoint(t, c.pkl, nil, nil)
		_, _, err := Decode(data, "hostile.pt")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "hostile.pt") {
			t.Errorf("%s: err = %v, want %q and the file name", c.name, err, c.want)
		}
	}
}

// TestPickleScalars checks the integer, float and newer-protocol opcodes
// against values worked out by hand.
func TestPickleScalars(t *testing.T) {
	run := func(b []byte) (any, error) {
		u := &unpickler{data: b, findGlobal: findGlobal}
		return u.run()
	}
	cases := []struct {
		name string
		pkl  []byte
		want any
	}{
		{"BININT -2", []byte{opBinInt, 0xfe, 0xff, 0xff, 0xff, opStop}, int64(-2)},
		{"BININT2", []byte{opBinInt2, 0x34, 0x12, opStop}, int64(0x1234)},
		{"LONG1 empty is 0", []byte{opLong1, 0, opStop}, int64(0)},
		{"LONG1 -1", []byte{opLong1, 1, 0xff, opStop}, int64(-1)},
		{"LONG1 255", []byte{opLong1, 2, 0xff, 0x00, opStop}, int64(255)},
		{"LONG1 min int64", []byte{opLong1, 8, 0, 0, 0, 0, 0, 0, 0, 0x80, opStop}, int64(math.MinInt64)},
		{"LONG4 -256", []byte{opLong4, 2, 0, 0, 0, 0x00, 0xff, opStop}, int64(-256)},
		{"BINFLOAT", append(append([]byte{opBinFloat}, func() []byte {
			b := make([]byte, 8)
			binary.BigEndian.PutUint64(b, math.Float64bits(-0.375))
			return b
		}()...), opStop), -0.375},
		{"SHORT_BINSTRING", []byte{opShortBinString, 2, 'h', 'i', opStop}, "hi"},
		{"SHORT_BINBYTES", []byte{opShortBinBytes, 2, 1, 2, opStop}, []byte{1, 2}},
		{"frame+memoize+stack_global", []byte{
			opProto, 4, opFrame, 0, 0, 0, 0, 0, 0, 0, 0,
			opShortBinUnicode, 5, 't', 'o', 'r', 'c', 'h', opMemoize,
			opShortBinUnicode, 12, 'F', 'l', 'o', 'a', 't', 'S', 't', 'o', 'r', 'a', 'g', 'e', opMemoize,
			opStackGlobal, opPop, opBinGet, 1, opStop}, "FloatStorage"},
		{"DUP and LIST", []byte{opMark, opNone, opDup, opList, opStop}, &pyList{items: []any{pyNone{}, pyNone{}}}},
	}
	for _, c := range cases {
		got, err := run(c.pkl)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, got, c.want)
		}
	}
	big, err := run([]byte{opLong1, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, opStop})
	if b, ok := big.(*bigpkg.Int); err != nil || !ok || b.Cmp(legacyMagic) != 0 {
		t.Errorf("80-bit magic number = %v, %v", big, err)
	}
}

func TestCanonicalKey(t *testing.T) {
	cases := map[string]string{
		"_orig_mod.model.inner.H_init": "inner.H_init",
		"model.inner.lm_head.weight":   "inner.lm_head.weight",
		"_orig_mod.inner.x":            "inner.x",
		"inner.q_head.bias":            "inner.q_head.bias",
		"model._orig_mod.inner.x":      "_orig_mod.inner.x", // only the documented order is stripped
		"model.model.inner.x":          "model.inner.x",     // one level each, no more
	}
	for in, want := range cases {
		if got := CanonicalKey(in); got != want {
			t.Errorf("CanonicalKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPickleContainers covers the container opcodes and OrderedDict forms
// the golden files do not use.
func TestPickleContainers(t *testing.T) {
	run := func(b []byte) (any, error) {
		u := &unpickler{data: b, findGlobal: findGlobal}
		return u.run()
	}
	// DICT from MARK k v k v, with a replaced key keeping its first position.
	d, err := run([]byte{opMark, opShortBinUnicode, 1, 'a', opBinInt1, 1, opShortBinUnicode, 1, 'b', opBinInt1, 2,
		opShortBinUnicode, 1, 'a', opBinInt1, 3, opDict, opStop})
	if err != nil {
		t.Fatal(err)
	}
	dd := d.(*pyDict)
	if !reflect.DeepEqual(dd.keys, []any{"a", "b"}) || !reflect.DeepEqual(dd.vals, []any{int64(3), int64(2)}) {
		t.Errorf("dict = %v %v", dd.keys, dd.vals)
	}
	// OrderedDict([('x', 1), ('y', 2)]) through LONG_BINPUT / LONG_BINGET.
	p := &pickleWriter{}
	p.global("collections", "OrderedDict")
	p.op(opMark, opShortBinUnicode, 1, 'x', opBinInt1, 1, opTuple2, opShortBinUnicode, 1, 'y', opBinInt1, 2, opTuple2, opList)
	p.op(opLongBinPut, 0, 1, 0, 0, opPop, opLongBinGet, 0, 1, 0, 0)
	p.op(opTuple1, opReduce, opStop)
	od, err := run(p.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if o := od.(*pyDict); !reflect.DeepEqual(o.keys, []any{"x", "y"}) || !reflect.DeepEqual(o.vals, []any{int64(1), int64(2)}) {
		t.Errorf("OrderedDict(pairs) = %v %v", o.keys, o.vals)
	}
	// Unhashable (tuple) dict keys are refused, not mis-keyed.
	if _, err := run([]byte{opEmptyDict, opEmptyTuple, opNone, opSetItem, opStop}); err == nil || !strings.Contains(err.Error(), "unsupported dict key of type tuple") {
		t.Errorf("tuple key: err = %v", err)
	}
	// One storage key used with two dtypes cannot be interpreted.
	ts := []fakeTensor{
		{key: "a", storageClass: "FloatStorage", storageKey: "0", numel: 2, size: []int64{2}, stride: []int64{1}},
		{key: "b", storageClass: "IntStorage", storageKey: "0", numel: 2, size: []int64{2}, stride: []int64{1}},
	}
	data := zipCheckpoint(t, statePickle(ts, pickleOptions{}), map[string][]byte{"0": f32Bytes(1, 2)}, nil)
	if _, _, err := Decode(data, "mixed.pt"); err == nil || !strings.Contains(err.Error(), "referenced as F32[2] and as I32[2]") {
		t.Errorf("storage with two dtypes: err = %v", err)
	}
}

// TestFormatDetection rejects files that are not torch.save output.
func TestFormatDetection(t *testing.T) {
	tar := make([]byte, 600)
	copy(tar[257:], "ustar")
	cases := map[string][]byte{
		"tar-format":       tar,
		"empty file":       {},
		"not a torch.save": []byte("hello world"),
	}
	for want, data := range cases {
		if _, _, err := Decode(data, "x.pt"); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "x.pt") {
			t.Errorf("%s: err = %v", want, err)
		}
	}
}
