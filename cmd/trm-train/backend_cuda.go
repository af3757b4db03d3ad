//go:build cuda

package main

import (
	"github.com/tinyrecursive/trm/cuda"
	"github.com/tinyrecursive/trm/engine"
)

// The cuda build resolves --device cuda:N to the CUDA backend.
func init() {
	cudaBackend = func(device int) (engine.Backend, error) {
		b, err := cuda.New(device)
		if err != nil {
			return nil, err // an explicit nil interface, not a nil *cuda.Backend
		}
		return b, nil
	}
}
