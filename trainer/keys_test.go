package trainer

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// TestKeyDocsCoverEveryKey: every key Set accepts is documented once with
// a meaning, the documented default is accepted back by Set and leaves
// the default config unchanged, the documented keys are all real, and
// every limit is shown on its key.
func TestKeyDocsCoverEveryKey(t *testing.T) {
	docs := map[string]KeyDoc{}
	for _, d := range KeyDocs() {
		if _, dup := docs[d.Key]; dup {
			t.Errorf("%s documented twice", d.Key)
		}
		if d.Meaning == "" || strings.Contains(d.Meaning, "\n") {
			t.Errorf("%s: meaning %q, want one line", d.Key, d.Meaning)
		}
		docs[d.Key] = d
	}
	for _, k := range Keys() {
		if _, ok := docs[k]; !ok {
			t.Errorf("settable key %s has no documentation", k)
		}
	}
	for k := range keyInfo {
		if _, ok := keyPaths()[k]; !ok {
			t.Errorf("documented key %s is not a key", k)
		}
	}
	def := DefaultConfig()
	for _, d := range KeyDocs() {
		if d.Default == "" || strings.HasSuffix(d.Key, ".*") || d.Default == "data_paths" || strings.HasPrefix(d.Default, "${") {
			continue
		}
		c := DefaultConfig()
		if err := c.Set(d.Key + "=" + d.Default); err != nil {
			t.Errorf("%s=%s (the documented default): %v", d.Key, d.Default, err)
			continue
		}
		if diff := def.Diff(c); len(diff) > 0 {
			t.Errorf("%s=%s changed the default config: %v", d.Key, d.Default, diff)
		}
	}
	// The reference's forms are accepted too.
	for _, k := range []string{"arch", "arch.name", "arch.loss.name", "checkpoint_path", "evaluators", "eval_save_outputs", "hydra.*"} {
		if _, ok := docs[k]; !ok {
			t.Errorf("reference key %s has no documentation", k)
		}
	}
	for _, l := range Limits() {
		if strings.Contains(l.Key, " ") {
			continue // a product of keys
		}
		if d := docs[l.Key]; d.Max == "" {
			t.Errorf("%s: limit %g not documented", l.Key, l.Max)
		}
	}
	if d := docs["epochs"]; d.Unit != "epochs" || d.Default != "100000" {
		t.Errorf("epochs: %+v", d)
	}
	if d := docs["lr_warmup_steps"]; d.Unit != "steps" {
		t.Errorf("lr_warmup_steps: %+v", d)
	}
	if len(Presets()) != len(engine.PresetNames()) || Presets()[0].Description == "" {
		t.Errorf("presets %+v", Presets())
	}
}

// TestTrainingLimits: every training and model size limit is refused by
// Validate with the key and the limit named; the inputs that used to
// panic or hang (puzzle_emb_len=1e9, expansion=1e6, halt_max_steps=1e9)
// are refused before a run allocates anything.
func TestTrainingLimits(t *testing.T) {
	for _, l := range Limits() {
		if strings.Contains(l.Key, " ") {
			continue
		}
		c := DefaultConfig()
		over := fmt.Sprintf("%s=%d", l.Key, int64(l.Max)+1)
		if err := c.Set(over); err != nil {
			t.Fatalf("%s: %v", over, err)
		}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "above the limit") || !strings.Contains(err.Error(), strings.TrimPrefix(l.Key, "arch.")) {
			t.Errorf("%s: %v", over, err)
		}
	}
	data := t.TempDir()
	if err := BuildDemoSudoku(data, 40, 8, 8, 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{"arch.puzzle_emb_len=1e9", "arch.expansion=1e6", "arch.halt_max_steps=1e9", "global_batch_size=1e9", "epochs=1e12"} {
		for _, preset := range []string{"sudoku-att", "sudoku-mlp"} {
			c, _ := FromPreset(preset)
			c.DataPaths = []string{data}
			if err := c.Set(kv); err != nil {
				t.Fatal(err)
			}
			_, err := Run(context.Background(), c, RunOptions{Backend: cpu.New(1)})
			if err == nil || !strings.Contains(err.Error(), "above the limit") {
				t.Errorf("%s %s: run error %v", preset, kv, err)
			}
		}
	}
}

// TestEstimateMemoryMatchesTrainer: the plan's training part equals what
// New allocates on the backend (model, carry, optimizer and EMA).
func TestEstimateMemoryMatchesTrainer(t *testing.T) {
	for _, ema := range []bool{false, true} {
		cfg := DemoConfig()
		cfg.GlobalBatchSize, cfg.EMA = 8, ema
		cfg.Arch.SeqLen, cfg.Arch.VocabSize, cfg.Arch.NumPuzzleIdentifiers = 16, 6, 10
		be := &countingBackend{Backend: cpu.New(1)}
		arch := cfg.Arch
		arch.BatchSize = cfg.GlobalBatchSize
		if _, err := New(cfg, be, engine.InitParams(engine.NewLayout(arch), 1), 10, 1); err != nil {
			t.Fatal(err)
		}
		p, err := EstimateMemory(cfg, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Train.Total() + p.Optimizer; got != be.bytes {
			t.Errorf("ema %v: plan %d bytes (%+v), allocated %d", ema, got, p, be.bytes)
		}
		// Fits names the key to lower and the batch that would fit.
		if err := p.Fits(p.Total(), "cpu"); err != nil {
			t.Errorf("the plan does not fit its own size: %v", err)
		}
		err = p.Fits(p.Total()-p.Train.Activations/2, "cpu")
		if err == nil || !strings.Contains(err.Error(), "lower global_batch_size (a batch of at most") {
			t.Errorf("short of memory: %v", err)
		}
		if err := p.Fits(p.Optimizer/2, "cpu"); err == nil || !strings.Contains(err.Error(), "lower arch.hidden_size") {
			t.Errorf("weights do not fit: %v", err)
		}
	}
	cfg := DemoConfig()
	cfg.GlobalBatchSize = 8
	n, err := EstimateBatchBytes(cfg, 2)
	if err != nil || n <= 0 {
		t.Fatalf("two replicas: %d, %v", n, err)
	}
	if _, err := EstimateBatchBytes(cfg, 3); err == nil {
		t.Fatal("a batch of 8 over 3 replicas was planned")
	}
}

// countingBackend is a CPU backend that adds up the bytes of every Alloc.
type countingBackend struct {
	engine.Backend
	bytes int64
}

func (c *countingBackend) Alloc(dt engine.DType, n int) engine.Buf {
	size := int64(4)
	if dt == engine.F64 {
		size = 8
	}
	c.bytes += size * int64(n)
	return c.Backend.Alloc(dt, n)
}
