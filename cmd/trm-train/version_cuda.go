//go:build cuda

package main

import "github.com/tinyrecursive/trm/kernels"

// The cuda build reports the targets of the kernels it would load: the
// file TRM_CUDA_FATBIN names, else the embedded kernels/trm.fatbin.
func init() {
	kernelFatbin = func() ([]byte, string, error) {
		if b, src, ok, err := readFatbinEnv(); ok {
			return b, src, err
		}
		return kernels.Fatbin, "built in", nil
	}
}
