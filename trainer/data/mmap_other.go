//go:build !unix

package data

// OpenNPY reads a .npy file; where memory mapping is not wired up it falls
// back to reading the whole file onto the heap.
func OpenNPY(path string) (*Array, error) { return ReadNPY(path) }
