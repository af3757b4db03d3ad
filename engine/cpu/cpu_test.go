package cpu_test

import (
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/enginetest"
)

func all() engine.Backend { return cpu.New(0) }

// TestConformance runs the engine's conformance suite on the CPU backend.
func TestConformance(t *testing.T) { enginetest.Run(t, all) }

// TestThreadCountInvariance: the CPU backend's bits do not depend on its
// thread count (fixed per-row work and a GEMM whose K order is fixed), so
// a run resumed on another machine reproduces the same losses.
func TestThreadCountInvariance(t *testing.T) {
	enginetest.RunDeterminism(t, func() engine.Backend { return cpu.New(1) }, func() engine.Backend { return cpu.New(3) })
}
