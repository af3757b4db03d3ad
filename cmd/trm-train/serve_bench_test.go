package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tinyrecursive/trm"
)

// BenchmarkServeLoad is a bounded load test of serve on loopback: 8
// clients post one 4x4 Sudoku each, back to back, for 3 s per iteration,
// against the committed 4x4 Sudoku model (batch 16, max wait 2 ms). It
// reports p50/p99 latency, throughput and the heap in use after each
// iteration against before the first (flat memory), and fails on any
// error answer.
//
//	go test -run '^$' -bench ServeLoad -benchtime 2x ./cmd/trm-train
func BenchmarkServeLoad(b *testing.B) {
	m, err := trm.Load("../../testdata/sudoku4-tiny/model.safetensors", trm.LoadOptions{Config: "../../testdata/sudoku4-tiny/arch.json"})
	if err != nil {
		b.Fatal(err)
	}
	base, _, stop := testServer(b, m, serverOptions{Batch: 16, MaxWait: 2 * time.Millisecond, MaxPuzzles: 16, MaxBody: 1 << 16,
		Timeout: 10 * time.Second, ARCVersions: 1}, nil)
	defer stop()
	body, _ := json.Marshal(map[string]any{"puzzles": []string{"..4....113...2.."}})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	heap0 := heap()
	const clients, window = 8, 3 * time.Second
	var lat []time.Duration
	total := 0
	b.ResetTimer()
	for range b.N {
		var mu sync.Mutex
		var wg sync.WaitGroup
		end := time.Now().Add(window)
		errs := 0
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{}
				for time.Now().Before(end) {
					t0 := time.Now()
					resp, err := c.Post(base+"/v1/solve", "application/json", bytes.NewReader(body))
					if err != nil {
						mu.Lock()
						errs++
						mu.Unlock()
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					if resp.StatusCode != 200 {
						errs++
					}
					lat = append(lat, time.Since(t0))
					total++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if errs > 0 {
			b.Fatalf("%d error answers under load", errs)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(total)/(float64(b.N)*window.Seconds()), "requests/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(heap())/float64(max(heap0, 1)), "heap-after/before")
}
