package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/tinyrecursive/trm/trainer"
)

// TestHelpTexts: help and -h list the commands, help CMD documents each,
// and no help text carries back-quotes (pflag turns `x` in a flag's usage
// into its value placeholder, which printed "-init trm-train import").
func TestHelpTexts(t *testing.T) {
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, out, _ := runCmd(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		for _, c := range root.Commands() {
			if !strings.Contains(out, "  "+c.Name()+" ") {
				t.Errorf("%v does not list %s:\n%s", args, c.Name(), out)
			}
		}
		for _, want := range []string{"Exit status:", "0  success", "1  the command failed", "2  bad arguments", "3  the CUDA build"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: root help lacks %q", args, want)
			}
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, text := range []string{c.Short, c.Long, c.Example, c.Use} {
			if strings.Contains(text, "`") {
				t.Errorf("%s: back-quote in its help: %q", c.CommandPath(), text)
			}
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: back-quote in the usage %q", c.CommandPath(), f.Name, f.Usage)
			}
		})
		if c != root && !c.Hidden {
			args := append(strings.Fields(strings.TrimPrefix(c.CommandPath(), "trm-train ")), "--help")
			code, out, errs := runCmd(args...)
			if code != 0 || !strings.Contains(out, c.CommandPath()) {
				t.Errorf("%v: exit %d, %s%s", args, code, out, errs)
			}
			helpArgs := append([]string{"help"}, args[:len(args)-1]...)
			if code, out2, _ := runCmd(helpArgs...); code != 0 || out2 != out {
				t.Errorf("%v differs from %v (exit %d)", helpArgs, args, code)
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

// TestFlagsAnywhere: flags before, between and after positional arguments
// and overrides, for every kind of command.
func TestFlagsAnywhere(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := trainer.BuildDemoSudoku("data/sudoku4", 32, 8, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"train", "--preset", "sudoku-mlp", "data_paths=[data/sudoku4]", "--out", "runs/a", "--dry-run"},
		{"train", "data_paths=[data/sudoku4]", "--dry-run", "lr=1e-3", "--out=runs/a", "epochs=10", "eval_interval=5", "--device", "cuda:0"},
		{"--preset", "sudoku-att", "data_paths=[data/sudoku4]", "--dry-run"}, // no command: train
		{"params", "sudoku-mlp", "--puzzles", "5"},
		{"params", "--puzzles=5", "sudoku-mlp"},
		{"data", "check", "data/sudoku4"},
		{"import", filepath.Join(repoRoot(t), "testdata", "golden", "torch", "att_rope_small.compiled.pt"), "m.safetensors",
			"--model-config", filepath.Join(repoRoot(t), "testdata", "golden", "att_rope_small", "config.json")},
	} {
		if code, out, errs := runCmd(args...); code != 0 {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	// --arch is --model-config now; the error says so.
	code, _, errs := runCmd("eval", "--arch", "sudoku-mlp")
	if code != 2 || !strings.Contains(errs, "--model-config") {
		t.Errorf("eval --arch: exit %d, %s", code, errs)
	}
}

// TestDryRun: the resolved config follows the documented precedence, the
// plan's step count is the trainer's, and nothing is opened: a CUDA
// device dry-runs on this (CPU) build.
func TestDryRun(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := trainer.BuildDemoSudoku("data/sudoku4", 40, 8, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("cfg.json", []byte(`{"lr": 0.5, "epochs": 20, "eval_interval": 10, "arch": {"hidden_size": 64, "num_heads": 4}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd("train", "--preset", "sudoku-mlp", "--config", "cfg.json", "arch.hidden_size=32", "lr=0.25",
		"data_paths=[data/sudoku4]", "global_batch_size=8", "arch.hidden_size=48", "--device", "cuda:0", "--dry-run", "--out", "runs/x")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	var cfg trainer.Config
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("stdout is not the config: %v\n%s", err, out)
	}
	preset, _ := trainer.FromPreset("sudoku-mlp")
	switch {
	case cfg.LR != 0.25: // override > config file > preset
		t.Errorf("lr %g, want the override's 0.25", cfg.LR)
	case cfg.Epochs != 20 || cfg.EvalInterval != 10: // config file > preset
		t.Errorf("epochs %d, eval_interval %d: want the config file's 20, 10", cfg.Epochs, cfg.EvalInterval)
	case cfg.Arch.HiddenSize != 48 || cfg.Arch.NumHeads != 4: // the last override wins
		t.Errorf("hidden_size %d, num_heads %d: want 48 and 4", cfg.Arch.HiddenSize, cfg.Arch.NumHeads)
	case cfg.WeightDecay != preset.WeightDecay || cfg.EMA != preset.EMA:
		t.Errorf("the preset's weight_decay and ema are lost: %g %v", cfg.WeightDecay, cfg.EMA)
	case cfg.CheckpointDir != "runs/x" || cfg.Arch.SeqLen != 16 || cfg.Arch.VocabSize != 6:
		t.Errorf("checkpoint_dir %q, seq_len %d, vocab %d: want runs/x and the data's 16, 6", cfg.CheckpointDir, cfg.Arch.SeqLen, cfg.Arch.VocabSize)
	}
	// 40 groups x 1 example x 20 epochs / 8 = 100 steps, 2 evaluations.
	if !strings.Contains(errs, "100 total steps over 20 epochs: 2 evaluation intervals of 10 epochs, 2 evaluations, 2 checkpoints") ||
		strings.Contains(errs, "CPU build") != (cudaBackend == nil) {
		t.Errorf("plan:\n%s", errs)
	}
	if _, err := os.Stat("runs/x"); err == nil {
		t.Error("a dry run created the run directory")
	}
	// The same keys as the reference's (trainer.Config's JSON tags).
	var raw map[string]any
	json.Unmarshal([]byte(out), &raw)
	for _, k := range []string{"global_batch_size", "lr_warmup_steps", "puzzle_emb_lr", "data_paths"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("the printed config lacks %q", k)
		}
	}
	// arch=NAME applies before every arch.KEY override, wherever it stands.
	code, out, errs = runCmd("train", "data_paths=[data/sudoku4]", "arch.hidden_size=32", "arch.num_heads=2", "arch=trm", "--dry-run")
	cfg = trainer.Config{}
	if err := json.Unmarshal([]byte(out), &cfg); code != 0 || err != nil || cfg.Arch.HiddenSize != 32 || cfg.Arch.NumHeads != 2 {
		t.Errorf("arch=trm after arch.hidden_size=32: exit %d, hidden %d, heads %d\n%s", code, cfg.Arch.HiddenSize, cfg.Arch.NumHeads, errs)
	}
	// A multi-process environment without its secret fails the dry run as
	// it would fail the job; with it, the plan names the rank.
	t.Setenv("WORLD_SIZE", "4")
	t.Setenv("RANK", "1")
	t.Setenv("MASTER_ADDR", "127.0.0.1")
	t.Setenv("MASTER_PORT", "29500")
	t.Setenv("TRM_RDZV_SECRET", "")
	if code, _, errs := runCmd("train", "data_paths=[data/sudoku4]", "global_batch_size=8", "--device", "cuda", "--dry-run"); code != 1 || !strings.Contains(errs, "TRM_RDZV_SECRET") {
		t.Errorf("no secret: exit %d, %s", code, errs)
	}
	t.Setenv("TRM_RDZV_SECRET", "0123456789abcdef0123")
	if code, _, errs := runCmd("train", "data_paths=[data/sudoku4]", "global_batch_size=8", "--device", "cuda", "--dry-run"); code != 0 || !strings.Contains(errs, "(2 per replica x 4)") {
		t.Errorf("rank 1 of 4: exit %d, %s", code, errs)
	}
	if code, _, errs := runCmd("train", "data_paths=[data/sudoku4]", "global_batch_size=6", "--device", "cuda", "--dry-run"); code != 1 || !strings.Contains(errs, "not a multiple") {
		t.Errorf("batch 6 over 4 ranks: exit %d, %s", code, errs)
	}
}

// TestVersion: version and --version name the build.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := runCmd(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		for _, want := range []string{"trm-train ", "revision: ", "go: go1.", "backends: cpu", "kernels: "} {
			if !strings.Contains(out, want) {
				t.Errorf("%v lacks %q:\n%s", args, want, out)
			}
		}
	}
	old := version
	version = "v9.8.7"
	defer func() { version = old }()
	if !strings.HasPrefix(versionString(), "trm-train v9.8.7\n") {
		t.Errorf("the stamped version is not used: %s", versionString())
	}
}

// fatbinEntry is one entry of a synthesized fatbin: kind 1 PTX, 2 cubin.
func fatbinEntry(kind uint16, arch uint32, payload int) []byte {
	b := make([]byte, 64+payload)
	le := binary.LittleEndian
	le.PutUint16(b[0:], kind)
	le.PutUint32(b[4:], 64)
	le.PutUint64(b[8:], uint64(payload))
	le.PutUint32(b[28:], arch)
	return b
}

// TestFatbinTargets reads the targets of a fatbin laid out as nvcc
// -fatbin writes it (a header, then entries), and refuses broken ones.
func TestFatbinTargets(t *testing.T) {
	var entries []byte
	entries = append(entries, fatbinEntry(2, 80, 100)...)
	entries = append(entries, fatbinEntry(2, 90, 37)...)
	entries = append(entries, fatbinEntry(1, 90, 8)...)
	hdr := make([]byte, 16)
	binary.LittleEndian.PutUint32(hdr, 0xBA55ED50)
	binary.LittleEndian.PutUint16(hdr[4:], 1)
	binary.LittleEndian.PutUint16(hdr[6:], 16)
	binary.LittleEndian.PutUint64(hdr[8:], uint64(len(entries)))
	fb := append(hdr, entries...)
	got, err := fatbinTargets(fb)
	if err != nil || strings.Join(got, ",") != "sm_80,sm_90,compute_90 (PTX)" {
		t.Fatalf("targets %v, %v", got, err)
	}
	if _, err := fatbinTargets(fb[:len(fb)-1]); err == nil {
		t.Error("a truncated fatbin was accepted")
	}
	if _, err := fatbinTargets([]byte("not a fatbin at all")); err == nil {
		t.Error("junk was accepted")
	}
}

// TestEnvDocumented: every TRM_* variable the tree reads is documented in
// the help of a command it affects (test-only hooks excepted).
func TestEnvDocumented(t *testing.T) {
	root := repoRoot(t)
	lit := regexp.MustCompile(`"(TRM_[A-Z0-9_]+)"`)
	used := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			if d != nil && d.IsDir() && p != root {
				return filepath.SkipDir
			}
			return err
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = p
		}
		return nil
	})
	help := ""
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		help += c.Long
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRoot(&bytes.Buffer{}, &bytes.Buffer{}))
	if len(used) < 10 {
		t.Fatalf("found only %d TRM_ variables: %v", len(used), used)
	}
	for v, file := range used {
		if strings.HasPrefix(v, "TRM_TEST_") || v == "TRM_GOLDEN_DIRS" {
			continue // test hooks, not settings
		}
		if _, ok := envDocs[v]; !ok {
			t.Errorf("%s (read in %s) is not in envDocs", v, file)
		} else if !strings.Contains(help, "  "+v+" ") {
			t.Errorf("%s is in no command's help", v)
		}
	}
}

// TestDeployFiles: the scripts parse (bash -n), every YAML file under
// deploy/ parses, .dockerignore keeps build outputs and data out of the
// image, and promtool accepts the Prometheus config when installed.
func TestDeployFiles(t *testing.T) {
	root := repoRoot(t)
	scripts := []string{"deploy/multinode/trm-launch", "deploy/slurm/trm-train.sbatch", "deploy/docker/install-go",
		"deploy/docker/build-binaries", "deploy/docker/trm-entrypoint", "deploy/docker/trm-healthcheck"}
	if _, err := exec.LookPath("bash"); err == nil {
		for _, s := range scripts {
			if out, err := exec.Command("bash", "-n", filepath.Join(root, s)).CombinedOutput(); err != nil {
				t.Errorf("bash -n %s: %v\n%s", s, err, out)
			}
		}
	}
	n := 0
	filepath.WalkDir(filepath.Join(root, "deploy"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var v any
			if err := dec.Decode(&v); err != nil {
				if err.Error() != "EOF" {
					t.Errorf("%s: %v", p, err)
				}
				break
			}
		}
		n++
		return nil
	})
	if n < 2 {
		t.Errorf("only %d YAML files under deploy/", n)
	}
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		lines[strings.TrimSuffix(strings.TrimSpace(l), "/")] = true
	}
	for _, p := range []string{".git", "bin", "dist", "runs", "data", "kernels/trm.fatbin"} {
		if !lines[p] {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not installed: deploy/prometheus/prometheus.yml not checked (apt-get install prometheus)")
		return
	}
	if out, err := exec.Command(promtool, "check", "config", filepath.Join(root, "deploy", "prometheus", "prometheus.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}

// TestResumeAutoDryRun: --resume auto dry-runs as the run resolves it: a
// fresh start in an empty run directory, the checkpoint's config when the
// same command line is relaunched, and the same refusal as the run for a
// change a resume cannot make.
func TestResumeAutoDryRun(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := trainer.BuildDemoSudoku("data/sudoku4", 32, 8, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	base := []string{"train", "--quiet", "--resume", "auto", "--out", "runs/r", "data_paths=[data/sudoku4]", "global_batch_size=8",
		"epochs=2", "eval_interval=1", "max_steps=2", "arch.hidden_size=16", "arch.num_heads=2", "arch.puzzle_emb_ndim=16",
		"arch.expansion=2", "arch.H_cycles=1", "arch.L_cycles=1", "arch.L_layers=1", "arch.halt_max_steps=2"}
	dry := func(extra ...string) (int, string, string) {
		return runCmd(append(append(append([]string(nil), base...), extra...), "--dry-run")...)
	}
	if code, _, errs := dry(); code != 0 || !strings.Contains(errs, "no checkpoint in runs/r, a fresh run starts there") {
		t.Fatalf("empty run directory: exit %d, %s", code, errs)
	}
	if code, out, errs := runCmd(base...); code != 0 {
		t.Fatalf("first run: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := dry("max_steps=4")
	if code != 0 || !strings.Contains(errs, "resumes from ") || !strings.Contains(errs, "at step 2") || !strings.Contains(errs, "max_steps changed on resume: 2 -> 4") {
		t.Fatalf("relaunch: exit %d, %s", code, errs)
	}
	var cfg trainer.Config
	if err := json.Unmarshal([]byte(out), &cfg); err != nil || cfg.TotalStepsLimit != 4 || cfg.Arch.HiddenSize != 16 {
		t.Fatalf("relaunch config: %v %+v", err, cfg)
	}
	// The run agrees: the same change resumes, a model change is refused
	// by both with the same words.
	if code, out, errs := runCmd(append(append([]string(nil), base...), "max_steps=4")...); code != 0 || !strings.Contains(out, "done: 4 steps") {
		t.Fatalf("resumed run: exit %d\n%s%s", code, out, errs)
	}
	code, _, dryErr := dry("arch.hidden_size=32")
	runCode, _, runErr := runCmd(append(append([]string(nil), base...), "arch.hidden_size=32")...)
	if code != 1 || runCode != 1 || !strings.Contains(dryErr, "arch.hidden_size cannot change on resume") || !strings.Contains(runErr, "arch.hidden_size cannot change on resume") {
		t.Fatalf("a model change: dry run exit %d (%s), run exit %d (%s)", code, dryErr, runCode, runErr)
	}
}

// TestFatbinTargetsBuilt reads the kernels make kernels built, when they
// are here (CI's CUDA build step makes them; the file is not committed).
func TestFatbinTargetsBuilt(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "kernels", "trm.fatbin"))
	if err != nil {
		t.Skip("kernels/trm.fatbin is not built (make kernels)")
	}
	got, err := fatbinTargets(b)
	if err != nil {
		t.Fatal(err)
	}
	target := regexp.MustCompile(`^(sm_\d+|compute_\d+ \(PTX\))$`)
	for _, g := range got {
		if !target.MatchString(g) {
			t.Errorf("target %q in %v", g, got)
		}
	}
	t.Logf("kernels/trm.fatbin: %v", got)
}
