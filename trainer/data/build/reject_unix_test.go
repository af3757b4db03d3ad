//go:build unix

package build

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/trainer/data/arc"
)

// TestBuilderInputFIFO gives a FIFO as a CSV and as an ARC file: each is
// refused at once instead of waiting for a writer.
func TestBuilderInputFIFO(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x_s_challenges.json")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	for name, read := range map[string]func() error{
		"sudoku": func() error { return readSudoku(p) },
		"maze":   func() error { return readMaze(p) },
		"arc":    func() error { _, err := arc.LoadSubset(filepath.Join(dir, "x"), "s"); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- read() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%s: err = %v", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: still blocked on the FIFO after 5 s", name)
		}
	}
}
