//go:build !cgo

package device

import "errors"

// GPUStats is one reading of one GPU; see the cgo build. Without cgo
// there is no NVML, so no value of it is ever produced.
type GPUStats struct {
	Index       int
	UUID, Name  string
	Utilization float64
	MemoryUsed  float64
	MemoryTotal float64
	Temperature float64
	Power       float64
	SMClock     float64
}

// NVML is the NVML handle; without cgo it cannot be opened.
type NVML struct{}

// DefaultNVMLLibrary is the library a cgo build loads.
const DefaultNVMLLibrary = "libnvidia-ml.so.1"

// OpenNVML always fails without cgo: go-nvml calls the library through
// cgo, so a CGO_ENABLED=0 build has GPU telemetry off rather than failing
// to compile.
func OpenNVML(string) (*NVML, error) {
	return nil, errors.New("NVML: this trm-train was built without cgo (CGO_ENABLED=0), which GPU telemetry needs")
}

// Count is 0: nothing can be opened.
func (*NVML) Count() int { return 0 }

// Sample returns nil.
func (*NVML) Sample() []GPUStats { return nil }

// Close does nothing.
func (*NVML) Close() error { return nil }
