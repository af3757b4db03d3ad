package cpu_test

import (
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/enginetest"
)

func TestGolden(t *testing.T) {
	enginetest.RunGolden(t, func() engine.Backend { return cpu.New(0) })
}
