//go:build !cgo

package device

import (
	"errors"
	"fmt"
	"os"
)

// Discover without cgo cannot reach the CUDA driver or NVML (both are C
// libraries opened with dlopen): it reports the CPU and says why.
func Discover() *Inventory {
	inv := &Inventory{CPU: ReadCPU(), Visible: "(unset)"}
	if v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
		inv.Visible = fmt.Sprintf("%q", v)
	}
	inv.CUDAErr = errors.New("this trm-train was built without cgo (CGO_ENABLED=0): the CUDA driver cannot be asked")
	_, inv.NVMLErr = OpenNVML("")
	return inv
}
