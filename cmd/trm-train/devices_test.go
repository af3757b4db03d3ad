package main

import (
	"os"
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

// TestDevicesStandin: on the CPU stand-in for the CUDA driver (make
// test-cuda-standin sets TRM_STANDIN=1 and puts it on the library path),
// `trm-train devices` lists its devices, each labelled emulated, so no one
// mistakes them for GPUs.
func TestDevicesStandin(t *testing.T) {
	if os.Getenv("TRM_STANDIN") != "1" {
		t.Skip("needs the CPU stand-in for the NVIDIA libraries (make test-cuda-standin)")
	}
	inv := device.Discover()
	if inv.Count() == 0 {
		t.Fatalf("TRM_STANDIN=1 but no stand-in device found: %v", inv.CUDAErr)
	}
	code, out, errs := runCmd("devices")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "emulated: the CPU stand-in") {
		t.Errorf("output does not say the driver is emulated:\n%s", out)
	}
	for _, g := range inv.GPUs {
		if !g.Emulated {
			t.Errorf("device %d (%s) of the stand-in is not marked emulated", g.CUDA, g.Name)
		}
	}
	if n := strings.Count(out, "(emulated)"); n != inv.Count() {
		t.Errorf("%d of %d devices labelled (emulated):\n%s", n, inv.Count(), out)
	}
}
