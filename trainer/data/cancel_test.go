package data

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeLarge writes a dataset whose train split holds n examples of seq
// tokens, one puzzle per example, in no time: the inputs file is a .npy
// header followed by a hole (all tokens 0, PAD) and the labels file a
// hard link to it, so Check has n*seq*2 tokens to read whatever n is.
func writeLarge(t *testing.T, dir string, n, seq int) {
	t.Helper()
	split := filepath.Join(dir, "train")
	if err := os.MkdirAll(split, 0o755); err != nil {
		t.Fatal(err)
	}
	inputs := filepath.Join(split, "all__inputs.npy")
	header := npyHeaderBytes(Uint8, []int{n, seq})
	f, err := os.Create(inputs)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write(header)
	for _, err := range []error{werr, f.Truncate(int64(len(header) + n*seq)), f.Close(),
		os.Link(inputs, filepath.Join(split, "all__labels.npy"))} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ids, pidx := make([]int32, n), make([]int32, n+1)
	for i := range pidx {
		pidx[i] = int32(i)
	}
	for _, f := range []struct {
		name string
		a    *Array
	}{{"puzzle_identifiers", Int32Array(ids)}, {"puzzle_indices", Int32Array(pidx)}, {"group_indices", Int32Array([]int32{0, int32(n)})}} {
		if err := WriteNPYFile(filepath.Join(split, "all__"+f.name+".npy"), f.a); err != nil {
			t.Fatal(err)
		}
	}
	for _, err := range []error{
		WriteIdentifiers(dir, []string{"<blank>"}),
		WriteMetadata(split, Metadata{VocabSize: 11, SeqLen: seq, NumPuzzleIdentifiers: 1, TotalGroups: 1,
			MeanPuzzleExamples: 1, TotalPuzzles: n, Sets: []string{"all"}}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckContextCancel starts checking a dataset of a million ARC-sized
// examples (1.8 G tokens: about 10 s of reading here), cancels it 200 ms
// in and checks the error and the latency.
func TestCheckContextCancel(t *testing.T) {
	dir := t.TempDir()
	writeLarge(t, dir, 1_000_000, 900)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := CheckContext(ctx, dir)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
		t.Fatalf("checked in under 200 ms, before it could be cancelled (err %v): make the dataset larger", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	at := time.Now()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("check still running 5 s after cancellation")
	}
	latency := time.Since(at)
	t.Logf("returned %v after cancellation: %v", latency, err)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted at example") ||
		!strings.Contains(err.Error(), filepath.Join(dir, "train", "all__inputs.npy")) {
		t.Fatalf("got %v, want an interruption naming the inputs file and wrapping context.Canceled", err)
	}
}

// TestCheckContextCancelledBefore: a check cancelled before it starts
// opens nothing and says so.
func TestCheckContextCancelledBefore(t *testing.T) {
	dir := t.TempDir()
	writeToy(t, dir, "train", [][]int{{2, 1}, {3}}, 4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CheckContext(ctx, dir); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "before the train split") {
		t.Fatalf("got %v", err)
	}
	if rep, err := CheckContext(context.Background(), dir); err != nil || len(rep) != 1 {
		t.Fatalf("uncancelled: %v, %v", rep, err)
	}
}
