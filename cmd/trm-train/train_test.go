package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/trainer"
	"github.com/tinyrecursive/trm/trainer/data"
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

// writeTokenDataset writes train and test splits of n examples each with
// the sizes of the golden att_rope_small model (seq_len 16, vocab 11, 5
// puzzle identifiers), one example per puzzle and group.
func writeTokenDataset(t *testing.T, dir string, n int) {
	t.Helper()
	r := data.NewRNG(3, 0)
	ignore := 0
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteIdentifiers(dir, []string{"<blank>", "p1", "p2", "p3", "p4"}); err != nil {
		t.Fatal(err)
	}
	for _, split := range []string{"train", "test"} {
		sd := filepath.Join(dir, split)
		if err := os.MkdirAll(sd, 0o755); err != nil {
			t.Fatal(err)
		}
		in, lab := make([]int32, n*16), make([]int32, n*16)
		ids, idx := make([]int32, n), make([]int32, n+1)
		for i := range in {
			in[i], lab[i] = int32(1+r.IntN(10)), int32(1+r.IntN(10))
		}
		for i := range ids {
			ids[i], idx[i+1] = int32(1+i%4), int32(i+1)
		}
		err := data.WriteSet(sd, "all", data.SetArrays{Inputs: data.Int32Array(in, n, 16), Labels: data.Int32Array(lab, n, 16),
			PuzzleIdentifiers: data.Int32Array(ids, n), PuzzleIndices: data.Int32Array(idx, n+1), GroupIndices: data.Int32Array(idx, n+1)})
		if err == nil {
			err = data.WriteMetadata(sd, data.Metadata{IgnoreLabelID: &ignore, VocabSize: 11, SeqLen: 16, NumPuzzleIdentifiers: 5,
				TotalGroups: n, MeanPuzzleExamples: 1, TotalPuzzles: n, Sets: []string{"all"}})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestTrainLoadCheckpoint: load_checkpoint=FILE.pt imports a reference
// checkpoint as the initial weights. With every learning rate 0 the one
// step leaves them as they were, so the run's checkpoint holds exactly the
// weights the reference saved. A mismatching architecture, a missing file
// and a conflicting --init are refused.
func TestTrainLoadCheckpoint(t *testing.T) {
	gold := filepath.Join("..", "..", "testdata", "golden")
	want, err := safetensors.ReadFile(filepath.Join(gold, "att_rope_small", "weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ds := filepath.Join(dir, "tokens")
	writeTokenDataset(t, ds, 8)
	pt := filepath.Join(gold, "torch", "att_rope_small.compiled.pt")
	out := filepath.Join(dir, "run")
	args := []string{"train", "--quiet", "--out", out, "data_paths=[" + ds + "]", "load_checkpoint=" + pt,
		"global_batch_size=4", "epochs=1", "eval_interval=1", "max_steps=1", "eval_max_batches=1", "lr=0", "puzzle_emb_lr=0", "lr_warmup_steps=0",
		"arch.hidden_size=64", "arch.num_heads=4", "arch.L_layers=2", "arch.H_cycles=2", "arch.L_cycles=3", "arch.expansion=4",
		"arch.puzzle_emb_ndim=64", "arch.puzzle_emb_len=2", "arch.halt_max_steps=4", "arch.pos_encodings=rope"}
	code, stdout, stderr := runCmd(args...)
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "load_checkpoint: starting from the weights of "+pt) {
		t.Errorf("no load_checkpoint line:\n%s", stderr)
	}
	_, ck, ok := strings.Cut(stdout, "checkpoint: ")
	if !ok {
		t.Fatalf("no checkpoint written:\n%s", stdout)
	}
	got, err := safetensors.ReadFile(filepath.Join(strings.TrimSpace(ck), trainer.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("checkpoint has %d tensors, the reference %d", len(got.Tensors), len(want.Tensors))
	}
	for k, wt := range want.Tensors {
		gt, ok := got.Tensors[k]
		if !ok {
			t.Fatalf("checkpoint lacks %s", k)
		}
		g, _ := gt.Float32()
		w, _ := wt.Float32()
		if !slices.Equal(gt.Shape, wt.Shape) || !slices.Equal(g, w) {
			t.Errorf("%s differs from the reference's weights", k)
		}
	}

	// The sudoku-att preset's model is not the file's.
	code, _, stderr = runCmd("train", "--quiet", "--preset", "sudoku-att", "data_paths=["+ds+"]", "load_checkpoint="+pt, "max_steps=1")
	if code != 1 || !strings.Contains(stderr, "load_checkpoint") || !strings.Contains(stderr, "shape") {
		t.Errorf("wrong architecture: exit %d, %s", code, stderr)
	}
	code, _, stderr = runCmd("train", "--quiet", "data_paths=["+ds+"]", "load_checkpoint="+filepath.Join(dir, "missing.pt"), "max_steps=1")
	if code != 1 || !strings.Contains(stderr, "missing.pt") {
		t.Errorf("missing file: exit %d, %s", code, stderr)
	}
	code, _, stderr = runCmd("train", "--init", "x.safetensors", "data_paths=["+ds+"]", "load_checkpoint="+pt)
	if code != 2 || !strings.Contains(stderr, "load_checkpoint and --init") {
		t.Errorf("with --init: exit %d, %s", code, stderr)
	}
	code, _, stderr = runCmd("train", "--resume", out, "data_paths=["+ds+"]", "load_checkpoint="+pt)
	if code != 2 || !strings.Contains(stderr, "exclude each other") {
		t.Errorf("with --resume DIR: exit %d, %s", code, stderr)
	}
	// --resume auto in a run directory that has a checkpoint continues
	// from it and leaves load_checkpoint unread.
	code, stdout, stderr = runCmd(append(args, "--resume", "auto", "max_steps=2")...)
	if code != 0 || !strings.Contains(stderr, "load_checkpoint: not read") || !strings.Contains(stdout, "done: ") {
		t.Errorf("--resume auto after a checkpoint: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestImportBounds: --max-memory bounds what the import may allocate (the
// golden file's 530 kB of weights do not fit in 64 KiB), a cancelled
// import writes nothing, and sizes parse with binary units.
func TestImportBounds(t *testing.T) {
	pt := filepath.Join("..", "..", "testdata", "golden", "torch", "att_rope_small.compiled.pt")
	out := filepath.Join(t.TempDir(), "m.safetensors")
	code, _, stderr := runCmd("import", "--max-memory", "64KiB", pt, out)
	if code != 1 || !strings.Contains(stderr, pt) {
		t.Errorf("--max-memory 64KiB: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused import left %s: %v", out, err)
	}
	if code, _, stderr := runCmd("import", "--max-memory", "1GiB", "--allow-expanded-views", pt, out); code != 0 {
		t.Errorf("--max-memory 1GiB: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCmd("import", "--max-memory", "lots", pt, out); code != 2 || !strings.Contains(stderr, `"lots" is not a size`) {
		t.Errorf("--max-memory lots: exit %d, %s", code, stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out2 := filepath.Join(t.TempDir(), "m.safetensors")
	err := runImport(ctx, io.Discard, io.Discard, &importFlags{}, []string{pt, out2})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled import: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Errorf("a cancelled import left %s: %v", out2, err)
	}
	for s, want := range map[string]int64{"1024": 1024, "64KiB": 64 << 10, "512M": 512 << 20, "1.5GB": 3 << 29, "2t": 2 << 40} {
		if got, err := parseBytes(s); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "-1K", "12X", "GiB"} {
		if _, err := parseBytes(s); err == nil {
			t.Errorf("parseBytes(%q) accepted", s)
		}
	}
}
