package torchpt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"
)

// This file is a small pickle virtual machine: enough of the pickle
// protocol (0-2 binary opcodes plus the framing and short forms of 3-5) to
// read what torch.save writes. It never imports or calls Python code:
// GLOBAL opcodes are resolved through an allow-list supplied by the caller,
// and anything else is an error naming the global.

// Python values as the machine represents them. Integers that fit are
// int64, larger ones *big.Int; floats are float64; str is string; bytes
// is []byte; True/False are bool.
type (
	// pyNone is Python's None.
	pyNone struct{}
	// pyTuple is an immutable tuple.
	pyTuple []any
	// pyList is a list; a pointer because APPEND mutates a list that may
	// already be referenced from the memo.
	pyList struct{ items []any }
	// pyDict is a dict (or OrderedDict) that keeps insertion order, which
	// is the order of a state dict's keys.
	pyDict struct {
		keys  []any
		vals  []any
		index map[any]int
		// state is what BUILD passed (an OrderedDict's __dict__, e.g. the
		// _metadata of a state dict); kept, never interpreted.
		state any
	}
	// pyCallable is an allow-listed global that REDUCE may call.
	pyCallable struct {
		name string
		call func(args pyTuple) (any, error)
	}
	// pyClass is an allow-listed global that is only ever used as a value
	// (a storage type inside a persistent id).
	pyClass struct {
		name  string
		value any
	}
)

func newDict() *pyDict { return &pyDict{index: map[any]int{}} }

// set inserts or replaces a key, keeping the first insertion position as
// Python does. Only scalar keys are supported: they are the only ones a
// state dict uses, and they are comparable Go values.
func (d *pyDict) set(k, v any) error {
	switch k.(type) {
	case string, int64, bool, float64, pyNone:
	default:
		return fmt.Errorf("unsupported dict key of type %s", pyTypeName(k))
	}
	if i, ok := d.index[k]; ok {
		d.vals[i] = v
		return nil
	}
	d.index[k] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

// pyTypeName names a value's Python type for error messages.
func pyTypeName(v any) string {
	switch x := v.(type) {
	case pyNone:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case *pyCallable:
		return x.name
	case *pyClass:
		return x.name
	case *tensorRef:
		return "torch.Tensor"
	case storageSlice:
		return "torch storage"
	}
	return fmt.Sprintf("%T", v)
}

// markObj is pushed by MARK; ops that consume "everything since the mark"
// pop back to it. Keeping the mark on the one stack (rather than a
// separate metastack) keeps underflow checks in one place.
type markObj struct{}

// unpickler runs one pickle from data[pos:] to its STOP opcode.
type unpickler struct {
	data  []byte
	pos   int
	stack []any
	memo  map[uint32]any
	// findGlobal resolves GLOBAL/STACK_GLOBAL against the allow-list.
	findGlobal func(module, name string) (any, error)
	// persistentLoad resolves BINPERSID (torch's storage references).
	persistentLoad func(pid any) (any, error)
	// work counts the values created and copied so far; see
	// maxPickleWork.
	work int
}

// pickle opcodes used below, named as in CPython's pickle.py.
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opBinInt2        = 'M'
	opNone           = 'N'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opBinString      = 'T'
	opShortBinString = 'U'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opBinGet         = 'h'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	opBinBytes       = 'B'
	opShortBinBytes  = 'C'

	opProto           = 0x80
	opTuple1          = 0x85
	opTuple2          = 0x86
	opTuple3          = 0x87
	opNewTrue         = 0x88
	opNewFalse        = 0x89
	opLong1           = 0x8a
	opLong4           = 0x8b
	opShortBinUnicode = 0x8c
	opBinUnicode8     = 0x8d
	opStackGlobal     = 0x93
	opMemoize         = 0x94
	opFrame           = 0x95
)

// maxPickleWork bounds the values one pickle may create or copy (an
// opcode costs one, building a container one per item). Bytes are
// bounded by the pickle's length, but a few bytes can copy a large list
// again and again (OrderedDict(list) through the memo), so without this
// bound a 1 MB pickle could ask for gigabytes. A state dict costs about
// 30 per tensor: this allows some 30 000 tensors (a TRM model has under
// a hundred) in about 300 MB at worst.
const maxPickleWork = 1 << 20

// spend charges n units of work, failing past maxPickleWork.
func (u *unpickler) spend(n int) error {
	u.work += n
	if n < 0 || u.work > maxPickleWork {
		return fmt.Errorf("pickle builds more than %d values (not a plain state dict)", maxPickleWork)
	}
	return nil
}

// maxMemo bounds the memo so a hostile index cannot make the map grow
// without limit; real state dicts use a few entries per tensor.
const maxMemo = 1 << 24

func (u *unpickler) errorf(op byte, at int, format string, args ...any) error {
	return fmt.Errorf("pickle opcode %#02x at byte %d: %s", op, at, fmt.Sprintf(format, args...))
}

// read returns the next n bytes or an error if the pickle ends first.
func (u *unpickler) read(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, fmt.Errorf("pickle truncated at byte %d (wanted %d more bytes, %d left)", u.pos, n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

// readLine returns the text up to the next newline (GLOBAL's operands).
func (u *unpickler) readLine() (string, error) {
	i := bytes.IndexByte(u.data[u.pos:min(len(u.data), u.pos+4096)], '\n')
	if i < 0 {
		return "", fmt.Errorf("pickle truncated or line too long at byte %d", u.pos)
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 {
		return nil, fmt.Errorf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	if _, ok := v.(markObj); ok {
		return nil, fmt.Errorf("unexpected MARK on the stack")
	}
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 {
		return nil, fmt.Errorf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	if _, ok := v.(markObj); ok {
		return nil, fmt.Errorf("unexpected MARK on the stack")
	}
	return v, nil
}

// popMark pops everything above the topmost MARK, and the MARK itself.
func (u *unpickler) popMark() ([]any, error) {
	for i := len(u.stack) - 1; i >= 0; i-- {
		if _, ok := u.stack[i].(markObj); ok {
			if err := u.spend(len(u.stack) - i); err != nil {
				return nil, err
			}
			items := append([]any(nil), u.stack[i+1:]...)
			u.stack = u.stack[:i]
			return items, nil
		}
	}
	return nil, fmt.Errorf("no MARK on the stack")
}

// run executes opcodes until STOP and returns the pickled object.
func (u *unpickler) run() (any, error) {
	if u.memo == nil {
		u.memo = map[uint32]any{}
	}
	for {
		at := u.pos
		b, err := u.read(1)
		if err != nil {
			return nil, err
		}
		op := b[0]
		if err := u.spend(1); err != nil {
			return nil, u.errorf(op, at, "%v", err)
		}
		done, err := u.step(op)
		if err != nil {
			return nil, u.errorf(op, at, "%v", err)
		}
		if done {
			v, err := u.pop()
			if err != nil {
				return nil, u.errorf(op, at, "%v", err)
			}
			if len(u.stack) != 0 {
				return nil, u.errorf(op, at, "%d values left on the stack at STOP", len(u.stack))
			}
			return v, nil
		}
	}
}

// step executes one opcode; it reports true at STOP.
func (u *unpickler) step(op byte) (bool, error) {
	switch op {
	case opStop:
		return true, nil
	case opProto:
		b, err := u.read(1)
		if err != nil {
			return false, err
		}
		if b[0] > 5 {
			return false, fmt.Errorf("pickle protocol %d is newer than 5", b[0])
		}
	case opFrame:
		// Framing only groups opcodes for buffered reading; the whole
		// pickle is in memory, so the frame length is skipped.
		if _, err := u.read(8); err != nil {
			return false, err
		}
	case opMark:
		u.push(markObj{})
	case opPop:
		if _, err := u.pop(); err != nil {
			return false, err
		}
	case opPopMark:
		if _, err := u.popMark(); err != nil {
			return false, err
		}
	case opDup:
		v, err := u.top()
		if err != nil {
			return false, err
		}
		u.push(v)
	case opNone:
		u.push(pyNone{})
	case opNewTrue:
		u.push(true)
	case opNewFalse:
		u.push(false)
	case opBinInt:
		b, err := u.read(4)
		if err != nil {
			return false, err
		}
		u.push(int64(int32(binary.LittleEndian.Uint32(b))))
	case opBinInt1:
		b, err := u.read(1)
		if err != nil {
			return false, err
		}
		u.push(int64(b[0]))
	case opBinInt2:
		b, err := u.read(2)
		if err != nil {
			return false, err
		}
		u.push(int64(binary.LittleEndian.Uint16(b)))
	case opLong1, opLong4:
		return false, u.readLong(op)
	case opBinFloat:
		b, err := u.read(8)
		if err != nil {
			return false, err
		}
		// BINFLOAT is the one big-endian field of the protocol.
		u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case opBinUnicode, opShortBinUnicode, opBinUnicode8, opBinString, opShortBinString, opBinBytes, opShortBinBytes:
		return false, u.readString(op)
	case opEmptyTuple:
		u.push(pyTuple{})
	case opTuple1, opTuple2, opTuple3:
		n := int(op-opTuple1) + 1
		if len(u.stack) < n {
			return false, fmt.Errorf("stack underflow")
		}
		t := make(pyTuple, n)
		for i := n - 1; i >= 0; i-- {
			v, err := u.pop()
			if err != nil {
				return false, err
			}
			t[i] = v
		}
		u.push(t)
	case opTuple:
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		u.push(pyTuple(items))
	case opEmptyList:
		u.push(&pyList{})
	case opList:
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		u.push(&pyList{items: items})
	case opAppend, opAppends:
		return false, u.appendOp(op)
	case opEmptyDict:
		u.push(newDict())
	case opDict:
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		d := newDict()
		if err := setPairs(d, items); err != nil {
			return false, err
		}
		u.push(d)
	case opSetItem, opSetItems:
		return false, u.setItemOp(op)
	case opBinPut, opLongBinPut, opMemoize:
		return false, u.putOp(op)
	case opBinGet, opLongBinGet:
		return false, u.getOp(op)
	case opGlobal:
		module, err := u.readLine()
		if err != nil {
			return false, err
		}
		name, err := u.readLine()
		if err != nil {
			return false, err
		}
		g, err := u.findGlobal(module, name)
		if err != nil {
			return false, err
		}
		u.push(g)
	case opStackGlobal:
		name, err := u.pop()
		if err != nil {
			return false, err
		}
		module, err := u.pop()
		if err != nil {
			return false, err
		}
		ms, ok1 := module.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return false, fmt.Errorf("STACK_GLOBAL needs two strings")
		}
		g, err := u.findGlobal(ms, ns)
		if err != nil {
			return false, err
		}
		u.push(g)
	case opReduce:
		return false, u.reduceOp()
	case opBuild:
		return false, u.buildOp()
	case opBinPersID:
		pid, err := u.pop()
		if err != nil {
			return false, err
		}
		if u.persistentLoad == nil {
			return false, fmt.Errorf("persistent id in a pickle that may not hold any")
		}
		v, err := u.persistentLoad(pid)
		if err != nil {
			return false, err
		}
		u.push(v)
	default:
		return false, fmt.Errorf("unsupported opcode (torch.save does not write it)")
	}
	return false, nil
}

// readLong decodes LONG1/LONG4: a little-endian two's-complement integer
// of a given byte length (the legacy format's 80-bit magic number is one).
func (u *unpickler) readLong(op byte) error {
	var n int
	if op == opLong1 {
		b, err := u.read(1)
		if err != nil {
			return err
		}
		n = int(b[0])
	} else {
		b, err := u.read(4)
		if err != nil {
			return err
		}
		n = int(int32(binary.LittleEndian.Uint32(b)))
		if n < 0 {
			return fmt.Errorf("negative LONG4 length")
		}
	}
	b, err := u.read(n)
	if err != nil {
		return err
	}
	if n <= 8 {
		var v uint64
		for i := n - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		if n > 0 && n < 8 && b[n-1]&0x80 != 0 { // sign-extend
			v |= math.MaxUint64 << (8 * n)
		}
		u.push(int64(v))
		return nil
	}
	be := make([]byte, n) // big.Int wants big-endian magnitude
	for i := range b {
		be[n-1-i] = b[i]
	}
	v := new(big.Int).SetBytes(be)
	if b[n-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	u.push(v)
	return nil
}

// readString decodes the length-prefixed str and bytes opcodes. Python 2
// str (BINSTRING) becomes a Go string, as torch treats it as text.
func (u *unpickler) readString(op byte) error {
	var lenBytes int
	switch op {
	case opShortBinUnicode, opShortBinString, opShortBinBytes:
		lenBytes = 1
	case opBinUnicode8:
		lenBytes = 8
	default:
		lenBytes = 4
	}
	lb, err := u.read(lenBytes)
	if err != nil {
		return err
	}
	var n uint64
	for i := lenBytes - 1; i >= 0; i-- {
		n = n<<8 | uint64(lb[i])
	}
	if op == opBinString && int32(n) < 0 {
		return fmt.Errorf("negative string length")
	}
	if n > uint64(len(u.data)) {
		return fmt.Errorf("string length %d exceeds the pickle", n)
	}
	b, err := u.read(int(n))
	if err != nil {
		return err
	}
	switch op {
	case opBinBytes, opShortBinBytes:
		u.push(append([]byte(nil), b...))
	case opBinUnicode, opShortBinUnicode, opBinUnicode8:
		if !utf8.Valid(b) {
			return fmt.Errorf("invalid UTF-8 in a unicode string")
		}
		u.push(string(b))
	default:
		u.push(string(b))
	}
	return nil
}

func (u *unpickler) appendOp(op byte) error {
	var items []any
	if op == opAppend {
		v, err := u.pop()
		if err != nil {
			return err
		}
		items = []any{v}
	} else {
		var err error
		if items, err = u.popMark(); err != nil {
			return err
		}
	}
	target, err := u.top()
	if err != nil {
		return err
	}
	l, ok := target.(*pyList)
	if !ok {
		return fmt.Errorf("APPEND to a %s, not a list", pyTypeName(target))
	}
	if err := u.spend(len(items)); err != nil {
		return err
	}
	l.items = append(l.items, items...)
	return nil
}

func setPairs(d *pyDict, items []any) error {
	if len(items)%2 != 0 {
		return fmt.Errorf("odd number of items for a dict")
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func (u *unpickler) setItemOp(op byte) error {
	var items []any
	if op == opSetItem {
		v, err := u.pop()
		if err != nil {
			return err
		}
		k, err := u.pop()
		if err != nil {
			return err
		}
		items = []any{k, v}
	} else {
		var err error
		if items, err = u.popMark(); err != nil {
			return err
		}
	}
	target, err := u.top()
	if err != nil {
		return err
	}
	d, ok := target.(*pyDict)
	if !ok {
		return fmt.Errorf("SETITEM on a %s, not a dict", pyTypeName(target))
	}
	return setPairs(d, items)
}

func (u *unpickler) putOp(op byte) error {
	var idx uint32
	switch op {
	case opBinPut:
		b, err := u.read(1)
		if err != nil {
			return err
		}
		idx = uint32(b[0])
	case opLongBinPut:
		b, err := u.read(4)
		if err != nil {
			return err
		}
		idx = binary.LittleEndian.Uint32(b)
	default: // MEMOIZE stores at the next free index
		idx = uint32(len(u.memo))
	}
	v, err := u.top()
	if err != nil {
		return err
	}
	if _, exists := u.memo[idx]; !exists && len(u.memo) >= maxMemo {
		return fmt.Errorf("memo grows past %d entries", maxMemo)
	}
	u.memo[idx] = v
	return nil
}

func (u *unpickler) getOp(op byte) error {
	var idx uint32
	if op == opBinGet {
		b, err := u.read(1)
		if err != nil {
			return err
		}
		idx = uint32(b[0])
	} else {
		b, err := u.read(4)
		if err != nil {
			return err
		}
		idx = binary.LittleEndian.Uint32(b)
	}
	v, ok := u.memo[idx]
	if !ok {
		return fmt.Errorf("memo index %d was never stored", idx)
	}
	u.push(v)
	return nil
}

func (u *unpickler) reduceOp() error {
	args, err := u.pop()
	if err != nil {
		return err
	}
	fn, err := u.pop()
	if err != nil {
		return err
	}
	tuple, ok := args.(pyTuple)
	if !ok {
		return fmt.Errorf("REDUCE arguments are a %s, not a tuple", pyTypeName(args))
	}
	c, ok := fn.(*pyCallable)
	if !ok {
		return fmt.Errorf("REDUCE calls a %s, which is not callable here", pyTypeName(fn))
	}
	// A call may copy its arguments' items (OrderedDict(list of pairs)):
	// charge them, one level deep, which is as deep as any callable looks.
	cost := len(tuple)
	for _, a := range tuple {
		switch x := a.(type) {
		case pyTuple:
			cost += len(x)
		case *pyList:
			cost += len(x.items)
		case *pyDict:
			cost += len(x.keys)
		}
	}
	if err := u.spend(cost); err != nil {
		return err
	}
	v, err := c.call(tuple)
	if err != nil {
		return fmt.Errorf("%s: %v", c.name, err)
	}
	u.push(v)
	return nil
}

// buildOp handles BUILD (obj.__setstate__(state)). The only object torch
// state dicts BUILD is an OrderedDict receiving its __dict__ (the
// _metadata attribute of Module.state_dict()); the state is kept aside.
func (u *unpickler) buildOp() error {
	state, err := u.pop()
	if err != nil {
		return err
	}
	obj, err := u.top()
	if err != nil {
		return err
	}
	d, ok := obj.(*pyDict)
	if !ok {
		return fmt.Errorf("BUILD on a %s is not supported", pyTypeName(obj))
	}
	d.state = state
	return nil
}
