package safetensors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/internal/ctxtest"
)

// temps lists the temporary files a write of path leaves beside it.
func temps(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWriteFileContextCancel starts writing 3 GiB of weights (seconds of
// disk traffic), cancels it 200 ms in and checks the latency, the error,
// that the file being replaced is untouched and that the temporary file
// is gone.
func TestWriteFileContextCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("writes up to 3 GiB")
	}
	path := filepath.Join(t.TempDir(), "big.safetensors")
	old := map[string]Tensor{"w": FromFloat32([]int{2}, []float32{1, 2})}
	if err := WriteFile(path, old, nil); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	big := map[string]Tensor{}
	for i := 0; i < 12; i++ { // 12 x 256 MiB; untouched zero pages cost no memory until written
		big[fmt.Sprintf("layer%02d", i)] = Tensor{DType: F32, Shape: []int{64 << 20}, Data: make([]byte, 256<<20)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- WriteFileContext(ctx, path, big, nil) }()
	select {
	case err := <-done:
		t.Fatalf("a 3 GiB write finished in under 200 ms (err %v): nothing was cancelled", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	at := time.Now()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("write still running 5 s after cancellation")
	}
	latency := time.Since(at)
	t.Logf("returned %v after cancellation: %v", latency, err)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an interruption naming %s and wrapping context.Canceled", err, path)
	}
	if after, err := os.ReadFile(path); err != nil || string(after) != string(before) {
		t.Errorf("the file an interrupted write was to replace changed (%d bytes, %v)", len(after), err)
	}
	if l := temps(t, path); len(l) > 0 {
		t.Errorf("interrupted write left %v", l)
	}
}

// TestWriteFileContextCancelledAtEveryChunk stops a write at each of its
// checks in turn: every one fails with context.Canceled and leaves no file
// and no temporary file; with checks to spare it writes the file whole.
func TestWriteFileContextCancelledAtEveryChunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	ts := map[string]Tensor{
		"a": {DType: F32, Shape: []int{ChunkBytes/4 + 3}, Data: make([]byte, ChunkBytes+12)}, // two chunks
		"b": FromInt32([]int{2}, []int32{7, 8}),
		"c": FromInt64(nil, []int64{1}),
	}
	// Checks: a's two chunks and its end, b's chunk and end, c's chunk
	// and end, and the two before syncing and renaming.
	const checks = 3 + 2 + 2 + 2
	for k := int64(0); k < checks; k++ {
		err := WriteFileContext(ctxtest.NewCountdown(k), path, ts, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled at check %d: got %v", k, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("cancelled at check %d: %s exists", k, path)
		}
		if l := temps(t, path); len(l) > 0 {
			t.Fatalf("cancelled at check %d: left %v", k, l)
		}
	}
	if err := WriteFileContext(ctxtest.NewCountdown(checks), path, ts, nil); err != nil {
		t.Fatalf("with %d checks allowed: %v", checks, err)
	}
	f, err := ReadFile(path)
	if err != nil || len(f.Tensors["a"].Data) != ChunkBytes+12 {
		t.Fatalf("written file: %v", err)
	}
}

// TestReadFileContextCancel: a read stops at the chunk where it is
// cancelled and says how far it got; the check granularity bounds the
// latency, measured here as the time to read one chunk.
func TestReadFileContextCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.safetensors")
	ts := map[string]Tensor{"a": {DType: U8, Shape: []int{3 * ChunkBytes}, Data: make([]byte, 3*ChunkBytes)}}
	if err := WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	// One check before opening, then one per chunk: the third chunk's.
	_, err := ReadFileContext(ctxtest.NewCountdown(3), path, ReadOptions{})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), fmt.Sprintf("after %d of", 2*ChunkBytes)) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an interruption after two chunks naming the file", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ReadFileContext(ctx, path, ReadOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before reading: %v", err)
	}
	start := time.Now()
	f, err := ReadFileContext(context.Background(), path, ReadOptions{})
	if err != nil || len(f.Tensors["a"].Data) != 3*ChunkBytes {
		t.Fatalf("uncancelled read: %v", err)
	}
	t.Logf("a chunk of %d MiB reads in %v (the latency bound of a cancelled read)", ChunkBytes>>20, time.Since(start)/3)
}
