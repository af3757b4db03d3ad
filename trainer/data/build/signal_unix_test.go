//go:build unix

package build

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSignalStopsBuild wires a build as the command line does, through
// signal.NotifyContext, and sends this process SIGTERM and then SIGINT
// while the paper's ARC build runs: each ends the build within the bound
// and leaves nothing behind.
func TestSignalStopsBuild(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		out := filepath.Join(t.TempDir(), "arc1")
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		done := make(chan error, 1)
		go func() {
			_, err := BuildARCContext(ctx, ARCOptions{Out: out, Prefix: realARC(t), Subsets: []string{"training", "evaluation", "concept"},
				TestSets: []string{"evaluation"}, NumAug: 1000, Seed: 42})
			done <- err
		}()
		time.Sleep(200 * time.Millisecond)
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			stop()
			t.Fatal(err)
		}
		at := time.Now()
		var err error
		select {
		case err = <-done:
		case <-time.After(maxCancelLatency):
			stop()
			t.Fatalf("%v: build still running %v after the signal", sig, maxCancelLatency)
		}
		stop()
		checkCancelled(t, sig.String(), err, time.Since(at))
		checkNothingWritten(t, out)
	}
}
