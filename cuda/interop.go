//go:build cuda

package cuda

import (
	"fmt"

	"github.com/tinyrecursive/trm/engine"
)

// Interop for libraries that enqueue their own work on a backend's stream
// (NCCL collectives in device/gpucomm): they need the raw device pointers
// of engine buffers, the stream, and the device's worker thread, where the
// device's context is current (NCCL's communicator setup uses the current
// device).

// DevicePointer returns the CUdeviceptr of a buffer (or view) allocated by
// this backend, as an integer: foreign code must not keep it past the
// buffer's life (the arena lives until Close).
func (b *Backend) DevicePointer(x engine.Buf) (uintptr, error) {
	v, ok := x.(*buf)
	if !ok {
		return 0, fmt.Errorf("cuda backend: DevicePointer: %T is not a buffer of the CUDA backend", x)
	}
	if v.n > 0 && v.ptr == 0 {
		return 0, fmt.Errorf("cuda backend: DevicePointer: the buffer was never allocated (an earlier Alloc failed)")
	}
	return uintptr(v.ptr), nil
}

// Ordinal is the CUDA device ordinal the backend runs on (after
// CUDA_VISIBLE_DEVICES remapping).
func (b *Backend) Ordinal() int { return b.dev.ord }

// OnStream runs f on the device's worker thread with the backend's stream
// (a CUstream as an integer), after every op queued before the call has
// been issued to that stream (in graph mode the recorded sequence is
// flushed first). Work f enqueues on the stream therefore runs after those
// ops and before any op queued after OnStream returns: stream order, no
// host wait. f must only enqueue (or do setup work such as joining a
// communicator); it must not synchronise with other devices' workers
// beyond what its library does itself.
func (b *Backend) OnStream(f func(stream uintptr) error) error {
	if b.closed {
		return fmt.Errorf("cuda backend: OnStream after Close")
	}
	if b.rec != nil && len(b.rec.ops) > 0 {
		b.flushRecorded()
	}
	return b.dev.do(func() error { return f(uintptr(b.raw)) })
}
