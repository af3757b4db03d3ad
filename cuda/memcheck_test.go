//go:build cuda

package cuda_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/cuda"
	"github.com/tinyrecursive/trm/trainer"
)

// TestDeviceTooSmallForBatch: on a 96 MiB stand-in device, a training run
// whose batch needs about 190 MiB is refused before it allocates anything
// on the device, with a message naming the device, global_batch_size and
// the largest batch that fits, instead of an out-of-memory error at some
// allocation half way through; the batch the message suggests then
// trains. TRM_STANDIN_MEM sizes the device when its context starts, so it
// only works on the stand-in.
func TestDeviceTooSmallForBatch(t *testing.T) {
	if !cuda.Emulated() {
		t.Skip("needs the CPU stand-in for the NVIDIA libraries (make test-cuda-standin)")
	}
	t.Setenv("TRM_STANDIN_MEM", "96M")
	be, err := cuda.NewWithOptions(0, fp32Eager)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	free, err := be.DeviceMemoryFree()
	if err != nil {
		t.Fatal(err)
	}
	// New took cuBLAS's 32 MiB workspace and the error word.
	if free <= 0 || free > 64<<20 {
		t.Fatalf("free memory of a 96 MiB device after New: %d bytes", free)
	}
	dir := t.TempDir()
	if err := trainer.BuildDemoSudoku(dir, 160, 16, 8, 0, 3, nil); err != nil {
		t.Fatal(err)
	}
	cfg := trainer.DemoConfig()
	cfg.DataPaths = []string{dir}
	cfg.GlobalBatchSize = 64
	cfg.Epochs, cfg.EvalInterval = 1, 1
	cfg.TotalStepsLimit = 1
	cfg.CheckpointDir = ""
	buffers, bytes := cuda.StandinLive(0)
	_, err = trainer.Run(context.Background(), cfg, trainer.RunOptions{Backend: be})
	if err == nil {
		t.Fatalf("a batch of 64 on a device with %d bytes free ran", free)
	}
	t.Log(err)
	msg := err.Error()
	if strings.Contains(msg, "out of device memory") || !strings.Contains(msg, "global_batch_size 64") || !strings.Contains(msg, "on the device cuda:0") {
		t.Fatalf("error %q: want the estimate's refusal naming global_batch_size and the device, not an allocation failure", msg)
	}
	if n, b := cuda.StandinLive(0); n != buffers || b != bytes {
		t.Fatalf("the refused run allocated: %d device buffers of %d bytes before it, %d of %d after", buffers, bytes, n, b)
	}
	m := regexp.MustCompile(`a batch of at most (\d+) per replica fits`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("error %q names no batch that fits", msg)
	}
	fit, _ := strconv.Atoi(m[1])
	if fit < 1 || fit >= 64 {
		t.Fatalf("suggested batch %d", fit)
	}
	cfg.GlobalBatchSize = fit
	sum, err := trainer.Run(context.Background(), cfg, trainer.RunOptions{Backend: be})
	if err != nil {
		t.Fatalf("the suggested batch of %d: %v", fit, err)
	}
	if sum.Steps != 1 {
		t.Fatalf("the suggested batch of %d took %d steps, want 1", fit, sum.Steps)
	}
}
