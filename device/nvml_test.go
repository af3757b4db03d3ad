package device

import (
	"math"
	"strings"
	"testing"
)

// TestOpenNVMLMissingLibrary is the machine without a driver: opening
// must fail with an error that says so, not crash.
func TestOpenNVMLMissingLibrary(t *testing.T) {
	h, err := OpenNVML("/nonexistent/libnvidia-ml.so.1")
	if err == nil {
		h.Close()
		t.Fatal("opening a library that does not exist succeeded")
	}
	if !strings.Contains(err.Error(), "NVML") {
		t.Errorf("error %q does not name NVML", err)
	}
}

// TestNVMLSample reads every GPU where a driver is loaded, and otherwise
// checks that the default library fails cleanly too.
func TestNVMLSample(t *testing.T) {
	h, err := OpenNVML("")
	if err != nil {
		t.Logf("no GPU telemetry here: %v", err)
		if h != nil {
			t.Error("OpenNVML returned a handle with its error")
		}
		return
	}
	defer h.Close()
	s := h.Sample()
	if len(s) != h.Count() || len(s) == 0 {
		t.Fatalf("sampled %d of %d devices", len(s), h.Count())
	}
	for _, g := range s {
		t.Logf("GPU %d %s %s: util %.2f mem %.0f/%.0f MiB %g C %g W SM %g MHz", g.Index, g.UUID, g.Name,
			g.Utilization, g.MemoryUsed/(1<<20), g.MemoryTotal/(1<<20), g.Temperature, g.Power, g.SMClock/1e6)
		if !strings.HasPrefix(g.UUID, "GPU-") {
			t.Errorf("device %d: UUID %q", g.Index, g.UUID)
		}
		if !(g.MemoryTotal > 0) || g.MemoryUsed > g.MemoryTotal {
			t.Errorf("device %d: memory %g of %g bytes", g.Index, g.MemoryUsed, g.MemoryTotal)
		}
		if !math.IsNaN(g.Utilization) && (g.Utilization < 0 || g.Utilization > 1) {
			t.Errorf("device %d: utilization %g outside [0, 1]", g.Index, g.Utilization)
		}
		if !(g.SMClock > 0) {
			t.Errorf("device %d: SM clock %g Hz", g.Index, g.SMClock)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if h.Sample() != nil {
		t.Error("Sample after Close returned readings")
	}
}
