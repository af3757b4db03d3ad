//go:build unix

package safetensors

import (
	"path/filepath"
	"syscall"
	"testing"
)

// mkfifo makes a FIFO nobody writes to; opening it for a plain read
// would block forever.
func mkfifo(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "fifo.safetensors")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
