package trm_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/trainer"
)

// TestLoadResolvedArch: LoadOptions.Arch reads a checkpoint's or a
// weights file's weights as a caller-resolved architecture (here the
// checkpoint's own with more supervision steps, as trm-train eval's
// arch.halt_max_steps=N override gives), still verifying the checkpoint;
// an architecture the weights do not fit is refused naming the file; and
// Params holds the same values as Weights.
func TestLoadResolvedArch(t *testing.T) {
	run, _ := trainTiny(t, t.TempDir(), 4)
	own, err := trm.Load(run, trm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := trm.Arch{Config: own.Config(), Arch: own.Arch()}
	a.Config.HaltMaxSteps = own.HaltMaxSteps() + 2
	ck := mustLatest(t, run)
	for _, path := range []string{run, filepath.Join(ck, trainer.ModelFile)} {
		m, err := trm.Load(path, trm.LoadOptions{Arch: &a})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if m.HaltMaxSteps() != a.Config.HaltMaxSteps || m.SeqLen() != own.SeqLen() {
			t.Errorf("%s: halt_max_steps %d seq_len %d, want %d %d", path, m.HaltMaxSteps(), m.SeqLen(), a.Config.HaltMaxSteps, own.SeqLen())
		}
		for k, w := range own.Weights() {
			if !equalF32(m.Params().View(k), w.Data().([]float32)) {
				t.Errorf("%s: Params %s differs from Weights", path, k)
			}
		}
	}
	wide := a
	wide.Config.HiddenSize *= 2
	if _, err := trm.Load(run, trm.LoadOptions{Arch: &wide}); err == nil || !strings.Contains(err.Error(), trainer.ModelFile) {
		t.Errorf("weights read as a wider model: %v; want an error naming %s", err, trainer.ModelFile)
	}
}
