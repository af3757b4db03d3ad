//go:build cuda

package gpucomm

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"github.com/tinyrecursive/trm/cuda"
	"github.com/tinyrecursive/trm/device/nccl"
	"github.com/tinyrecursive/trm/engine"
)

// TestTwoProcesses runs the collectives between two processes, one rank
// each, as a multi-process launch does: this test binary starts itself
// twice as the ranks. On the CPU stand-in the ranks meet through shared
// memory, and the all-reduce is larger than its 4 MiB exchange slot, so
// it goes in several chunks. (On GPUs the multi-process path is checked by
// bench/gpu-dp-check on a machine with several.)
func TestTwoProcesses(t *testing.T) {
	if r := os.Getenv("TRM_GPUCOMM_TEST_RANK"); r != "" {
		if err := childRank(r, os.Getenv("TRM_GPUCOMM_TEST_ID")); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !cuda.Emulated() {
		t.Skip("two processes on one machine's GPUs are checked by bench/gpu-dp-check")
	}
	lib, err := nccl.Open()
	if err != nil {
		t.Fatal(err)
	}
	id, err := lib.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outs, errs := make([][]byte, 2), make([]error, 2)
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(exe, "-test.run=^TestTwoProcesses$", "-test.v")
			cmd.Env = append(os.Environ(), "TRM_GPUCOMM_TEST_RANK="+strconv.Itoa(r), "TRM_GPUCOMM_TEST_ID="+hex.EncodeToString(id[:]))
			outs[r], errs[r] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for r := range 2 {
		if errs[r] != nil {
			t.Errorf("rank %d: %v; output:\n%s", r, errs[r], outs[r])
		}
	}
}

// childRank is one rank of TestTwoProcesses: every collective, checked.
func childRank(rs, ids string) error {
	r, _ := strconv.Atoi(rs)
	raw, err := hex.DecodeString(ids)
	if err != nil || len(raw) != len(nccl.UniqueID{}) {
		return fmt.Errorf("bad communicator id %q", ids)
	}
	var id nccl.UniqueID
	copy(id[:], raw)
	lib, err := nccl.Open()
	if err != nil {
		return err
	}
	be, err := cuda.New(r)
	if err != nil {
		return err
	}
	defer be.Close()
	c, err := New(lib, id, r, 2, be, 0)
	if err != nil {
		return err
	}
	defer c.Close()

	const n = 1_500_000 // 6 MB: two chunks of the stand-in's exchange slot
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%1000) * float32(r+1)
	}
	x := be.Alloc(engine.F32, n)
	be.Upload(x, v)
	send, recv := be.Alloc(engine.I32, 5), be.Alloc(engine.I32, 10)
	be.Upload(send, []int32{int32(10 * r), int32(10*r + 1), int32(10*r + 2), int32(10*r + 3), int32(10*r + 4)})
	b := be.Alloc(engine.F64, 3)
	if r == 1 {
		be.Upload(b, []float64{7, 8, 9})
	}
	for _, err := range []error{c.AllReduceSum(be, x), c.AllGather(be, send, recv), c.Broadcast(be, b, 1)} {
		if err != nil {
			return err
		}
	}
	be.Download(v, x)
	g := make([]int32, 10)
	be.Download(g, recv)
	bb := make([]float64, 3)
	be.Download(bb, b)
	if err := be.Sync(); err != nil {
		return err
	}
	for i := range v {
		if want := float32(i%1000) * 3; v[i] != want {
			return fmt.Errorf("rank %d: all-reduce [%d] = %v, want %v", r, i, v[i], want)
		}
	}
	if fmt.Sprint(g) != "[0 1 2 3 4 10 11 12 13 14]" {
		return fmt.Errorf("rank %d: all-gather %v", r, g)
	}
	if fmt.Sprint(bb) != "[7 8 9]" {
		return fmt.Errorf("rank %d: broadcast from rank 1 %v", r, bb)
	}
	return nil
}
