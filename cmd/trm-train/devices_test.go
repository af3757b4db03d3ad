package main

import (
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/device"
)

// TestDevices runs `trm-train devices` on this machine: with no GPU it
// must say so and list the CPU; with GPUs, list each.
func TestDevices(t *testing.T) {
	t.Setenv("WORLD_SIZE", "2") // a broken multi-process environment is reported, not fatal
	code, out, errs := runCmd("devices")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"CUDA_VISIBLE_DEVICES", "CPU: ", "logical CPUs usable", "SIMD: ", "NCCL: ", "RANK is not set"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if inv := device.Discover(); inv.Count() == 0 && !strings.Contains(out, "No GPU found") {
		t.Errorf("no GPU here, but the output does not say so:\n%s", out)
	}
	if code, _, _ := runCmd("devices", "extra"); code != 2 {
		t.Errorf("an extra argument: exit %d, want 2", code)
	}
}
