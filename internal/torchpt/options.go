package torchpt

import (
	"fmt"
	"math/bits"
)

// Options bound what loading one file may cost. Every size a file
// declares (element counts, strides, offsets, the pickle's length, zip
// entry sizes) is checked against them and against the file's own size
// before anything is allocated, so a small hostile file cannot make a
// load use more memory than the caller allowed. The zero value means the
// documented defaults.
type Options struct {
	// MaxBytes bounds the memory a load allocates for tensor data: the
	// storages read from the file plus the tensors copied out of them
	// (0: DefaultMaxBytes). A checkpoint of S bytes of weights needs at
	// most 2*S.
	MaxBytes int64
	// MaxPickleBytes bounds the pickle describing the state dict
	// (0: DefaultMaxPickleBytes).
	MaxPickleBytes int64
	// MaxExpansion bounds how many times larger than its compressed size
	// a compressed zip entry may inflate (0: DefaultMaxExpansion); entries
	// under 64 KiB are exempt. torch.save stores entries uncompressed, so
	// only an archive repacked by another tool has compressed ones.
	MaxExpansion int64
	// AllowExpandedViews lets one tensor materialise more elements than
	// its storage holds (a zero stride, as torch.Tensor.expand makes).
	// Off by default: such a copy can be any number of times larger than
	// the file, and a state dict of trained weights never needs one.
	AllowExpandedViews bool
}

// The defaults of Options.
const (
	// DefaultMaxBytes (16 GiB) holds twice the largest reference
	// checkpoints (the ARC models' puzzle-embedding tables are a few GB).
	DefaultMaxBytes = 16 << 30
	// DefaultMaxPickleBytes (64 MiB): a state dict's pickle takes about
	// 300 bytes per tensor, so this holds 200 000 tensors.
	DefaultMaxPickleBytes = 64 << 20
	// DefaultMaxExpansion: deflate on trained weights gains about 10%;
	// a ratio of 16 leaves room for sparse tables and refuses bombs,
	// which inflate up to 1032 times.
	DefaultMaxExpansion = 16
	// minExpansionExempt is the entry size below which any ratio is
	// accepted (tiny entries such as "byteorder" compress arbitrarily).
	minExpansionExempt = 64 << 10
)

func (o Options) withDefaults() Options {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxPickleBytes <= 0 {
		o.MaxPickleBytes = DefaultMaxPickleBytes
	}
	if o.MaxExpansion <= 0 {
		o.MaxExpansion = DefaultMaxExpansion
	}
	return o
}

// mulBytes returns n*size, or ok false when the product overflows an
// int64 (a hostile count must not wrap round to a small, plausible size).
func mulBytes(n, size int64) (int64, bool) {
	if n < 0 || size < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(n), uint64(size))
	if hi != 0 || lo > 1<<63-1 {
		return 0, false
	}
	return int64(lo), true
}

// addBytes returns a+b, or ok false on overflow (both non-negative).
func addBytes(a, b int64) (int64, bool) {
	s, carry := bits.Add64(uint64(a), uint64(b), 0)
	if carry != 0 || s > 1<<63-1 {
		return 0, false
	}
	return int64(s), true
}

// budget tracks the bytes a load has committed to allocating.
type budget struct {
	used, max int64
}

// take commits n more bytes for what, failing past the budget.
func (b *budget) take(n int64, what string) error {
	total, ok := addBytes(b.used, n)
	if !ok || total > b.max {
		return fmt.Errorf("%s needs %d bytes, which with the %d already committed exceeds the %d-byte memory budget (Options.MaxBytes)",
			what, n, b.used, b.max)
	}
	b.used = total
	return nil
}
