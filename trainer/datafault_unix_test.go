//go:build unix

package trainer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/trainer/data"
)

// truncater truncates a file after a given step of a run.
type truncater struct {
	recorder
	at   int
	path string
	err  error
}

func (h *truncater) OnStep(s *StepReport) {
	h.recorder.OnStep(s)
	if s.Step == h.at {
		h.err = os.Truncate(h.path, 0)
	}
}

// TestDataFaultStopsWithCheckpoint: a training file truncated mid-run
// stops the run with an error naming the file and the checkpoint of the
// last good step; once the file is whole again the run resumes from that
// checkpoint and ends as an uninterrupted run does, bit for bit. A test
// file truncated before its evaluation stops the run the same way, with
// the pass's evaluation left pending.
func TestDataFaultStopsWithCheckpoint(t *testing.T) {
	cfg := smallRunConfig(t)
	full := &recorder{}
	if _, err := Run(context.Background(), cfg, RunOptions{Backend: cpu.New(0), Hooks: []Hook{full}}); err != nil {
		t.Fatal(err)
	}

	cfg.CheckpointDir = filepath.Join(t.TempDir(), "ckpt")
	inputs := filepath.Join(cfg.DataPaths[0], "train", "all__inputs.npy")
	orig, err := os.ReadFile(inputs)
	if err != nil {
		t.Fatal(err)
	}
	h := &truncater{at: 5, path: inputs}
	_, err = Run(context.Background(), cfg, RunOptions{Backend: cpu.New(0), Hooks: []Hook{h}})
	var fe *data.FaultError
	if h.err != nil || !errors.As(err, &fe) || fe.Path != inputs || !strings.Contains(err.Error(), inputs) ||
		!strings.Contains(err.Error(), "last good state is in "+filepath.Join(cfg.CheckpointDir, StepDirName(5))) {
		t.Fatalf("truncated training data: error %v (truncate: %v)", err, h.err)
	}
	if err := os.WriteFile(inputs, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	rest := &recorder{}
	sum, err := Run(context.Background(), Config{}, RunOptions{Backend: cpu.New(0), Hooks: []Hook{rest}, Resume: cfg.CheckpointDir})
	if err != nil {
		t.Fatal(err)
	}
	got := append(slices.Clone(h.losses), rest.losses...)
	if sum.Steps != 16 || !slices.Equal(got, full.losses) {
		t.Fatalf("resumed after the fault: %d steps, losses\n got  %v\n want %v", sum.Steps, got, full.losses)
	}

	// The test set, truncated during the first pass: its evaluation
	// (after step 12) faults.
	cfg.CheckpointDir = filepath.Join(t.TempDir(), "ckpt")
	testInputs := filepath.Join(cfg.DataPaths[0], "test", "all__inputs.npy")
	h = &truncater{at: 3, path: testInputs}
	_, err = Run(context.Background(), cfg, RunOptions{Backend: cpu.New(0), Hooks: []Hook{h}})
	if h.err != nil || !errors.As(err, &fe) || fe.Path != testInputs || !strings.Contains(err.Error(), "evaluation at step 12") ||
		!strings.Contains(err.Error(), "last good state is in "+filepath.Join(cfg.CheckpointDir, StepDirName(12))) {
		t.Fatalf("truncated test data: error %v (truncate: %v)", err, h.err)
	}
	meta, err := LoadMeta(filepath.Join(cfg.CheckpointDir, StepDirName(12)))
	if err != nil || meta.Pass != 0 || !meta.PassDone {
		t.Fatalf("checkpoint after the evaluation fault: pass %d, pass done %v (%v)", meta.Pass, meta.PassDone, err)
	}
}
