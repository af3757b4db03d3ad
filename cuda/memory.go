//go:build cuda

package cuda

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
