//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"reflect"
)

// postArgs queues an op whose graph key is its argument struct a, taken
// by value: run receives a and takes every value its launch bakes in
// (pointers, sizes, scalars, launch shape) from it, so the key is by
// construction the op's whole argument list and a replayed graph is never
// served for arguments it was not captured with. A's type is part of the
// key, so two kinds of op with equal fields differ.
func postArgs[A any](b *Backend, name string, a A, run func(x *execCtx, a A) error) {
	b.postOp(&op{name: name, key: argKey(a), run: func(x *execCtx) error { return run(x, a) }})
}

// argKey flattens a value of scalars, strings, arrays, slices and structs
// of them into words. Types that a value comparison would not see through
// (pointers, maps, functions, interfaces, channels) are refused: what they
// point to could change between capture and replay unseen.
func argKey(a any) []uint64 {
	v := reflect.ValueOf(a)
	k := []uint64{hashName(v.Type().String())}
	return appendKey(k, v)
}

func appendKey(k []uint64, v reflect.Value) []uint64 {
	switch v.Kind() {
	case reflect.Bool:
		return append(k, cbits(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return append(k, uint64(v.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return append(k, v.Uint())
	case reflect.Float32:
		return append(k, uint64(math.Float32bits(float32(v.Float()))))
	case reflect.Float64:
		return append(k, math.Float64bits(v.Float()))
	case reflect.String:
		return append(k, uint64(v.Len()), hashName(v.String()))
	case reflect.Array, reflect.Slice:
		k = append(k, uint64(v.Len()))
		for i := 0; i < v.Len(); i++ {
			k = appendKey(k, v.Index(i))
		}
		return k
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			k = appendKey(k, v.Field(i))
		}
		return k
	}
	panic(fmt.Sprintf("cuda: an op argument of type %s cannot be part of a graph key", v.Type()))
}
