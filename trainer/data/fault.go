package data

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"unsafe"
)

// FaultError reports that reading a memory-mapped dataset file faulted:
// the file shrank (was truncated, or rewritten in place) after it was
// mapped, or the storage under it failed. Without this the process would
// die of SIGBUS with no checkpoint; with it the reader returns an error
// naming the file, and the trainer can save its last good state first.
type FaultError struct {
	// Path is the mapped file; Offset the byte of it whose read faulted
	// (-1 when the address lies in no mapping this dataset knows).
	Path   string
	Offset int64
}

// Error names the file and the faulting byte.
func (e *FaultError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("%s: reading memory-mapped data faulted (a dataset file truncated or changed while in use, or an I/O error)", e.Path)
	}
	return fmt.Sprintf("%s: reading the memory-mapped file faulted at byte %d (truncated or changed while in use, or an I/O error); its data can no longer be trusted", e.Path, e.Offset)
}

// guardFaults makes a fault in this goroutine a recoverable panic rather
// than a fatal signal and returns the function that restores the previous
// setting. It is deferred by every exported function that reads mapped
// memory, together with a recoverFault that turns the panic into an error.
func guardFaults() func() {
	old := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(old) }
}

// addrError is the runtime error of a memory fault with its address.
type addrError interface {
	runtime.Error
	Addr() uintptr
}

// recoverFault, deferred after guardFaults, turns a fault inside one of
// arrays' mappings into a *FaultError in *errp. Any other panic
// (including a fault elsewhere, which is a bug) goes on unwinding.
func recoverFault(errp *error, arrays func() []*Array) {
	r := recover()
	if r == nil {
		return
	}
	ae, ok := r.(addrError)
	if !ok {
		panic(r)
	}
	addr := ae.Addr()
	for _, a := range arrays() {
		if a == nil || len(a.mapped) == 0 {
			continue
		}
		base := uintptr(unsafe.Pointer(unsafe.SliceData(a.mapped)))
		if addr >= base && addr < base+uintptr(len(a.mapped)) {
			*errp = &FaultError{Path: a.path, Offset: int64(addr - base)}
			return
		}
	}
	// A SIGBUS can report an address rounded to its page; a mapping that
	// ends mid-page still owns that page.
	for _, a := range arrays() {
		if a == nil || len(a.mapped) == 0 {
			continue
		}
		base := uintptr(unsafe.Pointer(unsafe.SliceData(a.mapped)))
		end := (base + uintptr(len(a.mapped)) + pageSize - 1) &^ (pageSize - 1)
		if addr >= base&^(pageSize-1) && addr < end {
			*errp = &FaultError{Path: a.path, Offset: int64(addr) - int64(base)}
			return
		}
	}
	panic(r)
}

// pageSize rounds fault addresses; 64 KiB covers every page size in use.
const pageSize = 64 << 10

// arrays lists the dataset's memory-mapped arrays, for recoverFault.
func (d *Dataset) arrays() []*Array {
	out := make([]*Array, 0, 2*len(d.Sets))
	for _, s := range d.Sets {
		out = append(out, s.Inputs, s.Labels)
	}
	return out
}
