//go:build !linux

package gemm

import "time"

var cpuEpoch = time.Now()

// threadCPU falls back to wall time where per-thread CPU clocks are not wired up.
func threadCPU() time.Duration { return time.Since(cpuEpoch) }

// processCPU is wall time too.
func processCPU() time.Duration { return time.Since(cpuEpoch) }

const haveThreadCPU = false
