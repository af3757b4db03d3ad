//go:build unix

package data

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestTruncatedWhileTraining truncates the memory-mapped inputs file
// while a goroutine draws training batches from it: the reader must stop
// with a *FaultError naming the file, not die of SIGBUS.
func TestTruncatedWhileTraining(t *testing.T) {
	dir := t.TempDir()
	writeToy(t, dir, "train", [][]int{{2, 1}, {3}, {1, 1}, {2}}, 4)
	ds, err := Open("train", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	it, err := ds.Train(TrainConfig{Sharding: Sharding{GlobalBatchSize: 2}, Seed: 1, EpochsPerPass: 1})
	if err != nil {
		t.Fatal(err)
	}
	var batches atomic.Int64
	done := make(chan error, 1)
	go func() {
		var b Batch
		for {
			err := it.Next(&b)
			if errors.Is(err, ErrEndOfPass) {
				continue
			}
			if err != nil {
				done <- err
				return
			}
			batches.Add(1)
		}
	}()
	for batches.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	inputs := filepath.Join(dir, "train", "all__inputs.npy")
	if err := os.Truncate(inputs, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var fe *FaultError
		if !errors.As(err, &fe) || fe.Path != inputs {
			t.Fatalf("err = %v, want a *FaultError naming %s", err, inputs)
		}
		if fe.Offset < 0 {
			t.Errorf("fault offset %d: the address was not traced into the mapping", fe.Offset)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader still running 10 s after the truncation")
	}
}

// TestTruncatedTestSetAndCheck covers the test-order iterator and Check
// on a labels file truncated after opening.
func TestTruncatedTestSetAndCheck(t *testing.T) {
	dir := t.TempDir()
	writeToy(t, dir, "test", [][]int{{2, 1}, {3}}, 4)
	ds, err := Open("test", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	labels := filepath.Join(dir, "test", "all__labels.npy")
	if err := os.Truncate(labels, 0); err != nil {
		t.Fatal(err)
	}
	it, err := ds.Test(Sharding{GlobalBatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	err = it.Next(&b)
	var fe *FaultError
	if !errors.As(err, &fe) || fe.Path != labels {
		t.Fatalf("test iterator: err = %v, want a *FaultError naming %s", err, labels)
	}
	if err == io.EOF {
		t.Fatal("EOF")
	}
	set := ds.Sets[0]
	if _, err := checkSet(context.Background(), ds.Meta, "test", set); !errors.As(err, &fe) || fe.Path != labels {
		t.Fatalf("check: err = %v, want a *FaultError naming %s", err, labels)
	}
}

// TestNonRegularDatasetFiles gives a FIFO and a device where dataset
// files are expected: each must be refused at once, naming the file.
func TestNonRegularDatasetFiles(t *testing.T) {
	dir := t.TempDir()
	writeToy(t, dir, "train", [][]int{{2, 1}, {3}}, 4)
	for _, name := range []string{"all__inputs.npy", "all__puzzle_indices.npy", "dataset.json"} {
		p := filepath.Join(dir, "train", name)
		for _, kind := range []string{"fifo", "device"} {
			os.Remove(p)
			if kind == "fifo" {
				if err := mkfifo(p); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				ds, err := Open("train", dir)
				if err == nil {
					ds.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !containsAll(err.Error(), p, "not a regular file") {
					t.Errorf("%s as %s: err = %v", name, kind, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s as %s: Open still blocked after 5 s", name, kind)
			}
		}
		os.Remove(p)
		writeToy(t, dir, "train", [][]int{{2, 1}, {3}}, 4)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
