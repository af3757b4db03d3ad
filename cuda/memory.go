//go:build cuda

package cuda

import (
	"fmt"

	"gorgonia.org/cu"
)

// DeviceMemory reports the engine's own device memory: bytes handed out
// to live buffers and bytes reserved from the driver by the arena. It is
// safe to call from any goroutine (the metrics exporter's
// DeviceMemoryReporter).
func (b *Backend) DeviceMemory() (inUse, reserved uint64) {
	if b.arena == nil {
		return 0, 0
	}
	return uint64(b.arena.pubUsed.Load()), uint64(b.arena.pubTotal.Load())
}

// DeviceMemoryFree returns the bytes this backend can still allocate: the
// device's free memory (cuMemGetInfo on its context, which counts every
// process and backend on the device) plus what is left in the arena's
// current chunk; with a reserved arena (Options.ArenaBytes) only what is
// left of it, since the arena does not grow. The trainer checks a run's
// memory estimate against it before allocating the model, so that a batch
// too large for the device is refused with the key to lower rather than
// failing at an allocation half way through.
func (b *Backend) DeviceMemoryFree() (int64, error) {
	if b.closed {
		return 0, errClosed
	}
	a := b.arena
	var slack int64
	if n := len(a.chunks); n > 0 && !a.separate {
		slack = a.chunks[n-1].size - a.chunks[n-1].used
	}
	if a.reserved {
		return slack, nil
	}
	var free int64
	err := b.dev.do(func() error {
		var err error
		free, _, err = cu.MemInfo()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("cuda device %d: cuMemGetInfo: %w", b.dev.ord, err)
	}
	return free + slack, nil
}
