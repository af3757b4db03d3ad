//go:build !unix

package safetensors

import "os"

// openNonBlocking opens read-only; without Unix FIFOs a plain open does
// not block.
func openNonBlocking(path string) (*os.File, error) { return os.Open(path) }
