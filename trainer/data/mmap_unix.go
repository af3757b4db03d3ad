//go:build unix

package data

import (
	"fmt"
	"os"
	"syscall"
)

// OpenNPY memory-maps a .npy file read-only, so that opening a
// multi-gigabyte inputs file costs a header parse, not a read; pages come
// in as batches touch them. Close the array to unmap it.
func OpenNPY(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
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
	a, err := ParseNPY(m)
	if err != nil {
		syscall.Munmap(m)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	a.unmap = func() error { return syscall.Munmap(m) }
	return a, nil
}
