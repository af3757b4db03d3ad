//go:build unix

package data

import (
	"fmt"
	"syscall"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// OpenNPY memory-maps a .npy file read-only, so that opening a
// multi-gigabyte inputs file costs a header parse, not a read; pages come
// in as batches touch them. Close the array to unmap it. path must be a
// regular file (a FIFO or device is refused at once). A fault reading the
// mapping later, when the file is truncated under the process, surfaces as
// a *FaultError from the iterators and Check.
func OpenNPY(path string) (_ *Array, err error) {
	f, size, err := safetensors.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives the descriptor
	if size == 0 {
		return nil, fmt.Errorf("%s: npy: empty file", path)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: too large to map", path)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	mapped := &Array{path: path, mapped: m}
	defer func() {
		if err != nil {
			syscall.Munmap(m)
		}
	}()
	// The header is read from the mapping: the file may shrink already.
	defer guardFaults()()
	defer recoverFault(&err, func() []*Array { return []*Array{mapped} })
	a, err := ParseNPY(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	a.path, a.mapped = path, m
	a.unmap = func() error { return syscall.Munmap(m) }
	return a, nil
}
