package comm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// each runs fn on every rank concurrently and returns their errors.
func each(hs []*Host, fn func(h *Host, be engine.Backend) error) []error {
	errs := make([]error, len(hs))
	var wg sync.WaitGroup
	for r, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = fn(h, cpu.New(1))
		}()
	}
	wg.Wait()
	return errs
}

func TestHostCollectives(t *testing.T) {
	const n = 3
	hs := NewHostGroup(n, 10*time.Second)
	results := make([][]float32, n)
	gathered := make([][]int32, n)
	sums64 := make([][]float64, n)
	bcast := make([][]float32, n)
	errs := each(hs, func(h *Host, be engine.Backend) error {
		r := float32(h.Rank())
		for iter := 0; iter < 20; iter++ { // repeated: slots are reused safely
			b := be.Alloc(engine.F32, 4)
			be.Upload(b, []float32{r, 2 * r, 0.5, float32(iter)})
			if err := h.AllReduceSum(be, b); err != nil {
				return err
			}
			results[h.Rank()] = make([]float32, 4)
			be.Download(results[h.Rank()], b)
		}
		send, recv := be.Alloc(engine.I32, 2), be.Alloc(engine.I32, 2*n)
		be.Upload(send, []int32{int32(h.Rank()), int32(10 * h.Rank())})
		if err := h.AllGather(be, send, recv); err != nil {
			return err
		}
		gathered[h.Rank()] = make([]int32, 2*n)
		be.Download(gathered[h.Rank()], recv)
		d := be.Alloc(engine.F64, 1)
		be.Upload(d, []float64{float64(h.Rank()) + 0.25})
		if err := h.AllReduceSum(be, d); err != nil {
			return err
		}
		sums64[h.Rank()] = make([]float64, 1)
		be.Download(sums64[h.Rank()], d)
		x := be.Alloc(engine.F32, 2)
		be.Upload(x, []float32{r, r})
		if err := h.Broadcast(be, x, 2); err != nil {
			return err
		}
		bcast[h.Rank()] = make([]float32, 2)
		be.Download(bcast[h.Rank()], x)
		return nil
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	for r := 0; r < n; r++ {
		if !slices.Equal(results[r], []float32{3, 6, 1.5, 57}) {
			t.Errorf("rank %d all-reduce: %v", r, results[r])
		}
		if !slices.Equal(gathered[r], []int32{0, 0, 1, 10, 2, 20}) {
			t.Errorf("rank %d all-gather: %v", r, gathered[r])
		}
		if sums64[r][0] != 3.75 {
			t.Errorf("rank %d f64 all-reduce: %v", r, sums64[r])
		}
		if !slices.Equal(bcast[r], []float32{2, 2}) {
			t.Errorf("rank %d broadcast: %v", r, bcast[r])
		}
	}
}

func TestHostAbortAndTimeout(t *testing.T) {
	hs := NewHostGroup(3, 0)
	errs := each(hs, func(h *Host, be engine.Backend) error {
		if h.Rank() == 1 {
			h.Abort(fmt.Errorf("out of memory"))
			return nil
		}
		b := be.Alloc(engine.F32, 1)
		return h.AllReduceSum(be, b)
	})
	for _, r := range []int{0, 2} {
		if !errors.Is(errs[r], ErrAborted) || !strings.Contains(errs[r].Error(), "out of memory") {
			t.Errorf("rank %d after an abort: %v", r, errs[r])
		}
	}
	hs = NewHostGroup(3, 200*time.Millisecond)
	errs = each(hs, func(h *Host, be engine.Backend) error {
		if h.Rank() == 2 {
			return nil // never arrives
		}
		return h.AllReduceSum(be, be.Alloc(engine.F32, 1))
	})
	for _, r := range []int{0, 1} {
		if errs[r] == nil || !strings.Contains(errs[r].Error(), "missing ranks: [2]") {
			t.Errorf("rank %d with rank 2 absent: %v", r, errs[r])
		}
	}
}
