package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/trainer"
)

// TestTrainEvalSolve runs the commands a user runs: train a few steps with
// overrides into a checkpoint directory, evaluate it, solve one puzzle.
func TestTrainEvalSolve(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoSudoku(data, 64, 16, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	code, stdout, stderr := runCmd("train", "--quiet", "--out", out,
		"data_paths=["+data+"]", "global_batch_size=16", "epochs=2", "eval_interval=2",
		"arch.hidden_size=32", "arch.num_heads=2", "arch.puzzle_emb_ndim=32", "arch.H_cycles=1", "arch.L_cycles=1",
		"arch.halt_max_steps=3", "arch.loss.loss_type=softmax_cross_entropy", "lr=1e-3", "lr_warmup_steps=2")
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "done: 8 steps") || !strings.Contains(stdout, "all/exact_accuracy") {
		t.Fatalf("train output:\n%s", stdout)
	}
	log, err := os.ReadFile(filepath.Join(out, "run.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), `"type":"train"`); n != 8 {
		t.Fatalf("run.jsonl has %d train lines, want 8", n)
	}
	code, stdout, stderr = runCmd("eval", "--checkpoint", out, "--early-exit")
	if code != 0 || !strings.Contains(stdout, "all/count") || !strings.Contains(stdout, "supervision steps saved") {
		t.Fatalf("eval: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "all/count                    16.0000") {
		t.Fatalf("eval did not count the 16 test puzzles:\n%s", stdout)
	}
	code, stdout, stderr = runCmd("solve", "--checkpoint", out, "1.3..2.......1.2")
	if code != 0 || !strings.Contains(stdout, "4x4 Sudoku") || !strings.Contains(stdout, "step 3:") {
		t.Fatalf("solve: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = runCmd("solve", "--checkpoint", out, "1.3")
	if code != 2 || !strings.Contains(stderr, "16 cells, got 3") {
		t.Fatalf("solve with a short puzzle: exit %d, %s", code, stderr)
	}
}

func TestTrainRejectsBadInput(t *testing.T) {
	code, _, stderr := runCmd("train", "lr_typo=1")
	if code != 2 || !strings.Contains(stderr, `unknown key "lr_typo"`) || !strings.Contains(stderr, "global_batch_size") {
		t.Errorf("unknown key: exit %d, %s", code, stderr)
	}
	code, _, stderr = runCmd("train", "--device", "tpu:0", "data_paths=[x]")
	if code != 1 || !strings.Contains(stderr, `want cpu or cuda:N`) {
		t.Errorf("bad device: exit %d, %s", code, stderr)
	}
	code, _, stderr = runCmd("train", "data_paths=[/nonexistent]")
	if code != 1 || !strings.Contains(stderr, "/nonexistent") {
		t.Errorf("missing data: exit %d, %s", code, stderr)
	}
	code, _, stderr = runCmd("train", "--preset", "nope")
	if code != 2 || !strings.Contains(stderr, "sudoku-mlp") {
		t.Errorf("bad preset: exit %d, %s", code, stderr)
	}
}

// TestImportGoldenTorch imports every PyTorch file the reference saved and
// compares with the golden weights (bf16: rounded to bf16).
func TestImportGoldenTorch(t *testing.T) {
	gold := filepath.Join("..", "..", "testdata", "golden")
	want, err := safetensors.ReadFile(filepath.Join(gold, "att_rope_small", "weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(gold, "att_rope_small", "config.json")
	for _, name := range []string{"compiled", "compiled.legacy", "nocompile", "bf16", "strided"} {
		out := filepath.Join(t.TempDir(), "m.safetensors")
		code, stdout, stderr := runCmd("import", "--model-config", cfg, filepath.Join(gold, "torch", "att_rope_small."+name+".pt"), out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s %s", name, code, stdout, stderr)
		}
		got, err := safetensors.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Tensors) != len(want.Tensors) {
			t.Fatalf("%s: %d tensors, want %d", name, len(got.Tensors), len(want.Tensors))
		}
		for k, wt := range want.Tensors {
			gt, ok := got.Tensors[k]
			if !ok {
				t.Fatalf("%s: missing %s", name, k)
			}
			g, _ := gt.Float32()
			w, _ := wt.Float32()
			if name == "bf16" {
				for i := range w {
					w[i] = safetensors.BF16ToFloat32(safetensors.Float32ToBF16(w[i]))
				}
			}
			if !slices.Equal(g, w) || !slices.Equal(gt.Shape, wt.Shape) {
				t.Fatalf("%s: %s differs", name, k)
			}
		}
	}
	// An imported model runs: solve a token sequence with it.
	out := filepath.Join(t.TempDir(), "m.safetensors")
	if code, _, stderr := runCmd("import", filepath.Join(gold, "torch", "att_rope_small.compiled.pt"), out); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := runCmd("solve", "--model", out, "--model-config", cfg, "--puzzle-id", "3", "1 2 3 4 5 6 7 8 9 10 1 2 3 4 5 6")
	if code != 0 || !strings.Contains(stdout, "token sequence, 4 supervision steps") || !strings.Contains(stdout, "step 4:") {
		t.Fatalf("solve with the imported model: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := runCmd("import", "--model-config", "sudoku-att", filepath.Join(gold, "torch", "att_rope_small.compiled.pt"), out); code != 1 || !strings.Contains(stderr, "has shape") {
		t.Fatalf("import against the wrong architecture: exit %d, %s", code, stderr)
	}
}

// TestRankMetrics: in a multi-process job each local rank serves on the
// given port plus its LOCAL_RANK, labelled with its global rank.
func TestRankMetrics(t *testing.T) {
	addr, rank, err := rankMetrics(":9400")
	if err != nil || addr != ":9400" || rank != "" {
		t.Fatalf("single process: %q %q %v", addr, rank, err)
	}
	t.Setenv("RANK", "5")
	t.Setenv("WORLD_SIZE", "8")
	t.Setenv("LOCAL_RANK", "1")
	t.Setenv("LOCAL_WORLD_SIZE", "4")
	t.Setenv("MASTER_ADDR", "node0")
	t.Setenv("MASTER_PORT", "29500")
	addr, rank, err = rankMetrics(":9400")
	if err != nil || addr != "127.0.0.1:9401" || rank != "5" {
		t.Fatalf("rank 5, local rank 1: %q %q %v", addr, rank, err)
	}
	if addr, _, _ = rankMetrics("0.0.0.0:0"); addr != "0.0.0.0:0" {
		t.Fatalf("port 0 stays 0 (a free port): %q", addr)
	}
}
