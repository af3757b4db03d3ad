//go:build unix

package safetensors

import (
	"os"
	"syscall"
)

// openNonBlocking opens read-only with O_NONBLOCK, so that opening a FIFO
// with no writer does not wait for one.
func openNonBlocking(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}
