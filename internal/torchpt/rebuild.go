package torchpt

import (
	"context"
	"fmt"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// storageDTypes maps torch's legacy typed-storage class names, which
// torch.save still writes into persistent ids, to element types.
var storageDTypes = map[string]safetensors.DType{
	"DoubleStorage":   safetensors.F64,
	"FloatStorage":    safetensors.F32,
	"HalfStorage":     safetensors.F16,
	"BFloat16Storage": safetensors.BF16,
	"LongStorage":     safetensors.I64,
	"IntStorage":      safetensors.I32,
	"ShortStorage":    safetensors.I16,
	"CharStorage":     safetensors.I8,
	"ByteStorage":     safetensors.U8,
	"BoolStorage":     safetensors.BOOL,
}

// storage is one serialized storage (a flat array of elements). Data is
// filled in after the pickle has run: in the legacy format the bytes come
// after the pickle that references them.
type storage struct {
	key   string
	dtype safetensors.DType
	numel int64
	data  []byte
}

// storageSlice is what a persistent id resolves to: a whole storage, or
// in old legacy files a view of one (offset and length in elements).
type storageSlice struct {
	root          *storage
	offset, numel int64
}

// tensorRef is a tensor as _rebuild_tensor_v2 describes it: a strided view
// (offset, size, stride, all in elements) of a storage. It is turned into
// contiguous bytes only once the storage bytes are known.
type tensorRef struct {
	st     storageSlice
	offset int64
	size   []int64
	stride []int64
	// planned is set once plan has checked the view against its storage
	// and the budget; only then may it be copied.
	planned bool
}

// storageTable creates one storage record per key, so tensors sharing a
// storage share its bytes.
type storageTable struct {
	byKey map[string]*storage
	order []string
}

func newStorageTable() *storageTable { return &storageTable{byKey: map[string]*storage{}} }

// persistentLoad interprets torch's persistent id
// ('storage', storage_type, key, location, numel[, view_metadata]).
// The location (e.g. 'cpu', 'cuda:0') does not matter: bytes are bytes.
func (s *storageTable) persistentLoad(pid any) (any, error) {
	t, ok := pid.(pyTuple)
	if !ok || len(t) < 5 || len(t) > 6 {
		return nil, fmt.Errorf("persistent id is a %s of %d items, want a storage tuple", pyTypeName(pid), len(t))
	}
	if tag, _ := t[0].(string); tag != "storage" {
		return nil, fmt.Errorf("persistent id of kind %v, want 'storage'", t[0])
	}
	cls, ok := t[1].(*pyClass)
	if !ok {
		return nil, fmt.Errorf("storage type is a %s, not a torch storage class", pyTypeName(t[1]))
	}
	dtype, ok := cls.value.(safetensors.DType)
	if !ok {
		return nil, fmt.Errorf("%s is not a storage class", cls.name)
	}
	key, ok := t[2].(string)
	if !ok {
		return nil, fmt.Errorf("storage key is a %s, not a str", pyTypeName(t[2]))
	}
	numel, ok := t[4].(int64)
	if !ok || numel < 0 {
		return nil, fmt.Errorf("storage %s: bad element count %v", key, t[4])
	}
	root, seen := s.byKey[key]
	if !seen {
		root = &storage{key: key, dtype: dtype, numel: numel}
		s.byKey[key] = root
		s.order = append(s.order, key)
	} else if root.dtype != dtype || root.numel != numel {
		return nil, fmt.Errorf("storage %s referenced as %s[%d] and as %s[%d]", key, root.dtype, root.numel, dtype, numel)
	}
	slice := storageSlice{root: root, offset: 0, numel: numel}
	if len(t) == 6 {
		if _, isNone := t[5].(pyNone); !isNone {
			// Legacy view metadata (view_key, offset, size): the tensor
			// uses a sub-range of the root storage.
			vm, ok := t[5].(pyTuple)
			if !ok || len(vm) != 3 {
				return nil, fmt.Errorf("storage %s: bad view metadata %v", key, t[5])
			}
			off, ok1 := vm[1].(int64)
			n, ok2 := vm[2].(int64)
			if !ok1 || !ok2 || off < 0 || n < 0 || off > numel || n > numel-off {
				return nil, fmt.Errorf("storage %s: view [%v, +%v) outside its %d elements", key, vm[1], vm[2], numel)
			}
			slice = storageSlice{root: root, offset: off, numel: n}
		}
	}
	return slice, nil
}

// findGlobal is the allow-list of Python globals a state dict may name.
// Anything else is refused by name: loading never runs code, and an
// unexpected global means the file is not a plain state dict.
func findGlobal(module, name string) (any, error) {
	full := module + "." + name
	switch full {
	case "collections.OrderedDict":
		return &pyCallable{name: full, call: callOrderedDict}, nil
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		return &pyCallable{name: full, call: callRebuildTensor}, nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		return &pyCallable{name: full, call: callRebuildParameter}, nil
	}
	if module == "torch" {
		if dt, ok := storageDTypes[name]; ok {
			return &pyClass{name: full, value: dt}, nil
		}
	}
	return nil, fmt.Errorf("unsupported global %s (only tensors, parameters and (Ordered)dicts of them can be loaded; nothing is executed)", full)
}

// callOrderedDict builds OrderedDict() or OrderedDict(iterable of pairs).
func callOrderedDict(args pyTuple) (any, error) {
	d := newDict()
	if len(args) == 0 {
		return d, nil
	}
	if len(args) > 1 {
		return nil, fmt.Errorf("takes at most 1 argument, got %d", len(args))
	}
	var items []any
	switch src := args[0].(type) {
	case *pyList:
		items = src.items
	case pyTuple:
		items = src
	case *pyDict:
		for i := range src.keys {
			if err := d.set(src.keys[i], src.vals[i]); err != nil {
				return nil, err
			}
		}
		return d, nil
	default:
		return nil, fmt.Errorf("cannot build from a %s", pyTypeName(args[0]))
	}
	for _, it := range items {
		pair, ok := it.(pyTuple)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("item is not a (key, value) pair")
		}
		if err := d.set(pair[0], pair[1]); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// intTuple converts a tuple of ints (a size or a stride).
func intTuple(v any, what string) ([]int64, error) {
	t, ok := v.(pyTuple)
	if !ok {
		return nil, fmt.Errorf("%s is a %s, not a tuple", what, pyTypeName(v))
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok {
			return nil, fmt.Errorf("%s[%d] is a %s, not an int", what, i, pyTypeName(x))
		}
		out[i] = n
	}
	return out, nil
}

// callRebuildTensor handles _rebuild_tensor_v2(storage, storage_offset,
// size, stride, requires_grad, backward_hooks[, metadata]) and the older
// _rebuild_tensor(storage, storage_offset, size, stride). requires_grad,
// hooks and metadata do not affect the values and are ignored.
func callRebuildTensor(args pyTuple) (any, error) {
	if len(args) < 4 || len(args) > 7 {
		return nil, fmt.Errorf("got %d arguments, want 4 to 7", len(args))
	}
	st, ok := args[0].(storageSlice)
	if !ok {
		return nil, fmt.Errorf("first argument is a %s, not a storage", pyTypeName(args[0]))
	}
	off, ok := args[1].(int64)
	if !ok {
		return nil, fmt.Errorf("storage offset is a %s, not an int", pyTypeName(args[1]))
	}
	size, err := intTuple(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("size %v and stride %v differ in rank", size, stride)
	}
	return &tensorRef{st: st, offset: off, size: size, stride: stride}, nil
}

// callRebuildParameter unwraps nn.Parameter: its data tensor is the value.
func callRebuildParameter(args pyTuple) (any, error) {
	if len(args) < 3 || len(args) > 4 {
		return nil, fmt.Errorf("got %d arguments, want 3 or 4", len(args))
	}
	t, ok := args[0].(*tensorRef)
	if !ok {
		return nil, fmt.Errorf("data is a %s, not a tensor", pyTypeName(args[0]))
	}
	return t, nil
}

// plan checks every view of the state dict against its storage before
// any storage bytes are read: sizes, strides and the offset are
// non-negative, every element the view addresses lies inside its storage
// (computed without overflow), the view does not materialise more
// elements than its storage holds unless Options.AllowExpandedViews, and
// the copies fit the budget.
func (ck *checkpoint) plan(o Options, b *budget) error {
	for _, k := range ck.keys {
		t := ck.refs[k]
		n, err := t.check(o)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", k, err)
		}
		if err := b.take(n, fmt.Sprintf("tensor %q", k)); err != nil {
			return err
		}
		t.planned = true
	}
	return nil
}

// check validates the view and returns its contiguous size in bytes.
func (t *tensorRef) check(o Options) (int64, error) {
	es := int64(t.st.root.dtype.Size())
	numel := int64(1)
	for i, d := range t.size {
		if d < 0 {
			return 0, fmt.Errorf("negative size %v", t.size)
		}
		if t.stride[i] < 0 {
			return 0, fmt.Errorf("negative stride %v", t.stride)
		}
		var ok bool
		if numel, ok = mulBytes(numel, d); !ok {
			return 0, fmt.Errorf("size %v overflows an element count", t.size)
		}
	}
	if t.offset < 0 {
		return 0, fmt.Errorf("negative storage offset %d", t.offset)
	}
	nbytes, ok := mulBytes(numel, es)
	if !ok {
		return 0, fmt.Errorf("size %v of %s overflows a byte count", t.size, t.st.root.dtype)
	}
	if numel == 0 {
		return 0, nil
	}
	// The largest element index the view touches must be inside the
	// storage slice.
	last := t.offset
	for i, d := range t.size {
		step, ok1 := mulBytes(d-1, t.stride[i])
		sum, ok2 := addBytes(last, step)
		if !ok1 || !ok2 {
			return 0, fmt.Errorf("size %v with stride %v overflows", t.size, t.stride)
		}
		last = sum
	}
	if last >= t.st.numel {
		return 0, fmt.Errorf("view (offset %d, size %v, stride %v) reaches element %d of a %d-element storage",
			t.offset, t.size, t.stride, last, t.st.numel)
	}
	if numel > t.st.numel && !o.AllowExpandedViews {
		return 0, fmt.Errorf("view (size %v, stride %v) materialises %d elements from a %d-element storage (zero or overlapping strides, as expand makes); refused unless Options.AllowExpandedViews",
			t.size, t.stride, numel, t.st.numel)
	}
	return nbytes, nil
}

// materialize copies a view, checked by plan, into a contiguous C-order
// tensor.
func (t *tensorRef) materialize(ctx context.Context) (safetensors.Tensor, error) {
	if !t.planned {
		return safetensors.Tensor{}, fmt.Errorf("view was not checked before copying")
	}
	dtype := t.st.root.dtype
	es := int64(dtype.Size())
	shape := make([]int, len(t.size))
	numel := int64(1)
	for i, d := range t.size {
		shape[i] = int(d)
		numel *= d // cannot overflow: checked by plan
	}
	out := safetensors.Tensor{DType: dtype, Shape: shape, Data: make([]byte, numel*es)}
	if numel == 0 {
		return out, nil
	}
	lo, hi := t.st.offset*es, (t.st.offset+t.st.numel)*es
	data := t.st.root.data
	if int64(len(data)) < hi {
		// The storage bytes must have been read in full; slicing up to a
		// buffer's capacity would silently yield zeros.
		return safetensors.Tensor{}, fmt.Errorf("storage %s holds %d bytes, the view needs %d", t.st.root.key, len(data), hi)
	}
	if err := copyStrided(ctx, out.Data, data[lo:hi:hi], t.offset, t.size, t.stride, es); err != nil {
		return safetensors.Tensor{}, err
	}
	return out, nil
}

// copyStrided gathers the elements of a strided view of src into dst in
// C order. The last dimension is copied as one block when its stride is 1
// (the common, contiguous case), element by element otherwise; an
// odometer walks the leading dimensions.
//
// ctx is checked about every safetensors.ChunkBytes copied (a row at a
// time, or inside a long strided row): copying a multi-gigabyte view
// element by element takes seconds.
func copyStrided(ctx context.Context, dst, src []byte, offset int64, size, stride []int64, es int64) error {
	rank := len(size)
	if rank == 0 {
		copy(dst, src[offset*es:(offset+1)*es])
		return nil
	}
	inner, innerStride := size[rank-1], stride[rank-1]
	idx := make([]int64, rank-1)
	var out, check int64
	interrupted := func() error {
		if out < check {
			return nil
		}
		check = out + safetensors.ChunkBytes
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("copying out interrupted after %d of %d bytes: %w", out, len(dst), err)
		}
		return nil
	}
	for {
		if err := interrupted(); err != nil {
			return err
		}
		base := offset
		for i, v := range idx {
			base += v * stride[i]
		}
		if innerStride == 1 {
			n := inner * es
			copy(dst[out:out+n], src[base*es:base*es+n])
			out += n
		} else {
			for j := int64(0); j < inner; j++ {
				p := (base + j*innerStride) * es
				copy(dst[out:out+es], src[p:p+es])
				out += es
				if j&0xffff == 0xffff {
					if err := interrupted(); err != nil {
						return err
					}
				}
			}
		}
		// Advance the odometer over the leading dimensions.
		d := rank - 2
		for ; d >= 0; d-- {
			idx[d]++
			if idx[d] < size[d] {
				break
			}
			idx[d] = 0
		}
		if d < 0 {
			return nil
		}
	}
}
