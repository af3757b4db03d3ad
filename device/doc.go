// Package device describes the accelerators this process can see.
//
// Its first part is GPU telemetry through NVIDIA's management library
// (NVML), read with github.com/NVIDIA/go-nvml. go-nvml opens
// libnvidia-ml.so.1 with dlopen at run time, so a trm-train built here
// links without any NVIDIA library and runs on machines without a driver:
// OpenNVML then returns an error and callers leave GPU telemetry out.
//
// NVML reports what the driver sees for every process on the device (for
// example memory used by other jobs too); the engine's own allocations are
// reported separately by its backend where it supports that.
package device
