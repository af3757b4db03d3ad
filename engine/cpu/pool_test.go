package cpu

import (
	"runtime"
	"testing"
	"time"
)

// sumJob records which indices ran, to check the split covers [0, n)
// exactly once.
type sumJob struct{ hits []int32 }

func (j *sumJob) run(_, lo, hi int) {
	for i := lo; i < hi; i++ {
		j.hits[i]++
	}
}

// TestPoolCoverage: every index runs exactly once for sizes around the
// unit boundaries and for several thread counts, call after call.
func TestPoolCoverage(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := newPool(threads)
		for _, n := range []int{0, 1, 2, 7, 31, 32, 33, 1000, 100003} {
			for _, grain := range []int{1, 16, 1 << 14} {
				j := &sumJob{hits: make([]int32, n)}
				p.run(j, n, grain)
				for i, h := range j.hits {
					if h != 1 {
						t.Fatalf("threads %d n %d grain %d: index %d ran %d times", threads, n, grain, i, h)
					}
				}
			}
		}
		p.stop()
	}
}

// TestBackendCleanup: dropped backends stop their helper goroutines.
func TestBackendCleanup(t *testing.T) {
	runtime.GC()
	before := runtime.NumGoroutine()
	for range 20 {
		New(4)
	}
	for i := 0; i < 100 && runtime.NumGoroutine() > before+2; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		t.Fatalf("%d goroutines after dropping 20 backends, %d before", g, before)
	}
}
