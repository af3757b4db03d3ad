//go:build heavy

package build

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/trainer/data"
)

// TestHeavyARC1000 builds ARC-AGI-1 (training, evaluation, concept;
// evaluation as test set) with 1000 augmentations, as the paper does,
// reports time and size, and checks the result end to end. Needs ~7 GB of
// disk under $TMPDIR and about a minute: go test -tags heavy -run Heavy.
func TestHeavyARC1000(t *testing.T) {
	out := filepath.Join(t.TempDir(), "arc1-aug1000")
	start := time.Now()
	st, err := BuildARC(ARCOptions{Out: out, Prefix: realARC(t), Subsets: []string{"training", "evaluation", "concept"},
		TestSets: []string{"evaluation"}, NumAug: 1000, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	built := time.Since(start)
	var size int64
	filepath.Walk(out, func(_ string, fi os.FileInfo, _ error) error {
		if fi != nil && !fi.IsDir() {
			size += fi.Size()
		}
		return nil
	})
	t.Logf("built in %v: %.2f GB, %+v", built, float64(size)/1e9, st)
	start = time.Now()
	ds, err := data.Open("train", out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("opened the %d-example train split in %v", ds.Sets[0].NumExamples(), time.Since(start))
	ds.Close()
	start = time.Now()
	if _, err := data.Check(out); err != nil {
		t.Fatal(err)
	}
	t.Logf("checked every token in %v", time.Since(start))
	if st.Identifiers < 960*500 {
		t.Errorf("only %d identifiers", st.Identifiers)
	}
}
