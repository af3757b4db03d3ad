package torchpt

import (
	"archive/zip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/internal/ctxtest"
	"github.com/tinyrecursive/trm/internal/safetensors"
)

// writeBigZip streams a torch.save zip file to path: one float32 storage
// of n*n elements (counting up) and a state dict holding its transpose,
// which the loader copies out element by element.
func writeBigZip(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	add := func(name string) *zipEntry {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		return &zipEntry{w: w, t: t}
	}
	pkl := statePickle([]fakeTensor{{key: "w", storageClass: "FloatStorage", storageKey: "0", numel: n * n,
		size: []int64{n, n}, stride: []int64{1, n}}}, pickleOptions{})
	add("data.pkl").write(pkl)
	st := add("data/0")
	row := make([]float32, n)
	for i := int64(0); i < n; i++ {
		for j := range row {
			row[j] = float32(i*n + int64(j))
		}
		st.write(f32Bytes(row...))
	}
	add("version").write([]byte("3\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

type zipEntry struct {
	w interface{ Write([]byte) (int, error) }
	t *testing.T
}

func (e *zipEntry) write(b []byte) {
	if _, err := e.w.Write(b); err != nil {
		e.t.Fatal(err)
	}
}

// cancelAtCtx cancels a real context (context.WithCancel) right after its
// k-th check and records when, so a test can stop a load at a chosen
// point of its progress however fast the machine is, and measure the wall
// time from the cancellation to the load's return.
type cancelAtCtx struct {
	context.Context
	cancel context.CancelFunc
	left   atomic.Int64
	at     atomic.Pointer[time.Time]
}

// Err answers the k-th check with the state before cancelling, so the
// cancellation is seen only at the next check, as a signal arriving
// between two checks would be.
func (c *cancelAtCtx) Err() error {
	err := c.Context.Err()
	if c.left.Add(-1) == 0 {
		now := time.Now()
		c.at.Store(&now)
		c.cancel()
	}
	return err
}

// TestLoadContextCancel loads a 256 MiB checkpoint whose tensor is a
// transposed view (seconds of work: 32 reads of 8 MiB, then the view
// copied out element by element) and cancels it at its 4th check (while
// the storage is read) and at its 40th (while the view is copied out),
// checking the error and that the load returns within 5 s of the
// cancellation.
func TestLoadContextCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 256 MiB file")
	}
	path := filepath.Join(t.TempDir(), "big.pt")
	writeBigZip(t, path, 8192)
	for _, k := range []int64{4, 40} {
		base, cancel := context.WithCancel(context.Background())
		ctx := &cancelAtCtx{Context: base, cancel: cancel}
		ctx.left.Store(k)
		done := make(chan error, 1)
		go func() {
			_, _, err := LoadContext(ctx, path, Options{})
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(2 * time.Minute):
			t.Fatal("load still running after 2 minutes")
		}
		returned := time.Now()
		cancel()
		at := ctx.at.Load()
		if at == nil {
			t.Fatalf("check %d: the load made fewer than %d checks and ended with %v: make the file larger", k, k, err)
		}
		latency := returned.Sub(*at)
		t.Logf("cancelled at check %d: returned %v after cancellation: %v", k, latency, err)
		if latency > 5*time.Second {
			t.Errorf("check %d: returned %v after cancellation, want within 5 s", k, latency)
		}
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), path) {
			t.Fatalf("got %v, want an interruption naming %s and wrapping context.Canceled", err, path)
		}
	}
}

// TestLoadCancelledAtEveryCheck stops loads of a zip and a legacy file
// (three tensors, one a strided view of a storage bigger than a chunk) at
// each of their checks: each fails with context.Canceled and returns no
// tensors; with every check passed the tensors are right.
func TestLoadCancelledAtEveryCheck(t *testing.T) {
	const big = safetensors.ChunkBytes/4 + 40 // elements: a storage of two chunks
	storage := make([]float32, big)
	for i := range storage {
		storage[i] = float32(i % 1000)
	}
	views := []fakeTensor{
		{key: "a", storageClass: "FloatStorage", storageKey: "0", numel: big, size: []int64{big / 2}, stride: []int64{2}},
		{key: "b", storageClass: "FloatStorage", storageKey: "0", numel: big, offset: 1, size: []int64{3}, stride: []int64{1}},
		{key: "c", storageClass: "FloatStorage", storageKey: "1", numel: 2, size: []int64{2}, stride: []int64{1}},
	}
	storages := map[string][]byte{"0": f32Bytes(storage...), "1": f32Bytes(7, 8)}
	dir := t.TempDir()
	zipPath, legacyPath := filepath.Join(dir, "z.pt"), filepath.Join(dir, "l.pt")
	if err := os.WriteFile(zipPath, zipCheckpoint(t, statePickle(views, pickleOptions{}), storages, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	legacy := legacyCheckpoint(statePickle(views, pickleOptions{legacy: true}), []string{"0", "1"}, storages,
		map[string]int{"0": 4, "1": 4}, true)
	if err := os.WriteFile(legacyPath, legacy, 0o644); err != nil {
		t.Fatal(err)
	}
	loads := map[string]func(ctx context.Context) (map[string]safetensors.Tensor, error){
		"zip load": func(ctx context.Context) (map[string]safetensors.Tensor, error) {
			m, _, err := LoadContext(ctx, zipPath, Options{})
			return m, err
		},
		"legacy load": func(ctx context.Context) (map[string]safetensors.Tensor, error) {
			m, _, err := LoadContext(ctx, legacyPath, Options{})
			return m, err
		},
		"legacy decode": func(ctx context.Context) (map[string]safetensors.Tensor, error) {
			m, _, err := DecodeContext(ctx, legacy, "l.pt", Options{})
			return m, err
		},
	}
	for name, load := range loads {
		full := ctxtest.NewCountdown(1 << 62)
		got, err := load(full)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a, _ := got["a"].Float32(); len(a) != big/2 || a[1] != 2 || a[len(a)-1] != float32((big-2)%1000) {
			t.Fatalf("%s: tensor a wrong", name)
		}
		if c, _ := got["c"].Float32(); len(c) != 2 || c[0] != 7 || c[1] != 8 {
			t.Fatalf("%s: tensor c = %v", name, c)
		}
		n := full.Calls()
		if n < 3 {
			t.Fatalf("%s: only %d cancellation checks", name, n)
		}
		for k := int64(0); k < n; k++ {
			got, err := load(ctxtest.NewCountdown(k))
			if !errors.Is(err, context.Canceled) || got != nil {
				t.Fatalf("%s cancelled at check %d of %d: %d tensors, %v", name, k, n, len(got), err)
			}
		}
		t.Logf("%s: cancelled cleanly at each of %d checks", name, n)
	}
}
