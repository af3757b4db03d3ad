package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/engine/cpu/gemm"
	"github.com/tinyrecursive/trm/trainer"
	"github.com/tinyrecursive/trm/trainer/data"
)

// tinyRun is a command line that trains a tiny model on a 32-puzzle 4x4
// Sudoku set in a second: 4 steps per epoch, a checkpoint after each of
// the 2 epochs (steps 4 and 8), both kept.
func tinyRun(t *testing.T, dir, out string, extra ...string) []string {
	t.Helper()
	if !data.Exists(dir, "train") {
		if err := trainer.BuildDemoSudoku(dir, 32, 8, 8, 0, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"train", "--quiet", "data_paths=[" + dir + "]", "global_batch_size=8", "epochs=2", "eval_interval=1",
		"checkpoint_every_eval=true", "keep_checkpoints=2", "eval_max_batches=1",
		"arch.hidden_size=16", "arch.num_heads=2", "arch.puzzle_emb_ndim=16", "arch.expansion=2",
		"arch.H_cycles=1", "arch.L_cycles=1", "arch.L_layers=1", "arch.halt_max_steps=2"}
	if out != "" {
		args = append(args, "--out", out)
	}
	return append(args, extra...)
}

// treeHash hashes every file name and content under dir.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// mustTrain runs a command line that must succeed.
func mustTrain(t *testing.T, args []string) (string, string) {
	t.Helper()
	code, out, errs := runCmd(args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
	}
	return out, errs
}

// TestTrainLogFailure: a log that cannot be written (--log /dev/full)
// stops the run with an error naming it; --log-degrade warns and trains
// on.
func TestTrainLogFailure(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	dir := t.TempDir()
	ds := filepath.Join(dir, "sudoku4")
	code, out, errs := runCmd(tinyRun(t, ds, filepath.Join(dir, "a"), "--log", "/dev/full")...)
	if code != 1 || !strings.Contains(errs, "/dev/full") {
		t.Fatalf("--log /dev/full: exit %d\n%s%s", code, out, errs)
	}
	out, errs = mustTrain(t, tinyRun(t, ds, filepath.Join(dir, "b"), "--log", "/dev/full", "--log-degrade"))
	if !strings.Contains(errs, "WARNING") || !strings.Contains(errs, "/dev/full") || !strings.Contains(out, "done: 8 steps") {
		t.Fatalf("--log-degrade: no warning or no full run\n%s%s", out, errs)
	}
}

// TestTrainRunDirLocked: a run directory held by another run (its lock
// taken here, as a running trm-train holds it) refuses a second run at
// once, naming the holder's PID and host; once released it trains.
func TestTrainRunDirLocked(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "run")
	lk, err := trainer.LockRunDir(out)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	code, stdout, errs := runCmd(tinyRun(t, filepath.Join(dir, "sudoku4"), out)...)
	if code != 1 || !strings.Contains(errs, fmt.Sprintf("PID %d", os.Getpid())) || !strings.Contains(errs, "host "+host) {
		t.Fatalf("locked directory: exit %d\n%s%s", code, stdout, errs)
	}
	if _, err := os.Stat(filepath.Join(out, "run.jsonl")); !os.IsNotExist(err) {
		t.Errorf("the refused run wrote its log into the held directory: %v", err)
	}
	lk.Close()
	mustTrain(t, tinyRun(t, filepath.Join(dir, "sudoku4"), out))
}

// TestTrainResumeInto: --resume rA --out rB refuses a key a resume cannot
// change (lr), and with the keys it may change writes rB, leaving every
// byte of rA as it was. A resume without --out continues rA's own log.
func TestTrainResumeInto(t *testing.T) {
	dir := t.TempDir()
	ds, rA, rB := filepath.Join(dir, "sudoku4"), filepath.Join(dir, "rA"), filepath.Join(dir, "rB")
	mustTrain(t, tinyRun(t, ds, rA, "max_steps=4"))
	before := treeHash(t, rA)
	resume := []string{"train", "--quiet", "--resume", rA, "--out", rB, "max_steps=8"}
	code, out, errs := runCmd(append(resume, "lr=5")...)
	if (code != 1 && code != 2) || !strings.Contains(errs, "lr") {
		t.Fatalf("resume with lr=5: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(rB); !os.IsNotExist(err) {
		if steps, _ := trainer.ListCheckpoints(rB); len(steps) > 0 {
			t.Fatalf("the refused resume wrote checkpoints: %v", steps)
		}
	}
	out, errs = mustTrain(t, resume)
	// The first run stopped at its step limit, at the end of its first
	// pass: the resume trains the next one, up to the new total.
	if !strings.Contains(errs, "max_steps changed on resume: 4 -> 8") || !strings.Contains(out, "done: 8 steps") ||
		!strings.Contains(out, "checkpoint: "+rB+string(filepath.Separator)+trainer.StepDirName(8)) {
		t.Fatalf("resume into rB:\n%s%s", out, errs)
	}
	steps, err := trainer.ListCheckpoints(rB)
	if err != nil || len(steps) == 0 {
		t.Fatalf("rB has no checkpoint: %v", err)
	}
	m, err := trainer.LoadMeta(steps[len(steps)-1])
	if err != nil || m.Config.CheckpointDir != rB || m.Config.TotalStepsLimit != 8 {
		t.Fatalf("rB's checkpoint: %v, checkpoint_dir %q, max_steps %d", err, m.Config.CheckpointDir, m.Config.TotalStepsLimit)
	}
	if _, err := os.Stat(filepath.Join(rB, "run.jsonl")); err != nil {
		t.Errorf("the resumed run has no log in rB: %v", err)
	}
	if after := treeHash(t, rA); after != before {
		t.Errorf("resuming into rB changed rA")
	}
	// Without --out the run continues in rA and appends a resume record
	// to rA's log.
	if out, errs := mustTrain(t, []string{"train", "--quiet", "--resume", rA, "max_steps=8"}); !strings.Contains(out, "done: 8 steps") {
		t.Fatalf("resume in rA:\n%s%s", out, errs)
	}
	log, err := os.ReadFile(filepath.Join(rA, "run.jsonl"))
	if err != nil || !strings.Contains(string(log), `"type":"resume"`) {
		t.Fatalf("rA's log after a resume without --out has no resume record (%v):\n%s", err, log)
	}
}

// TestTrainOverwrite: a fresh run refuses a directory holding another
// run's checkpoints, naming --overwrite, which deletes them.
func TestTrainOverwrite(t *testing.T) {
	dir := t.TempDir()
	ds, out := filepath.Join(dir, "sudoku4"), filepath.Join(dir, "run")
	mustTrain(t, tinyRun(t, ds, out))
	code, stdout, errs := runCmd(tinyRun(t, ds, out, "max_steps=4")...)
	if code != 1 || !strings.Contains(errs, "another run") || !strings.Contains(errs, "--overwrite") {
		t.Fatalf("a fresh run over another's checkpoints: exit %d\n%s%s", code, stdout, errs)
	}
	if _, err := os.Stat(filepath.Join(out, trainer.StepDirName(8))); err != nil {
		t.Fatalf("the refused run touched the other run's checkpoints: %v", err)
	}
	// The dry run says the same, and what --overwrite would delete.
	code, _, errs = runCmd(tinyRun(t, ds, out, "max_steps=4", "--dry-run")...)
	if code != 1 || !strings.Contains(errs, "another run") || !strings.Contains(errs, "--overwrite") {
		t.Fatalf("dry run over another's checkpoints: exit %d\n%s", code, errs)
	}
	code, _, errs = runCmd(tinyRun(t, ds, out, "max_steps=4", "--dry-run", "--overwrite")...)
	if code != 0 || !strings.Contains(errs, "overwrite: the run deletes the 2 checkpoints of another run") {
		t.Fatalf("dry run with --overwrite: exit %d\n%s", code, errs)
	}
	_, errs = mustTrain(t, tinyRun(t, ds, out, "max_steps=4", "--overwrite"))
	if !strings.Contains(errs, "overwrite: deleted") {
		t.Errorf("--overwrite does not say what it deleted:\n%s", errs)
	}
	steps, err := trainer.ListCheckpoints(out)
	if err != nil || len(steps) != 1 || filepath.Base(steps[0]) != trainer.StepDirName(4) {
		t.Errorf("after --overwrite: checkpoints %v, %v; want the new run's step 4 alone", steps, err)
	}
}

// TestTrainFallbackCheckpoint: a resume whose newest checkpoint has a
// flipped byte fails naming the file; --fallback-checkpoint resumes from
// the previous one (step 4) and trains to the end.
func TestTrainFallbackCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ds, out := filepath.Join(dir, "sudoku4"), filepath.Join(dir, "run")
	mustTrain(t, tinyRun(t, ds, out))
	flipByte(t, filepath.Join(out, trainer.StepDirName(8), trainer.ModelFile))
	resume := []string{"train", "--quiet", "--resume", out, "epochs=3"}
	code, stdout, errs := runCmd(resume...)
	if code != 1 || !strings.Contains(errs, trainer.ModelFile) || !strings.Contains(errs, "--fallback-checkpoint") {
		t.Fatalf("damaged newest checkpoint: exit %d\n%s%s", code, stdout, errs)
	}
	stdout, errs = mustTrain(t, append(resume, "--fallback-checkpoint"))
	if !strings.Contains(errs, trainer.StepDirName(8)) || !strings.Contains(stdout, "done: 12 steps") {
		t.Fatalf("--fallback-checkpoint:\n%s%s", stdout, errs)
	}
	log, err := os.ReadFile(filepath.Join(out, "run.jsonl"))
	if err != nil || !strings.Contains(string(log), `"from":"`+filepath.Join(out, trainer.StepDirName(4))+`"`) {
		t.Errorf("the log does not record a resume from step 4 (%v):\n%s", err, log)
	}
}

// flipByte inverts the last byte of a file.
func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEvalVerifiesCheckpoint: eval (and solve, which loads the same way)
// refuses a checkpoint whose weights no longer match its manifest,
// naming the file.
func TestEvalVerifiesCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ds, out := filepath.Join(dir, "sudoku4"), filepath.Join(dir, "run")
	mustTrain(t, tinyRun(t, ds, out, "epochs=1"))
	if code, stdout, errs := runCmd("eval", "--checkpoint", out, "--max-batches", "1"); code != 0 {
		t.Fatalf("eval of an intact checkpoint: exit %d\n%s%s", code, stdout, errs)
	}
	ck := filepath.Join(out, trainer.StepDirName(4))
	flipByte(t, filepath.Join(ck, trainer.ModelFile))
	for _, args := range [][]string{{"eval", "--checkpoint", ck}, {"solve", "--checkpoint", ck, "1.3..2.......1.2"}} {
		code, stdout, errs := runCmd(args...)
		if code != 1 || !strings.Contains(errs, trainer.ModelFile) || !strings.Contains(errs, "SHA-256") {
			t.Errorf("%v with a flipped byte: exit %d\n%s%s", args, code, stdout, errs)
		}
	}
}

// TestTrainInterruptedMessage: an interrupted run names the command
// that resumes it: its run directory once it has a checkpoint there, the
// checkpoint it started from with --out when stopped during start-up of a
// resume into a new directory, and nothing to resume for a fresh run
// stopped before its first checkpoint.
func TestTrainInterruptedMessage(t *testing.T) {
	dir := t.TempDir()
	rA, rB := filepath.Join(dir, "rA"), filepath.Join(dir, "rB")
	args := tinyRun(t, filepath.Join(dir, "sudoku4"), "")[2:] // the key=value overrides
	mustTrain(t, tinyRun(t, filepath.Join(dir, "sudoku4"), rA))
	be, err := openBackend("cpu", 1)
	if err != nil {
		t.Fatal(err)
	}
	// A cancelled context: the trainer stops while the data opens or
	// before the first step, whichever it reaches first.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	interrupted := func(f *trainFlags, args []string) string {
		t.Helper()
		cfg, err := resolveTrainConfig(f, args)
		if err != nil {
			t.Fatal(err)
		}
		opt := runOptions(f, cfg, args)
		opt.Backend, opt.Warn = be, io.Discard
		var stdout strings.Builder
		sum, err := train(ctx, cfg, opt, &stdout)
		if err != nil || sum == nil || !sum.Interrupted {
			t.Fatalf("cancelled run: %+v, %v", sum, err)
		}
		return stdout.String()
	}
	got := interrupted(&trainFlags{resume: rA, out: rB}, []string{"epochs=3"})
	resumeB := "resume with: trm-train train --resume " + rB + "\n"
	if steps, _ := trainer.ListCheckpoints(rB); len(steps) == 0 {
		resumeB = "resume with: trm-train train --resume " + filepath.Join(rA, trainer.StepDirName(8)) + " --out " + rB + "\n"
	}
	t.Logf("resume into rB: %s", got)
	if !strings.Contains(got, resumeB) {
		t.Errorf("resume into rB stopped: %q, want %q", got, resumeB)
	}
	fresh := filepath.Join(dir, "fresh")
	got = interrupted(&trainFlags{out: fresh}, args)
	want := "resume with: trm-train train --resume " + fresh + "\n"
	if steps, _ := trainer.ListCheckpoints(fresh); len(steps) == 0 {
		want = "stopped before its first checkpoint: nothing to resume"
	}
	t.Logf("fresh: %s", got)
	if !strings.Contains(got, want) {
		t.Errorf("fresh run stopped: %q, want %q", got, want)
	}
}

// TestTrainDryRunPlan: the dry run prints the memory estimate and, on the
// CPU, whether this host has it; a load_checkpoint that is not there
// fails the dry run as it would fail the run; a resume plans the
// checkpoint --fallback-checkpoint would take, and refuses without it.
func TestTrainDryRunPlan(t *testing.T) {
	dir := t.TempDir()
	ds, out := filepath.Join(dir, "sudoku4"), filepath.Join(dir, "run")
	code, _, errs := runCmd(tinyRun(t, ds, out, "--dry-run")...)
	if code != 0 || !strings.Contains(errs, "dry run: memory per replica about ") || !strings.Contains(errs, "this host") {
		t.Fatalf("dry run: exit %d\n%s", code, errs)
	}
	missing := filepath.Join(dir, "missing.pt")
	code, _, errs = runCmd(tinyRun(t, ds, out, "--dry-run", "load_checkpoint="+missing)...)
	if code != 1 || !strings.Contains(errs, "load_checkpoint") || !strings.Contains(errs, missing) {
		t.Fatalf("dry run with a missing load_checkpoint: exit %d\n%s", code, errs)
	}
	mustTrain(t, tinyRun(t, ds, out))
	flipByte(t, filepath.Join(out, trainer.StepDirName(8), trainer.ModelFile))
	code, _, errs = runCmd("train", "--resume", out, "epochs=3", "--dry-run")
	if code != 1 || !strings.Contains(errs, trainer.ModelFile) {
		t.Fatalf("dry run of a resume from a damaged checkpoint: exit %d\n%s", code, errs)
	}
	code, _, errs = runCmd("train", "--resume", out, "epochs=3", "--fallback-checkpoint", "--dry-run")
	if code != 0 || !strings.Contains(errs, "resumes from "+filepath.Join(out, trainer.StepDirName(4))+" at step 4") {
		t.Fatalf("dry run with --fallback-checkpoint: exit %d\n%s", code, errs)
	}
}

// TestEvalWarnings: a reference key without effect given to eval is
// accepted with one warning line, as train prints it.
func TestEvalWarnings(t *testing.T) {
	dir := t.TempDir()
	ds, out := filepath.Join(dir, "sudoku4"), filepath.Join(dir, "run")
	mustTrain(t, tinyRun(t, ds, out, "epochs=1"))
	code, _, errs := runCmd("eval", "--checkpoint", out, "evaluators=[]", "--dry-run")
	if code != 0 || strings.Count(errs, "warning: ") != 1 || !strings.Contains(errs, "evaluators") {
		t.Fatalf("eval evaluators=[]: exit %d\n%s", code, errs)
	}
}

// TestTrainResumeAutoKey: the resume_auto key launches as --resume auto
// does, in the run and in its dry run: a fresh run in an empty directory,
// then a resume from its checkpoint by the same command line.
func TestTrainResumeAutoKey(t *testing.T) {
	dir := t.TempDir()
	ds, out := filepath.Join(dir, "sudoku4"), filepath.Join(dir, "run")
	args := tinyRun(t, ds, out, "resume_auto=true", "epochs=1")
	mustTrain(t, args)
	code, _, errs := runCmd(append(args, "--dry-run")...)
	if code != 0 || !strings.Contains(errs, "resumes from "+filepath.Join(out, trainer.StepDirName(4))+" at step 4") {
		t.Fatalf("dry run of the relaunch: exit %d\n%s", code, errs)
	}
	stdout, _ := mustTrain(t, args)
	if log, err := os.ReadFile(filepath.Join(out, "run.jsonl")); err != nil || !strings.Contains(string(log), `"type":"resume"`) || !strings.Contains(stdout, "done: 4 steps") {
		t.Fatalf("the relaunch did not resume (%v):\n%s\n%s", err, stdout, log)
	}
}

// TestTrainDryRunPrecision: on the CPU the dry run plans the memory of
// the precision the run would use: with bf16 GEMMs (and so bf16
// activations) the device line says so and the estimate is smaller than
// in fp32; bf16 activations over fp32 GEMMs fail the dry run as they
// would fail the run, naming the variables.
func TestTrainDryRunPrecision(t *testing.T) {
	dir := t.TempDir()
	ds, out := filepath.Join(dir, "sudoku4"), filepath.Join(dir, "run")
	memory := func(errs string) float64 {
		t.Helper()
		_, rest, ok := strings.Cut(errs, "memory per replica about ")
		var gib float64
		if _, err := fmt.Sscanf(rest, "%g GiB", &gib); !ok || err != nil {
			t.Fatalf("no memory estimate in:\n%s", errs)
		}
		return gib
	}
	t.Setenv(cpu.GemmEnv, "fp32")
	code, _, errs := runCmd(tinyRun(t, ds, out, "--dry-run")...)
	if code != 0 || !strings.Contains(errs, "(fp32)") {
		t.Fatalf("fp32 dry run: exit %d\n%s", code, errs)
	}
	fp32 := memory(errs)
	t.Setenv(cpu.ActivationsEnv, "bf16")
	code, _, errs = runCmd(tinyRun(t, ds, out, "--dry-run")...)
	if code != 1 || !strings.Contains(errs, cpu.ActivationsEnv) || !strings.Contains(errs, cpu.GemmEnv) {
		t.Fatalf("dry run with bf16 activations over fp32 GEMMs: exit %d\n%s", code, errs)
	}
	if !gemm.BF16Supported() {
		t.Skip("this CPU lacks AVX512_BF16: no bf16 plan to check")
	}
	t.Setenv(cpu.GemmEnv, "bf16")
	t.Setenv(cpu.ActivationsEnv, "")
	code, _, errs = runCmd(tinyRun(t, ds, out, "--dry-run")...)
	if code != 0 || !strings.Contains(errs, "(bf16 GEMMs, bf16 activations)") {
		t.Fatalf("bf16 dry run: exit %d\n%s", code, errs)
	}
	if bf16 := memory(errs); !(bf16 < fp32) {
		t.Fatalf("bf16 plans %g GiB, fp32 %g GiB", bf16, fp32)
	}
}
