package trainer

// The fault-injection suite: real processes (this test binary re-executed
// as a trainer, see TestMain) killed with SIGKILL at seeded random moments
// and inside checkpoint writes, stopped with SIGTERM and resumed, a full
// disk during a checkpoint, and two runs on one directory. The seed is
// logged; TRM_FAULT_SEED=N replays a run's kill times.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
)

// faultSpec is what a child trainer process runs.
type faultSpec struct {
	Config Config `json:"config"`
	Resume string `json:"resume"`
	// StopAtStart stops the run before its first step, as a signal
	// arriving during start-up would: a resumed run then writes the
	// checkpoint of the step it resumed, replacing it.
	StopAtStart bool `json:"stop_at_start"`
}

// TestMain runs the child trainer when TRM_FAULT_CHILD holds a faultSpec.
func TestMain(m *testing.M) {
	if s := os.Getenv("TRM_FAULT_CHILD"); s != "" {
		os.Exit(faultChild(s))
	}
	os.Exit(m.Run())
}

// faultChild trains as `trm-train train` does: SIGTERM cancels the
// context, the JSONL log goes to the run directory. Exit status 0 on
// success (interrupted included), 3 on an error.
func faultChild(specJSON string) int {
	var s faultSpec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		fmt.Fprintln(os.Stderr, "fault child:", err)
		return 2
	}
	sig, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var ctx context.Context = sig
	if s.StopAtStart {
		ctx = &countingCtx{Context: sig, at: 1}
	}
	sum, err := Run(ctx, s.Config, RunOptions{Backend: cpu.New(1), Resume: s.Resume, DefaultLog: true, Warn: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 3
	}
	json.NewEncoder(os.Stdout).Encode(sum)
	return 0
}

// child is a started child trainer.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func startChild(t *testing.T, s faultSpec, env ...string) *child {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^$")}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TRM_TEST_") && !strings.HasPrefix(e, "TRM_FAULT_") {
			c.cmd.Env = append(c.cmd.Env, e)
		}
	}
	c.cmd.Env = append(c.cmd.Env, append(env, "TRM_FAULT_CHILD="+string(b))...)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// wait returns the exit status (-1 when killed by a signal).
func (c *child) wait() int {
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -2
	}
	return 0
}

// faultConfig trains 8 passes of 6 steps (48 steps), a checkpoint and a
// one-batch evaluation after each pass.
func faultConfig(t *testing.T, data, dir string) Config {
	cfg := DemoConfig()
	cfg.DataPaths = []string{data}
	cfg.GlobalBatchSize = 16
	cfg.Epochs, cfg.EvalInterval = 8, 1
	cfg.EvalBatches = 1
	cfg.Arch.HaltExplorationProb = 0.5
	cfg.CheckpointDir = dir
	cfg.KeepCheckpoints = 3
	cfg.BestMetric = "all/exact_accuracy"
	return cfg
}

const faultStepsPerPass, faultSteps = 6, 48

// logSteps returns the losses of the train records of a run's log by
// step (every record of a step: a resumed run logs a step again), and the
// highest step logged. An unfinished line (a killed writer) is skipped.
func logSteps(t *testing.T, dir string) (map[int][]float64, int) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "run.jsonl"))
	if os.IsNotExist(err) {
		return nil, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, top := map[int][]float64{}, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r struct {
			Type string  `json:"type"`
			Step int     `json:"step"`
			Loss float64 `json:"train/loss"`
		}
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Type != "train" {
			continue
		}
		out[r.Step] = append(out[r.Step], r.Loss)
		top = max(top, r.Step)
	}
	return out, top
}

// checkAllLoad verifies every checkpoint of dir (best included) and
// restores each step checkpoint into a trainer; it returns the newest step (0 without a checkpoint: a restart
// begins at step 0).
func checkAllLoad(t *testing.T, dir string) int {
	t.Helper()
	steps, err := ListCheckpoints(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	newest := 0
	for _, d := range steps {
		m, err := loadVerified(d)
		if err != nil {
			t.Fatalf("checkpoint does not load: %v", err)
		}
		layout := engine.NewLayout(withBatch(m.Config.Arch, m.Config.GlobalBatchSize))
		tr, err := New(m.Config, cpu.New(1), engine.InitParams(layout, 0), m.TotalSteps, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := restoreState(d, tr, m, 0, 1); err != nil {
			t.Fatalf("checkpoint %s does not restore: %v", d, err)
		}
		newest = max(newest, m.Step)
	}
	if _, err := os.Stat(filepath.Join(dir, "best")); err == nil {
		if _, err := loadVerified(filepath.Join(dir, "best")); err != nil {
			t.Fatalf("the best checkpoint does not load: %v", err)
		}
	}
	return newest
}

// finalState returns the manifest hashes of the state and model of a run's
// step-`step` checkpoint: equal hashes are bit-equal weights, optimizer
// state and carry.
func finalState(t *testing.T, dir string, step int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, StepDirName(step), ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.Files[StateFile].SHA256 + " " + m.Files[ModelFile].SHA256
}

// checkLosses compares every logged loss with the uninterrupted run's
// (want: the sums a recorder keeps).
func checkLosses(t *testing.T, what string, got map[int][]float64, want []float64) {
	t.Helper()
	for s := 1; s <= len(want); s++ {
		if len(got[s]) == 0 {
			t.Fatalf("%s: step %d never logged", what, s)
		}
		for _, l := range got[s] {
			if l != want[s-1]/16 { // the log's train/loss is the sum over the global batch of 16, divided
				t.Fatalf("%s: step %d loss %v, the uninterrupted run's %v", what, s, l, want[s-1]/16)
			}
		}
	}
}

func TestFaultInjection(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault-injection suite runs trainer processes for about 30 s")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TRM_FAULT_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("fault-injection seed %d (replay with TRM_FAULT_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x6661756c74))
	data := t.TempDir()
	if err := BuildDemoSudoku(data, 100, 20, 8, 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()

	// The uninterrupted run every other is compared with.
	ref := filepath.Join(root, "ref")
	rec := &recorder{}
	refSum, err := Run(context.Background(), faultConfig(t, data, ref), RunOptions{Backend: cpu.New(1), Hooks: []Hook{rec}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.losses) != faultSteps {
		t.Fatalf("reference run: %d steps", len(rec.losses))
	}
	want := finalState(t, ref, faultSteps)
	var kills, stale int

	t.Run("kill9", func(t *testing.T) {
		dir := filepath.Join(root, "kill9")
		cfg := faultConfig(t, data, dir)
		spec := faultSpec{Config: cfg, Resume: ResumeAuto}
		newest := 0
		for round, kind := range []string{"time", "checkpoint-write", "time", "checkpoint-aside", "time", "checkpoint-before-rename", "time", "time"} {
			var c *child
			switch kind {
			case "time":
				c = startChild(t, spec)
				// A random moment of what is left of the run (as long
				// as the uninterrupted run took for it), after start-up.
				left := float64(refSum.Wall) * float64(faultSteps-newest) / faultSteps
				d := 80*time.Millisecond + time.Duration((0.05+0.8*rng.Float64())*left)
				time.Sleep(d)
				c.cmd.Process.Kill()
				t.Logf("round %d: SIGKILL after %s", round, d.Round(time.Millisecond))
			case "checkpoint-aside":
				if steps, _ := ListCheckpoints(dir); len(steps) == 0 {
					// Replacing needs a checkpoint: a run stopped at once
					// writes one of step 0.
					s := spec
					s.StopAtStart = true
					if st := startChild(t, s); st.wait() != 0 {
						t.Fatalf("stop at start: %s", st.stderr.String())
					}
				}
				s := spec
				s.StopAtStart = true
				c = startChild(t, s, "TRM_TEST_CRASH_AT="+kind)
				t.Logf("round %d: SIGKILL with the replaced checkpoint aside", round)
			default:
				c = startChild(t, spec, "TRM_TEST_CRASH_AT="+kind)
				t.Logf("round %d: SIGKILL at %s", round, kind)
			}
			code := c.wait()
			if code == 0 && kind != "time" {
				t.Fatalf("round %d: the run did not reach %s: %s", round, kind, c.stderr.String())
			}
			if code == 0 {
				t.Logf("round %d: the run finished before the kill", round)
			} else if code != -1 {
				t.Fatalf("round %d (%s): exit status %d: %s", round, kind, code, c.stderr.String())
			} else {
				kills++
			}
			newest = checkAllLoad(t, dir)
			_, top := logSteps(t, dir)
			if top-newest > faultStepsPerPass {
				t.Fatalf("round %d (%s): logged step %d, newest checkpoint step %d: more than one interval (%d steps) lost", round, kind, top, newest, faultStepsPerPass)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), tmpPrefix) || strings.HasPrefix(e.Name(), asidePrefix) {
					stale++
				}
			}
			if newest == faultSteps {
				// Finished: the next rounds need a run to kill, so the
				// same run starts again from scratch in an empty
				// directory.
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				newest = 0
				t.Logf("round %d: the run is complete; starting it again", round)
			}
		}
		c := startChild(t, spec)
		if code := c.wait(); code != 0 {
			t.Fatalf("final resume: exit status %d: %s", code, c.stderr.String())
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), tmpPrefix) || strings.HasPrefix(e.Name(), asidePrefix) {
				t.Errorf("left in the run directory after a clean run: %s", e.Name())
			}
		}
		got, _ := logSteps(t, dir)
		checkLosses(t, "after SIGKILLs", got, rec.losses)
		if s := finalState(t, dir, faultSteps); s != want {
			t.Fatalf("final state after SIGKILLs and resumes differs from the uninterrupted run's")
		}
	})

	t.Run("sigterm", func(t *testing.T) {
		dir := filepath.Join(root, "sigterm")
		spec := faultSpec{Config: faultConfig(t, data, dir), Resume: ResumeAuto}
		c := startChild(t, spec)
		n := 3 + rng.IntN(35)
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, top := logSteps(t, dir); top >= n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the child logged no step %d in 60 s: %s", n, c.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		t0 := time.Now()
		c.cmd.Process.Signal(syscall.SIGTERM)
		if code := c.wait(); code != 0 {
			t.Fatalf("SIGTERM: exit status %d: %s", code, c.stderr.String())
		}
		var sum Summary
		if err := json.Unmarshal(c.stdout.Bytes(), &sum); err != nil || !sum.Interrupted {
			t.Fatalf("SIGTERM after step %d: summary %q (%v)", n, c.stdout.String(), err)
		}
		t.Logf("SIGTERM after step >= %d: stopped at step %d with a checkpoint in %s", n, sum.Steps, time.Since(t0).Round(time.Millisecond))

		// A full disk during the next checkpoint (in this process, on a
		// copy): the write fails, the previous checkpoints stay intact.
		full := filepath.Join(root, "full")
		copyDir(t, dir, full)
		before := map[string]string{}
		steps, _ := ListCheckpoints(full)
		for _, s := range steps {
			before[s] = finalState(t, full, mustStep(t, s))
		}
		t.Setenv("TRM_TEST_FAIL_AT", "checkpoint-write")
		_, err := Run(context.Background(), Config{}, RunOptions{Backend: cpu.New(1), Resume: full, Warn: &bytes.Buffer{}})
		os.Unsetenv("TRM_TEST_FAIL_AT")
		if err == nil || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("full disk during a checkpoint: %v", err)
		}
		if newest := checkAllLoad(t, full); newest != sum.Steps {
			t.Fatalf("after the failed checkpoint the newest is step %d, want %d", newest, sum.Steps)
		}
		for s, h := range before {
			if finalState(t, full, mustStep(t, s)) != h {
				t.Fatalf("%s changed by the failed checkpoint", s)
			}
		}
		ents, _ := os.ReadDir(full)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				t.Fatalf("the failed checkpoint left %s", e.Name())
			}
		}

		c = startChild(t, spec)
		if code := c.wait(); code != 0 {
			t.Fatalf("resume: exit status %d: %s", code, c.stderr.String())
		}
		got, _ := logSteps(t, dir)
		checkLosses(t, "after SIGTERM", got, rec.losses)
		if s := finalState(t, dir, faultSteps); s != want {
			t.Fatalf("final state after SIGTERM and resume differs from the uninterrupted run's")
		}
	})

	t.Run("two-runs", func(t *testing.T) {
		dir := filepath.Join(root, "two")
		spec := faultSpec{Config: faultConfig(t, data, dir)}
		first := startChild(t, spec)
		deadline := time.Now().Add(60 * time.Second)
		for readLockInfo(filepath.Join(dir, LockFile)).PID != first.cmd.Process.Pid {
			if time.Now().After(deadline) {
				t.Fatalf("the first run took no lock: %s", first.stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		t0 := time.Now()
		second := startChild(t, spec)
		code := second.wait()
		took := time.Since(t0)
		first.cmd.Process.Signal(syscall.SIGTERM)
		if c := first.wait(); c != 0 {
			t.Fatalf("first run: exit status %d: %s", c, first.stderr.String())
		}
		if code != 3 || !strings.Contains(second.stderr.String(), fmt.Sprintf("PID %d on host", first.cmd.Process.Pid)) {
			t.Fatalf("second run on the same directory: exit status %d: %s", code, second.stderr.String())
		}
		t.Logf("the second run was refused in %s: %s", took.Round(time.Millisecond), strings.TrimSpace(second.stderr.String()))
	})
	t.Logf("%d trainer processes killed with SIGKILL, every checkpoint they left loaded; %d leftovers of interrupted writes found and cleaned by the next start", kills, stale)
}

func mustStep(t *testing.T, dir string) int {
	s, ok := parseStepDir(filepath.Base(dir))
	if !ok {
		t.Fatalf("not a step directory: %s", dir)
	}
	return s
}
