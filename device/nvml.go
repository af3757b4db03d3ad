//go:build cgo

package device

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// GPUStats is one reading of one GPU. A float field is NaN where the
// device or driver does not report it (NVML answers "not supported" for
// power on some boards, for instance), so callers can leave it out
// rather than publish a false zero.
type GPUStats struct {
	Index int    // NVML's device index (not CUDA_VISIBLE_DEVICES order)
	UUID  string // stable across reboots and index changes
	Name  string // product name, e.g. "NVIDIA H200"
	// Utilization is the fraction of the last sample period (1/6 s to
	// 1 s, driver-dependent) during which a kernel was running.
	Utilization float64
	MemoryUsed  float64 // bytes, every process on the device
	MemoryTotal float64 // bytes
	Temperature float64 // degrees Celsius, GPU die
	Power       float64 // watts, whole board
	SMClock     float64 // hertz, current streaming-multiprocessor clock
}

// NVML is an open handle on the NVIDIA management library with the
// devices it enumerated when opened.
type NVML struct {
	mu      sync.Mutex
	lib     nvml.Interface
	devices []nvml.Device
	closed  bool
}

// DefaultNVMLLibrary is the library OpenNVML loads: the soname the driver
// installs, so no CUDA toolkit is needed.
const DefaultNVMLLibrary = "libnvidia-ml.so.1"

// OpenNVML loads NVML from path (DefaultNVMLLibrary when empty),
// initialises it and enumerates the devices. Without a driver it returns an
// error (never panics): the caller decides whether that matters.
func OpenNVML(path string) (*NVML, error) {
	if path == "" {
		path = DefaultNVMLLibrary
	}
	lib := nvml.New(nvml.WithLibraryPath(path))
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("NVML (%s): %s", path, nvmlError(lib, ret))
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		lib.Shutdown()
		return nil, fmt.Errorf("NVML: counting devices: %s", nvmlError(lib, ret))
	}
	h := &NVML{lib: lib}
	for i := range n {
		d, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			lib.Shutdown()
			return nil, fmt.Errorf("NVML: device %d: %s", i, nvmlError(lib, ret))
		}
		h.devices = append(h.devices, d)
	}
	return h, nil
}

// nvmlError names a return code. ErrorString needs the library loaded,
// so the one failure where it is not gets its own message.
func nvmlError(lib nvml.Interface, ret nvml.Return) string {
	if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
		return "library not found (no NVIDIA driver loaded)"
	}
	return lib.ErrorString(ret)
}

// Count is the number of devices NVML enumerated.
func (h *NVML) Count() int { return len(h.devices) }

// Sample reads every device. A device whose UUID cannot be read is left
// out (its series could not be labelled stably); other unreadable fields
// are NaN. After Close it returns nil.
func (h *NVML) Sample() []GPUStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	out := make([]GPUStats, 0, len(h.devices))
	for i, d := range h.devices {
		uuid, ret := d.GetUUID()
		if ret != nvml.SUCCESS {
			continue
		}
		s := GPUStats{Index: i, UUID: uuid, Utilization: math.NaN(), MemoryUsed: math.NaN(), MemoryTotal: math.NaN(),
			Temperature: math.NaN(), Power: math.NaN(), SMClock: math.NaN()}
		if name, ret := d.GetName(); ret == nvml.SUCCESS {
			s.Name = name
		}
		if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
			s.Utilization = float64(u.Gpu) / 100
		}
		if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			s.MemoryUsed, s.MemoryTotal = float64(m.Used), float64(m.Total)
		}
		if t, ret := d.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
			s.Temperature = float64(t)
		}
		if p, ret := d.GetPowerUsage(); ret == nvml.SUCCESS {
			s.Power = float64(p) / 1000 // milliwatts
		}
		if c, ret := d.GetClockInfo(nvml.CLOCK_SM); ret == nvml.SUCCESS {
			s.SMClock = float64(c) * 1e6 // MHz
		}
		out = append(out, s)
	}
	return out
}

// Close shuts NVML down; Sample returns nil afterwards.
func (h *NVML) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	if ret := h.lib.Shutdown(); ret != nvml.SUCCESS {
		return errors.New("NVML shutdown: " + h.lib.ErrorString(ret))
	}
	return nil
}
