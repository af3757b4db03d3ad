//go:build !unix

package safetensors

import "testing"

// mkfifo returns "": there are no FIFOs to test here.
func mkfifo(t *testing.T) string { return "" }
