//go:build !amd64

package gemm

// registerArchKernels has nothing to add on this architecture: the portable
// Go kernel is used.
func registerArchKernels() {}
