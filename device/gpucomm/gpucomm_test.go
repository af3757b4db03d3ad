//go:build cuda

package gpucomm

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/cuda"
	"github.com/tinyrecursive/trm/device/comm"
	"github.com/tinyrecursive/trm/device/nccl"
	"github.com/tinyrecursive/trm/engine"
	"gorgonia.org/cu"
)

// group opens n ranks on devices 0..n-1, each joining concurrently.
func group(t *testing.T, n int) ([]*Comm, []*cuda.Backend) {
	t.Helper()
	lib, err := nccl.Open()
	if err != nil {
		t.Fatalf("NCCL: %v", err)
	}
	t.Logf("NCCL %s from %s", lib.VersionString(), lib.Path)
	id, err := lib.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	comms := make([]*Comm, n)
	bes := make([]*cuda.Backend, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			be, err := cuda.New(r)
			if err != nil {
				errs[r] = err
				return
			}
			bes[r] = be
			comms[r], errs[r] = New(lib, id, r, n, be, 0)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	t.Cleanup(func() {
		for r := range n {
			comms[r].Close()
			bes[r].Close()
		}
	})
	return comms, bes
}

// exercise runs every collective on every rank and checks the results.
func exercise(t *testing.T, comms []*Comm, bes []*cuda.Backend) {
	n := len(comms)
	var wg sync.WaitGroup
	errs := make([]error, n)
	got := make([][]float32, n)
	gathered := make([][]int32, n)
	bcast := make([][]float64, n)
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			be, c := bes[r], comms[r]
			x := be.Alloc(engine.F32, 1000)
			v := make([]float32, 1000)
			for i := range v {
				v[i] = float32(r+1) * float32(i)
			}
			be.Upload(x, v)
			if errs[r] = c.AllReduceSum(be, x); errs[r] != nil {
				return
			}
			got[r] = make([]float32, 1000)
			be.Download(got[r], x)
			send, recv := be.Alloc(engine.I32, 3), be.Alloc(engine.I32, 3*n)
			be.Upload(send, []int32{int32(r), int32(10 * r), -1})
			if errs[r] = c.AllGather(be, send, recv); errs[r] != nil {
				return
			}
			gathered[r] = make([]int32, 3*n)
			be.Download(gathered[r], recv)
			y := be.Alloc(engine.F64, 2)
			be.Upload(y, []float64{float64(r), 0.5})
			if errs[r] = c.Broadcast(be, y, n-1); errs[r] != nil {
				return
			}
			bcast[r] = make([]float64, 2)
			be.Download(bcast[r], y)
			errs[r] = be.Sync()
		}()
	}
	wg.Wait()
	sum := float32(n * (n + 1) / 2)
	var wantG []int32
	for r := range n {
		wantG = append(wantG, int32(r), int32(10*r), -1)
	}
	for r := range n {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		for i, x := range got[r] {
			if x != sum*float32(i) {
				t.Fatalf("rank %d: AllReduceSum[%d] = %g, want %g", r, i, x, sum*float32(i))
			}
		}
		if !slices.Equal(gathered[r], wantG) {
			t.Fatalf("rank %d: AllGather = %v, want %v", r, gathered[r], wantG)
		}
		if !slices.Equal(bcast[r], []float64{float64(n - 1), 0.5}) {
			t.Fatalf("rank %d: Broadcast = %v", r, bcast[r])
		}
	}
}

// TestOneRank needs only one GPU, so every GPU machine runs it: a one-rank
// communicator through the same enqueue path as training.
func TestOneRank(t *testing.T) {
	comms, bes := group(t, 1)
	exercise(t, comms, bes)
	comms[0].Abort(errTest)
	x := bes[0].Alloc(engine.F32, 4)
	if err := comms[0].AllReduceSum(bes[0], x); err == nil {
		t.Fatal("AllReduceSum after Abort succeeded")
	}
}

// TestAllDevices runs one rank per visible GPU (NCCL refuses two ranks on
// one device), where there are several.
func TestAllDevices(t *testing.T) {
	n, err := cu.NumDevices()
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Skipf("%d GPU visible: the multi-GPU check needs 2 or more", n)
	}
	start := time.Now()
	comms, bes := group(t, n)
	exercise(t, comms, bes)
	t.Logf("%d ranks in %s", n, time.Since(start))
}

var errTest = comm.ErrAborted
