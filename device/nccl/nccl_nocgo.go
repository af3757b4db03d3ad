//go:build !cgo

package nccl

import "errors"

// Without cgo nothing can be opened with dlopen: every entry point says
// so, and the rest of trm-train (the CPU path) builds and runs.
var errNoCgo = errors.New("NCCL: this trm-train was built without cgo (CGO_ENABLED=0), which loading NCCL needs")

// Lib is an opened NCCL library; without cgo none can be opened.
type Lib struct {
	Path     string
	Version  int
	Emulated bool
}

var errOpen = errors.Join(ErrNotFound, errNoCgo)

// Open fails without cgo, wrapping ErrNotFound.
func Open() (*Lib, error) { return nil, errOpen }

// OpenPath fails without cgo, wrapping ErrNotFound.
func OpenPath(string) (*Lib, error) { return Open() }

// UniqueID fails without cgo.
func (*Lib) UniqueID() (UniqueID, error) { return UniqueID{}, errNoCgo }

// Comm is a communicator; without cgo none exists.
type Comm struct{}

// InitRank fails without cgo.
func (*Lib) InitRank(UniqueID, int, int) (*Comm, error) { return nil, errNoCgo }
