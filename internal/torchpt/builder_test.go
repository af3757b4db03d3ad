package torchpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// This file writes torch.save-shaped files from Go so that the tests can
// exercise cases the golden fixtures lack (other dtypes, offsets, odd
// strides, legacy views, big-endian archives, hostile pickles). The
// opcode sequences mirror what torch 1.13's pickler emits (compare
// `python -m pickletools` on the golden data.pkl).

// pickleWriter emits protocol-2 opcodes.
type pickleWriter struct {
	bytes.Buffer
	memo byte
}

func (p *pickleWriter) op(b ...byte) { p.Write(b) }

func (p *pickleWriter) put() {
	p.op(opBinPut, p.memo)
	p.memo++
}

func (p *pickleWriter) str(s string) {
	p.op(opBinUnicode)
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
	p.Write(n[:])
	p.WriteString(s)
	p.put()
}

func (p *pickleWriter) int(v int64) {
	switch {
	case v >= 0 && v < 256:
		p.op(opBinInt1, byte(v))
	case v >= 0 && v < 65536:
		p.op(opBinInt2, byte(v), byte(v>>8))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(int32(v)))
		p.op(opBinInt)
		p.Write(n[:])
	default:
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(v))
		p.op(opLong1, 8)
		p.Write(n[:])
	}
}

func (p *pickleWriter) global(module, name string) {
	p.op(opGlobal)
	p.WriteString(module + "\n" + name + "\n")
	p.put()
}

func (p *pickleWriter) ints(vs []int64) {
	switch len(vs) {
	case 0:
		p.op(opEmptyTuple)
		return
	case 1, 2, 3:
		for _, v := range vs {
			p.int(v)
		}
		p.op(opTuple1 + byte(len(vs)-1))
	default:
		p.op(opMark)
		for _, v := range vs {
			p.int(v)
		}
		p.op(opTuple)
	}
	p.put()
}

// fakeTensor describes one state-dict entry to serialize.
type fakeTensor struct {
	key          string
	storageClass string // e.g. "FloatStorage"
	storageKey   string
	numel        int64 // storage elements
	offset       int64
	size, stride []int64
	param        bool    // wrap in _rebuild_parameter like an nn.Parameter
	view         []int64 // legacy view metadata (offset, size) under key storageKey+"v"
	withMeta     bool    // 7-argument _rebuild_tensor_v2 (newer torch)
}

type pickleOptions struct {
	legacy      bool // persistent ids carry the 6th view-metadata item
	orderedDict bool // OrderedDict + BUILD({'_metadata': ...}) as Module.state_dict() pickles
}

// statePickle writes the main pickle of a state dict.
func statePickle(ts []fakeTensor, o pickleOptions) []byte {
	p := &pickleWriter{}
	p.op(opProto, 2)
	if o.orderedDict {
		p.global("collections", "OrderedDict")
		p.op(opEmptyTuple, opReduce)
	} else {
		p.op(opEmptyDict)
	}
	p.put()
	p.op(opMark)
	for _, t := range ts {
		p.str(t.key)
		if t.param {
			p.global("torch._utils", "_rebuild_parameter")
		}
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.op(opMark) // args of _rebuild_tensor_v2
		p.op(opMark) // persistent id tuple
		p.str("storage")
		p.global("torch", t.storageClass)
		p.str(t.storageKey)
		p.str("cpu")
		p.int(t.numel)
		if o.legacy {
			if t.view == nil {
				p.op(opNone)
			} else {
				p.str(t.storageKey + "v")
				p.int(t.view[0])
				p.int(t.view[1])
				p.op(opTuple3)
				p.put()
			}
		}
		p.op(opTuple)
		p.put()
		p.op(opBinPersID)
		p.int(t.offset)
		p.ints(t.size)
		p.ints(t.stride)
		p.op(opNewFalse)
		p.global("collections", "OrderedDict")
		p.op(opEmptyTuple, opReduce)
		p.put()
		if t.withMeta {
			p.op(opEmptyDict)
			p.put()
		}
		p.op(opTuple)
		p.put()
		p.op(opReduce)
		p.put()
		if t.param {
			p.op(opNewTrue)
			p.global("collections", "OrderedDict")
			p.op(opEmptyTuple, opReduce)
			p.op(opTuple3, opReduce)
			p.put()
		}
	}
	p.op(opSetItems)
	if o.orderedDict {
		p.op(opEmptyDict)
		p.str("_metadata")
		p.global("collections", "OrderedDict")
		p.op(opEmptyTuple, opReduce)
		p.op(opSetItem, opBuild)
	}
	p.op(opStop)
	return p.Bytes()
}

// zipCheckpoint packs a pickle and storages like torch.save's zip format.
// extra holds additional entries (e.g. "byteorder").
func zipCheckpoint(t testing.TB, pkl []byte, storages map[string][]byte, extra map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("data.pkl", pkl)
	for k, v := range storages {
		add("data/"+k, v)
	}
	for k, v := range extra {
		add(k, []byte(v))
	}
	add("version", []byte("3\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// legacyCheckpoint writes the legacy stream: magic, protocol version and
// system-info pickles, the state pickle, the storage-key list pickle, then
// each storage as a u64 element count and its bytes.
func legacyCheckpoint(pkl []byte, order []string, storages map[string][]byte, elemSize map[string]int, littleEndian bool) []byte {
	var out bytes.Buffer
	// 0x1950a86a20f9469cfc6c as LONG1 (10 bytes, little-endian).
	out.Write([]byte{opProto, 2, opLong1, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, opStop})
	out.Write([]byte{opProto, 2, opBinInt2, 0xe9, 0x03, opStop})
	p := &pickleWriter{}
	p.op(opProto, 2, opEmptyDict)
	p.put()
	p.op(opMark)
	p.str("protocol_version")
	p.int(1001)
	p.str("little_endian")
	if littleEndian {
		p.op(opNewTrue)
	} else {
		p.op(opNewFalse)
	}
	p.str("type_sizes")
	p.op(opEmptyDict)
	p.put()
	p.op(opMark)
	p.str("short")
	p.int(2)
	p.str("int")
	p.int(4)
	p.str("long")
	p.int(4)
	p.op(opSetItems, opSetItems, opStop)
	out.Write(p.Bytes())
	out.Write(pkl)
	k := &pickleWriter{}
	k.op(opProto, 2, opEmptyList)
	k.put()
	k.op(opMark)
	for _, key := range order {
		k.str(key)
	}
	k.op(opAppends, opStop)
	out.Write(k.Bytes())
	for _, key := range order {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(storages[key])/elemSize[key]))
		out.Write(n[:])
		out.Write(storages[key])
	}
	return out.Bytes()
}

func f32Bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func i64Bytes(v ...int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}
