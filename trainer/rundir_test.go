package trainer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/trainer/data"
)

// interruptedRun trains cfg until step `at`, cancelled there, and returns
// the run directory (cfg.CheckpointDir) holding the checkpoint of that step.
func interruptedRun(t *testing.T, cfg Config, at int, opt RunOptions) (*Summary, *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{cancelAt: at, cancel: cancel}
	opt.Backend = cpu.New(0)
	opt.Hooks = append(opt.Hooks, rec)
	if opt.Warn == nil {
		opt.Warn = io.Discard
	}
	sum, err := Run(ctx, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.Steps != at {
		t.Fatalf("interrupted run: %+v", sum)
	}
	return sum, rec
}

// tree lists every file under dir with its size and modification time.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() {
			out[p] = fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
		}
		return nil
	})
	return out
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return os.WriteFile(to, b, 0o644)
	})
}

func quiet(o RunOptions) RunOptions {
	o.Backend = cpu.New(0)
	o.Warn = io.Discard
	return o
}

// TestResumeConfig: the stored config is the base; only the resumable keys
// change, a repeated stored value is accepted, anything else is refused
// naming the key.
func TestResumeConfig(t *testing.T) {
	stored := DemoConfig()
	stored.DataPaths = []string{"/data/a"}
	stored.CheckpointDir = "/runs/a"
	got, notes, err := ResumeConfig(stored, []string{"max_steps=12", fmt.Sprintf("lr=%g", stored.LR), "eval_max_batches=2", "keep_checkpoints=5"}, "rel/out")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("rel/out")
	if got.TotalStepsLimit != 12 || got.EvalBatches != 2 || got.KeepCheckpoints != 5 || got.CheckpointDir != abs || got.LR != stored.LR {
		t.Fatalf("resumed config: max_steps %d eval_max_batches %d keep %d checkpoint_dir %s lr %g", got.TotalStepsLimit, got.EvalBatches, got.KeepCheckpoints, got.CheckpointDir, got.LR)
	}
	if len(notes) != 4 { // max_steps, eval_max_batches, keep_checkpoints, the new directory (lr repeats the stored value)
		t.Fatalf("notes %q", notes)
	}
	for _, bad := range []string{"lr=5", "arch.L_cycles=9", "seed=3", "global_batch_size=8", "ema=false"} {
		_, _, err := ResumeConfig(stored, []string{bad}, "")
		k, _, _ := strings.Cut(bad, "=")
		if err == nil || !strings.Contains(err.Error(), k+" cannot change on resume") {
			t.Errorf("%s: error %v, want a refusal naming %s", bad, err, k)
		}
	}
	if _, _, err := ResumeConfig(stored, []string{"no_such_key=1"}, ""); err == nil || !strings.Contains(err.Error(), "no_such_key") {
		t.Errorf("unknown key: %v", err)
	}
	// The reference's spelling of a resumable key is that key.
	got, _, err = ResumeConfig(stored, []string{"checkpoint_path=/runs/b"}, "")
	if err != nil || got.CheckpointDir != "/runs/b" {
		t.Errorf("checkpoint_path on resume: %v, %s", err, got.CheckpointDir)
	}
}

// TestResumeCopyLeavesOriginal: resuming a copy of a run directory writes
// into the copy; the original's files are untouched (before, the copied
// trainer.json's checkpoint_dir sent the checkpoints to the original and
// pruned it). The resumed run appends a resume record to the copy's log,
// keeps the run label and records the resolved config.
func TestResumeCopyLeavesOriginal(t *testing.T) {
	cfg := smallRunConfig(t)
	interruptedRun(t, cfg, 5, RunOptions{RunLabel: "sudoku-a", DefaultLog: true})
	orig := cfg.CheckpointDir
	cp := filepath.Join(t.TempDir(), "copy")
	copyDir(t, orig, cp)
	before := tree(t, orig)

	sum, err := Run(context.Background(), Config{}, quiet(RunOptions{Resume: cp, DefaultLog: true}))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Steps != 16 || filepath.Dir(sum.Checkpoint) != cp || sum.RunDir != cp {
		t.Fatalf("resumed run: %+v", sum)
	}
	if after := tree(t, orig); !maps_equal(before, after) {
		t.Fatalf("the original run directory changed:\n before %v\n after  %v", before, after)
	}
	if l := StoredRunLabel(cp); l != "sudoku-a" {
		t.Fatalf("run label %q after resume, want sudoku-a", l)
	}
	// A resume into a new directory keeps the label too.
	if l := RunLabelFor(Config{}, RunOptions{Resume: cp, Out: filepath.Join(t.TempDir(), "elsewhere")}); l != "sudoku-a" {
		t.Fatalf("label for a resume into a new directory: %q", l)
	}
	if l := RunLabelFor(Config{CheckpointDir: "/runs/fresh"}, RunOptions{}); l != "fresh" {
		t.Fatalf("label of a fresh run: %q", l)
	}
	recs := readLog(t, filepath.Join(cp, "run.jsonl"))
	var types []string
	for _, r := range recs {
		if r["type"] != "train" {
			types = append(types, r["type"].(string))
		}
	}
	want := []string{"start", "checkpoint", "end", "start", "resume"}
	if len(types) < len(want) || !slices.Equal(types[:len(want)], want) {
		t.Fatalf("log records %v, want to begin with %v", types, want)
	}
	var c map[string]any
	b, err := os.ReadFile(filepath.Join(cp, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &c); err != nil || c["checkpoint_dir"] != cp || c["global_batch_size"] != 16.0 {
		t.Fatalf("%s: %v %v", ConfigFile, err, c)
	}
	m, err := LoadMeta(sum.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(m.Config.DataPaths, m.Config.CheckpointDir) {
		if !filepath.IsAbs(p) {
			t.Fatalf("stored path %q is not absolute", p)
		}
	}
}

func maps_equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func readLog(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, m)
	}
	return out
}

// TestResumeOverrides: --out and max_steps apply on resume (before, both
// were ignored and the run exited 0); a change of lr is refused.
func TestResumeOverrides(t *testing.T) {
	cfg := smallRunConfig(t)
	interruptedRun(t, cfg, 5, RunOptions{})
	out := filepath.Join(t.TempDir(), "b")
	_, err := Run(context.Background(), Config{}, quiet(RunOptions{Resume: cfg.CheckpointDir, Out: out, ResumeOverrides: []string{"max_steps=12", "lr=5"}}))
	if err == nil || !strings.Contains(err.Error(), "lr cannot change") {
		t.Fatalf("lr=5 on resume: %v", err)
	}
	var warn bytes.Buffer
	o := quiet(RunOptions{Resume: cfg.CheckpointDir, Out: out, ResumeOverrides: []string{"max_steps=12"}})
	o.Warn = &warn
	sum, err := Run(context.Background(), Config{}, o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Steps != 12 || filepath.Dir(sum.Checkpoint) != out {
		t.Fatalf("resumed with max_steps=12 --out %s: %+v", out, sum)
	}
	if !strings.Contains(warn.String(), "no longer bit-exact") {
		t.Fatalf("the schedule change is not logged: %q", warn.String())
	}
	steps, _ := ListCheckpoints(cfg.CheckpointDir)
	if len(steps) != 1 || filepath.Base(steps[0]) != StepDirName(5) {
		t.Fatalf("the source directory changed: %v", steps)
	}
}

// TestResumeAuto: with Resume "auto" the same call starts a fresh run in
// an empty directory and resumes it after an interruption, bit-exact; a
// relaunch asking for another learning rate is refused naming lr.
func TestResumeAuto(t *testing.T) {
	cfg := smallRunConfig(t)
	full := &recorder{}
	ref := cfg
	ref.CheckpointDir = filepath.Join(t.TempDir(), "ref")
	if _, err := Run(context.Background(), ref, quiet(RunOptions{Hooks: []Hook{full}})); err != nil {
		t.Fatal(err)
	}
	_, first := interruptedRun(t, cfg, 7, RunOptions{Resume: ResumeAuto})
	changed := cfg
	changed.LR *= 2
	if _, err := Run(context.Background(), changed, quiet(RunOptions{Resume: ResumeAuto})); err == nil || !strings.Contains(err.Error(), "lr cannot change") {
		t.Fatalf("auto resume with another lr: %v", err)
	}
	plan, err := PlanRun(cfg, RunOptions{Resume: ResumeAuto})
	if err != nil || plan.Step != 7 || filepath.Dir(plan.Checkpoint) != cfg.CheckpointDir || plan.RunDir != cfg.CheckpointDir {
		t.Fatalf("plan of the auto resume: %+v, %v", plan, err)
	}
	second := &recorder{}
	rel := cfg
	rel.DataPaths = []string{relPath(t, cfg.DataPaths[0])} // the same data named relatively is no change
	sum, err := Run(context.Background(), rel, quiet(RunOptions{Resume: ResumeAuto, Hooks: []Hook{second}}))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resumed == "" || second.steps[0] != 8 {
		t.Fatalf("auto did not resume: %+v, first step %d", sum, second.steps[0])
	}
	if got := append(first.losses, second.losses...); !slices.Equal(got, full.losses) {
		t.Fatalf("losses after auto resume differ:\n got  %v\n want %v", got, full.losses)
	}
}

func relPath(t *testing.T, p string) string {
	wd, _ := os.Getwd()
	r, err := filepath.Rel(wd, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOneRunPerDirectory: a second run on a locked directory fails at once
// naming the holder's PID and host; a fresh run refuses a directory
// holding another run's checkpoints unless Overwrite is set.
func TestOneRunPerDirectory(t *testing.T) {
	cfg := smallRunConfig(t)
	lk, err := LockRunDir(cfg.CheckpointDir)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	t0 := time.Now()
	_, err = Run(context.Background(), cfg, quiet(RunOptions{}))
	if !errors.Is(err, ErrRunDirLocked) || !strings.Contains(err.Error(), fmt.Sprintf("PID %d on host %s", os.Getpid(), host)) {
		t.Fatalf("second run on a locked directory: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("refusal took %s", d)
	}
	lk.Close()
	interruptedRun(t, cfg, 3, RunOptions{})
	if _, err := Run(context.Background(), cfg, quiet(RunOptions{})); err == nil || !strings.Contains(err.Error(), "holds the checkpoints of another run") {
		t.Fatalf("fresh run over another run's checkpoints: %v", err)
	}
	cfg.TotalStepsLimit = 2
	sum, err := Run(context.Background(), cfg, quiet(RunOptions{Overwrite: true}))
	if err != nil {
		t.Fatal(err)
	}
	steps, _ := ListCheckpoints(cfg.CheckpointDir)
	if len(steps) != 1 || steps[0] != sum.Checkpoint {
		t.Fatalf("after --overwrite: %v", steps)
	}
}

// TestHeartbeatLock: where flock is refused the lock file with a
// heartbeat is the lock; a live one refuses, a stale one is taken over.
func TestHeartbeatLock(t *testing.T) {
	saved, savedBeat := tryFlock, lockBeat
	tryFlock = func(*os.File) error { return errFlockUnsupported }
	lockBeat = 50 * time.Millisecond
	defer func() { tryFlock, lockBeat = saved, savedBeat }()
	dir := t.TempDir()
	a, err := LockRunDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * lockBeat) // beats keep it fresh past several periods
	if _, err := LockRunDir(dir); !errors.Is(err, ErrRunDirLocked) || !strings.Contains(err.Error(), fmt.Sprintf("PID %d", os.Getpid())) {
		t.Fatalf("second lock: %v", err)
	}
	a.Close()
	b, err := LockRunDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Close()
	// A holder on another host that stopped beating long ago.
	stale := lockInfo{PID: 1, Host: "elsewhere", Mode: "heartbeat", Token: "x"}
	j, _ := json.Marshal(stale)
	p := filepath.Join(dir, LockFile)
	os.WriteFile(p, j, 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	c, err := LockRunDir(dir)
	if err != nil {
		t.Fatalf("stale lock not taken over: %v", err)
	}
	c.Close()
	// The same holder beating recently is live.
	os.WriteFile(p, j, 0o644)
	if _, err := LockRunDir(dir); !errors.Is(err, ErrRunDirLocked) || !strings.Contains(err.Error(), "PID 1 on host elsewhere") {
		t.Fatalf("live foreign lock: %v", err)
	}
}

// lastCheckpoint returns the newest checkpoint of a run directory.
func lastCheckpoint(t *testing.T, dir string) string {
	t.Helper()
	steps, err := ListCheckpoints(dir)
	if err != nil || len(steps) == 0 {
		t.Fatalf("no checkpoint in %s: %v", dir, err)
	}
	return steps[len(steps)-1]
}

// TestReplaceCheckpointKeepsOne: rewriting a step's checkpoint moves the
// old one aside first; a failure between the renames leaves it loadable
// under the aside name, and the next start puts it back. Half-written
// temporary checkpoints are removed at start.
func TestReplaceCheckpointKeepsOne(t *testing.T) {
	cfg := smallRunConfig(t)
	interruptedRun(t, cfg, 5, RunOptions{})
	junk := filepath.Join(cfg.CheckpointDir, ".tmp-step_000000009-123")
	os.MkdirAll(junk, 0o755)
	os.WriteFile(filepath.Join(junk, StateFile), make([]byte, 1000), 0o644)
	// Resume and stop at once: the same step is written again, and the
	// write fails after the old checkpoint went aside.
	t.Setenv("TRM_TEST_FAIL_AT", "checkpoint-aside")
	ctx := &countingCtx{Context: context.Background(), at: 1}
	_, err := Run(ctx, Config{}, quiet(RunOptions{Resume: cfg.CheckpointDir}))
	if err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("injected failure: %v", err)
	}
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Fatalf("stale temporary checkpoint kept: %v", err)
	}
	dir := lastCheckpoint(t, cfg.CheckpointDir)
	if filepath.Base(dir) != asidePrefix+StepDirName(5) {
		t.Fatalf("newest checkpoint %s, want the aside one", dir)
	}
	if _, err := loadVerified(dir); err != nil {
		t.Fatalf("aside checkpoint does not load: %v", err)
	}
	os.Unsetenv("TRM_TEST_FAIL_AT")
	rec := &recorder{}
	sum, err := Run(context.Background(), Config{}, quiet(RunOptions{Resume: cfg.CheckpointDir, Hooks: []Hook{rec}}))
	if err != nil {
		t.Fatal(err)
	}
	if rec.steps[0] != 6 || sum.Steps != 16 || !strings.Contains(strings.Join(sum.Notes, "\n"), "restored "+StepDirName(5)) {
		t.Fatalf("resume after the failed replacement: first step %d, %+v", rec.steps[0], sum)
	}
}

// rewriteManifest re-hashes a checkpoint after a test edited it, so the
// validation behind the manifest is what is tested.
func rewriteManifest(t *testing.T, dir string) {
	t.Helper()
	if err := writeManifest(dir, []string{StateFile, ModelFile, MetaFile, "arch.json"}); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointValidation: a flipped bit, a relabelled dtype, impossible
// counters and a missing trainer.json are refused naming the file; an
// older checkpoint is used only when asked.
func TestCheckpointValidation(t *testing.T) {
	cfg := smallRunConfig(t)
	if _, err := Run(context.Background(), cfg, quiet(RunOptions{})); err != nil {
		t.Fatal(err)
	}
	steps, _ := ListCheckpoints(cfg.CheckpointDir)
	if len(steps) != 2 {
		t.Fatalf("checkpoints %v", steps)
	}
	newest := steps[1]
	resume := func(o RunOptions) error {
		o.Resume = cfg.CheckpointDir
		o.ResumeOverrides = []string{"max_steps=20"}
		_, err := Run(context.Background(), Config{}, quiet(o))
		return err
	}
	backup := filepath.Join(t.TempDir(), "backup")
	copyDir(t, newest, backup)
	restore := func() {
		os.RemoveAll(newest)
		copyDir(t, backup, newest)
	}

	// A flipped bit.
	st := filepath.Join(newest, StateFile)
	b, _ := os.ReadFile(st)
	b[len(b)-3] ^= 0x10
	os.WriteFile(st, b, 0o644)
	if err := resume(RunOptions{}); err == nil || !strings.Contains(err.Error(), StateFile+" does not match its SHA-256") {
		t.Fatalf("flipped bit: %v", err)
	}
	// Only with the fallback option is the older checkpoint taken.
	var warn bytes.Buffer
	o := RunOptions{FallbackCheckpoint: true, Out: filepath.Join(t.TempDir(), "fb")}
	o.Resume, o.ResumeOverrides, o.Backend, o.Warn = cfg.CheckpointDir, []string{"max_steps=20"}, cpu.New(0), &warn
	sum, err := Run(context.Background(), Config{}, o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resumed != steps[0] || !strings.Contains(warn.String(), "fallback") {
		t.Fatalf("fallback resumed from %s (warnings %q)", sum.Resumed, warn.String())
	}
	restore()

	// An F32 weight relabelled I32 (the manifest re-made to match).
	b, _ = os.ReadFile(st)
	i := bytes.Index(b, []byte(`"dtype":"F32"`))
	copy(b[i:], `"dtype":"I32"`)
	os.WriteFile(st, b, 0o644)
	rewriteManifest(t, newest)
	if err := resume(RunOptions{}); err == nil || !strings.Contains(err.Error(), "has dtype I32") && !strings.Contains(err.Error(), "is I32") {
		t.Fatalf("relabelled dtype: %v", err)
	}
	restore()

	// Impossible counters.
	for _, edit := range []struct{ key, val, want string }{
		{"step", "-5", "step -5"},
		{"pass", "1000000000", "pass 1000000000"},
		{"optim_step", "99", "optim_step 99"},
	} {
		mp := filepath.Join(newest, MetaFile)
		var m map[string]any
		b, _ := os.ReadFile(mp)
		json.Unmarshal(b, &m)
		var v any
		json.Unmarshal([]byte(edit.val), &v)
		m[edit.key] = v
		b, _ = json.Marshal(m)
		os.WriteFile(mp, b, 0o644)
		rewriteManifest(t, newest)
		if err := resume(RunOptions{}); err == nil || !strings.Contains(err.Error(), edit.want) || !strings.Contains(err.Error(), MetaFile) {
			t.Errorf("%s=%s: %v", edit.key, edit.val, err)
		}
		restore()
	}

	// A deleted trainer.json is an error, not a silent fall back.
	os.Remove(filepath.Join(newest, MetaFile))
	if err := resume(RunOptions{}); err == nil || !strings.Contains(err.Error(), MetaFile+" is missing") {
		t.Fatalf("missing %s: %v", MetaFile, err)
	}
	restore()
	if err := resume(RunOptions{}); err != nil {
		t.Fatalf("restored checkpoint: %v", err)
	}
}

// TestNonFiniteNeverCheckpointed: weights holding NaN are not written as a
// checkpoint; a run that blows up names a checkpoint whose weights are
// finite as its last good state.
func TestNonFiniteNeverCheckpointed(t *testing.T) {
	cfg := smallRunConfig(t)
	arch, err := ArchForData(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Arch = arch
	p := engine.InitParams(engine.NewLayout(arch), 1)
	p.Trained[3] = float32(math.NaN())
	tr, err := New(cfg, cpu.New(0), p, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := tr.GlobalCarry()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if _, err := writeCheckpoint(root, tr, Meta{Version: 1, Step: 3, Config: cfg}, ch); !errors.Is(err, ErrNonFiniteWeights) {
		t.Fatalf("NaN weights: %v", err)
	}
	if steps, _ := ListCheckpoints(root); len(steps) != 0 {
		t.Fatalf("a checkpoint of NaN weights was written: %v", steps)
	}

	cfg = smallRunConfig(t)
	cfg.LR, cfg.LRWarmupSteps, cfg.MaxNonFinite = 1e30, 0, 2
	_, err = Run(context.Background(), cfg, quiet(RunOptions{}))
	if err == nil || !strings.Contains(err.Error(), "last good state is in ") {
		t.Fatalf("error %v", err)
	}
	dir := strings.TrimSpace(err.Error()[strings.LastIndex(err.Error(), "last good state is in ")+len("last good state is in "):])
	st, err := engine.LoadState(filepath.Join(dir, ModelFile), engine.NewLayout(withBatch(arch, cfg.GlobalBatchSize)))
	if err != nil {
		t.Fatal(err)
	}
	if i := firstNonFinite(st.Trained); i >= 0 {
		t.Fatalf("the last good state %s holds a non-finite weight at %d", dir, i)
	}
}

// TestLogWriteFailureStops: a log on a full device stops the run with an
// error naming the log after a checkpoint; with LogDegrade it warns and
// the run completes.
func TestLogWriteFailureStops(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	cfg := smallRunConfig(t)
	sum, err := Run(context.Background(), cfg, quiet(RunOptions{LogPath: "/dev/full"}))
	if err == nil || !strings.Contains(err.Error(), "log /dev/full") || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("log on /dev/full: %v", err)
	}
	if sum == nil || sum.Steps != 0 {
		t.Fatalf("the run trained without a log: %+v", sum)
	}
	// A log failing mid-run: a checkpoint of the state, then the error.
	cfg2 := smallRunConfig(t)
	fw := &failingWriter{after: 4}
	o := quiet(RunOptions{Hooks: []Hook{NewJSONLWriter(fw, "pipe")}})
	sum, err = Run(context.Background(), cfg2, o)
	if err == nil || !strings.Contains(err.Error(), "log pipe") || sum.Checkpoint == "" {
		t.Fatalf("log failing mid-run: %v, %+v", err, sum)
	}
	if m, err := LoadMeta(sum.Checkpoint); err != nil || m.Step != 4 { // start and 3 steps written, the 4th fails
		t.Fatalf("checkpoint after the log failed: step %d, %v", m.Step, err)
	}
	var warn bytes.Buffer
	cfg3 := smallRunConfig(t)
	o = quiet(RunOptions{LogPath: "/dev/full", LogDegrade: true})
	o.Warn = &warn
	sum, err = Run(context.Background(), cfg3, o)
	if err != nil || sum.Steps != 16 || !strings.Contains(warn.String(), "WARNING: log /dev/full") {
		t.Fatalf("degraded log: %v, %+v, warnings %q", err, sum, warn.String())
	}
}

// failingWriter accepts `after` writes, then fails like a full disk.
type failingWriter struct{ n, after int }

func (w *failingWriter) Write(b []byte) (int, error) {
	w.n++
	if w.n > w.after {
		return 0, syscall.ENOSPC
	}
	return len(b), nil
}

// countingCtx reports cancellation from its n-th Err call on: the loop
// asks once per step and the evaluation once per supervision step, so a
// test can place a "signal" inside an evaluation deterministically.
type countingCtx struct {
	context.Context
	n, at int
}

func (c *countingCtx) Err() error {
	c.n++
	if c.n >= c.at {
		return context.Canceled
	}
	return nil
}

// TestSignalDuringEvaluation: a cancellation during an evaluation ends it
// after the current supervision step and writes one checkpoint recording
// the pass as trained with its evaluation pending; the resumed run
// evaluates it and ends bit-exact with an uninterrupted run.
func TestSignalDuringEvaluation(t *testing.T) {
	cfg := smallRunConfig(t)
	full := &recorder{}
	ref := cfg
	ref.CheckpointDir = filepath.Join(t.TempDir(), "ref")
	if _, err := Run(context.Background(), ref, quiet(RunOptions{Hooks: []Hook{full}})); err != nil {
		t.Fatal(err)
	}
	// 12 steps in the first pass ask 13 times (the 13th meets the end of
	// the pass); the 15th ask is the evaluation's second supervision step.
	first := &recorder{}
	ctx := &countingCtx{Context: context.Background(), at: 15}
	t0 := time.Now()
	sum, err := Run(ctx, cfg, quiet(RunOptions{Hooks: []Hook{first}}))
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.Steps != 12 || len(first.evals) != 0 || len(first.ckpts) != 1 {
		t.Fatalf("interrupted evaluation: %+v, %d evaluations, %d checkpoints", sum, len(first.evals), len(first.ckpts))
	}
	t.Logf("interrupted run took %s", time.Since(t0))
	m, err := LoadMeta(sum.Checkpoint)
	if err != nil || !m.PassDone || m.Pass != 0 {
		t.Fatalf("checkpoint: pass %d pass_done %v (%v)", m.Pass, m.PassDone, err)
	}
	second := &recorder{}
	sum2, err := Run(context.Background(), Config{}, quiet(RunOptions{Resume: cfg.CheckpointDir, Hooks: []Hook{second}}))
	if err != nil {
		t.Fatal(err)
	}
	if len(second.evals) != 2 || sum2.Steps != 16 {
		t.Fatalf("resumed: %d evaluations, %d steps", len(second.evals), sum2.Steps)
	}
	if got := append(first.losses, second.losses...); !slices.Equal(got, full.losses) {
		t.Fatalf("losses differ:\n got  %v\n want %v", got, full.losses)
	}
	if second.evals[0].Flat["all/exact_accuracy"] != full.evals[0].Flat["all/exact_accuracy"] || second.evals[0].Step != 12 {
		t.Fatalf("pending evaluation: %v at %d, uninterrupted %v", second.evals[0].Flat["all/exact_accuracy"], second.evals[0].Step, full.evals[0].Flat["all/exact_accuracy"])
	}
}

// TestSignalWhileOpeningData: a dataset that never finishes opening (a
// hung network mount) does not keep a cancelled run waiting: the run ends
// interrupted before its first step, and a resumed run names its
// checkpoint, still the newest state.
func TestSignalWhileOpeningData(t *testing.T) {
	cfg := smallRunConfig(t)
	interruptedRun(t, cfg, 3, RunOptions{})
	block := make(chan struct{})
	defer close(block)
	saved := openDataset
	openDataset = func(split string, dirs ...string) (*data.Dataset, error) {
		<-block
		return nil, errors.New("unblocked")
	}
	defer func() { openDataset = saved }()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	sum, err := Run(ctx, Config{}, quiet(RunOptions{Resume: cfg.CheckpointDir}))
	if err != nil || !sum.Interrupted || sum.Steps != 3 || filepath.Base(sum.Checkpoint) != StepDirName(3) {
		t.Fatalf("signal while opening the data: %v, %+v", err, sum)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("the run took %s to give up", d)
	}
}

// TestProgressLine: elapsed time and epoch on every line; the ETA only
// once enough of the run is behind it.
func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	p := &ProgressHook{W: &buf, now: func() time.Time { return now }}
	p.OnStart(RunInfo{Config: Config{GlobalBatchSize: 8}, TotalSteps: 100, StepsPerEpoch: 10, Backend: "cpu"})
	step := func(s int, dt time.Duration) string {
		now = now.Add(dt)
		buf.Reset()
		p.OnStep(&StepReport{Step: s, Metrics: engine.Metrics{Count: 8, Loss: 8}})
		return buf.String()
	}
	if l := step(1, time.Second); !strings.Contains(l, "ETA --") || !strings.Contains(l, "elapsed 1s") || !strings.Contains(l, "epoch 0.1") {
		t.Fatalf("first line %q", l)
	}
	if l := step(6, 2*time.Second); !strings.Contains(l, "ETA --") { // 6 steps but only 3 s
		t.Fatalf("early ETA: %q", l)
	}
	if l := step(20, 17*time.Second); !strings.Contains(l, "ETA 1m20s") || !strings.Contains(l, "epoch 2.0") || !strings.Contains(l, "elapsed 20s") {
		t.Fatalf("line after 20 s: %q", l)
	}
}

// TestResumeNewDataAndIntervals: new data of the same shapes and a new
// eval_interval are taken with the data position restarted (logged);
// data the stored model cannot read is refused naming the mismatch.
func TestResumeNewDataAndIntervals(t *testing.T) {
	cfg := smallRunConfig(t)
	interruptedRun(t, cfg, 5, RunOptions{})
	same := t.TempDir()
	if err := BuildDemoSudoku(same, 100, 20, 8, 1, 5, nil); err != nil {
		t.Fatal(err)
	}
	// The same arrays declared with a larger vocabulary: a model with
	// another embedding table.
	wider := filepath.Join(t.TempDir(), "wider")
	copyDir(t, same, wider)
	for _, split := range []string{"train", "test"} {
		p := filepath.Join(wider, split, "dataset.json")
		var m map[string]any
		b, _ := os.ReadFile(p)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["vocab_size"] = m["vocab_size"].(float64) + 1
		b, _ = json.Marshal(m)
		os.WriteFile(p, b, 0o644)
	}
	_, err := Run(context.Background(), Config{}, quiet(RunOptions{Resume: cfg.CheckpointDir, Out: filepath.Join(t.TempDir(), "x"), ResumeOverrides: []string{"data_paths=[" + wider + "]"}}))
	if err == nil || !strings.Contains(err.Error(), "vocab_size 7") || !strings.Contains(err.Error(), "model needs 16, 6") {
		t.Fatalf("data of another model: %v", err)
	}
	var warn bytes.Buffer
	o := quiet(RunOptions{Resume: cfg.CheckpointDir, Out: filepath.Join(t.TempDir(), "y"), ResumeOverrides: []string{"data_paths=[" + same + "]", "eval_interval=1"}})
	o.Warn = &warn
	rec := &recorder{}
	o.Hooks = []Hook{rec}
	sum, err := Run(context.Background(), Config{}, o)
	if err != nil {
		t.Fatal(err)
	}
	if rec.steps[0] != 6 || sum.Steps != 16 || !strings.Contains(warn.String(), "data position restarts at a fresh pass") || !strings.Contains(warn.String(), "eval_interval 2 -> 1") {
		t.Fatalf("resume on new data: first step %d, %+v, notes %q", rec.steps[0], sum, warn.String())
	}
	m, err := LoadMeta(sum.Checkpoint)
	if err != nil || m.Config.DataPaths[0] != same || m.Config.EvalInterval != 1 {
		t.Fatalf("stored config after the resume: %v %v", m.Config.DataPaths, err)
	}
}

// TestJSONLAfterCut: a log whose last record a kill cut off is continued
// on a line of its own; logs to /dev/null (no sync) work.
func TestJSONLAfterCut(t *testing.T) {
	p := filepath.Join(t.TempDir(), "run.jsonl")
	os.WriteFile(p, []byte("{\"type\":\"start\"}\n{\"type\":\"tra"), 0o644)
	h, err := NewJSONLHook(p)
	if err != nil {
		t.Fatal(err)
	}
	h.OnCheckpoint(CheckpointInfo{Step: 3})
	h.OnEnd(nil)
	if h.Err() != nil {
		t.Fatal(h.Err())
	}
	b, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], `"type":"checkpoint"`) {
		t.Fatalf("log after a cut line:\n%s", b)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &m); err != nil {
		t.Fatalf("record after the cut line: %v", err)
	}
	n, err := NewJSONLHook(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	n.OnCheckpoint(CheckpointInfo{Step: 1})
	n.OnEnd(nil)
	if n.Err() != nil {
		t.Fatalf("log to %s: %v", os.DevNull, n.Err())
	}
}
