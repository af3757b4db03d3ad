package costmodel

import (
	"fmt"
	"sort"
	"strings"
)

// GPU holds the vendor figures a prediction is computed from, and the
// overheads assumed on top of them.
type GPU struct {
	Name string
	// TensorBF16 is the peak dense bf16 tensor-core rate, FLOP/s (the
	// datasheet's sparse figure halved). MFU is quoted against it.
	TensorBF16 float64
	// FP32 is the peak fp32 rate of the CUDA cores, FLOP/s (an FMA is two).
	FP32 float64
	// HBM is the device memory bandwidth, bytes/s.
	HBM float64
	// PCIe is the host link's bandwidth in one direction, bytes/s.
	PCIe float64
	// Memory is the device memory, bytes.
	Memory float64
}

// Vendor datasheet figures (NVIDIA H100 Tensor Core GPU datasheet, SXM5
// column; NVIDIA H200 Tensor Core GPU datasheet, SXM column; NVIDIA A100
// Tensor Core GPU datasheet, 80GB SXM column; NVIDIA L40S datasheet).
// Tensor rates are the dense ones: the datasheets' headline bf16 figures
// (1,979 / 1,979 / 624 / 733 TFLOPS) assume 2:4 structured sparsity,
// which dense training does not use. PCIe is the datasheets'
// bidirectional figure halved (Gen5 x16 128 GB/s, Gen4 x16 64 GB/s).
var gpus = map[string]GPU{
	"H100": {Name: "H100 SXM5 80GB", TensorBF16: 989.4e12, FP32: 66.9e12, HBM: 3.35e12, PCIe: 64e9, Memory: 80e9},
	"H200": {Name: "H200 SXM 141GB", TensorBF16: 989.4e12, FP32: 66.9e12, HBM: 4.8e12, PCIe: 64e9, Memory: 141e9},
	"A100": {Name: "A100 SXM4 80GB", TensorBF16: 312e12, FP32: 19.5e12, HBM: 2.039e12, PCIe: 32e9, Memory: 80e9},
	"L40S": {Name: "L40S 48GB", TensorBF16: 362.05e12, FP32: 91.6e12, HBM: 0.864e12, PCIe: 32e9, Memory: 48e9},
}

// GPUs lists the names Predict accepts, sorted.
func GPUs() []string {
	names := make([]string, 0, len(gpus))
	for n := range gpus {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LookupGPU returns the named GPU's figures. Names are matched without
// regard to case, and a device name as the driver reports it ("NVIDIA
// H100 80GB HBM3") finds its entry.
func LookupGPU(name string) (GPU, error) {
	up := strings.ToUpper(name)
	if g, ok := gpus[up]; ok {
		return g, nil
	}
	for _, n := range GPUs() {
		if strings.Contains(up, n) {
			return gpus[n], nil
		}
	}
	return GPU{}, fmt.Errorf("unknown GPU %q (known: %s)", name, strings.Join(GPUs(), ", "))
}

// Overheads are the per-operation costs a roofline does not see.
type Overheads struct {
	// Launch is added to every kernel launch, library call and copy.
	Launch float64
	// Sync is added to every host synchronisation (Backend.Sync): the
	// round trip from the host to the GPU and back.
	Sync float64
}

// Overheads the predictions assume, in seconds. With graphs (the CUDA
// backend's default, cuda/exec.go) the ops between two Syncs replay as one
// CUDA graph: consecutive kernels start about a microsecond apart on
// Hopper and Ampere. Eager launches go through the backend's worker
// goroutine, cgo and cuLaunchKernel, a few microseconds of host time
// each; kernels shorter than that leave the GPU waiting on the host.
// A Sync costs a graph launch, a stream synchronisation and the wake-up
// of the waiting goroutine. These are estimates, not measurements:
// bench/gpu-check prints the prediction beside the measured step time.
var (
	GraphOverheads = Overheads{Launch: 1e-6, Sync: 20e-6}
	EagerOverheads = Overheads{Launch: 5e-6, Sync: 20e-6}
)
