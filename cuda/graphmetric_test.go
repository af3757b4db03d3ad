//go:build cuda

package cuda

import (
	"errors"
	"testing"
)

// TestGraphCaptureFailuresCounted: a failed capture is counted for the
// metrics exporter over the backend's life, and Stats' per-call counter
// still resets when read.
func TestGraphCaptureFailuresCounted(t *testing.T) {
	needStandin(t)
	b, err := NewWithOptions(0, Options{Gemm: GemmFP32, Graphs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n := b.GraphCaptureFailures(); n != 0 {
		t.Fatalf("fresh backend: %d capture failures", n)
	}
	b.reject(errors.New("capture refused"))
	b.reject(errors.New("capture refused again"))
	if s := b.Stats(); s.GraphRejects != 2 {
		t.Errorf("Stats.GraphRejects = %d, want 2", s.GraphRejects)
	}
	if s := b.Stats(); s.GraphRejects != 0 {
		t.Errorf("Stats.GraphRejects after a read = %d, want 0 (it resets)", s.GraphRejects)
	}
	if n := b.GraphCaptureFailures(); n != 2 {
		t.Errorf("GraphCaptureFailures = %d, want 2 (cumulative)", n)
	}
	if b.rec.LastReject == nil || b.rec.LastReject.Error() != "capture refused again" {
		t.Errorf("LastReject = %v, want the last failure", b.rec.LastReject)
	}
}
