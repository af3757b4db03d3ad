package trainer

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestResumeAutoKey: resume_auto in the config does what Resume "auto"
// does: the same config starts a fresh run, then, relaunched after an
// interruption, resumes it bit-exact; as a launch key it is stored but
// never a refused difference, and it reads from a config file.
func TestResumeAutoKey(t *testing.T) {
	cfg := smallRunConfig(t)
	full := &recorder{}
	ref := cfg
	ref.CheckpointDir = filepath.Join(t.TempDir(), "ref")
	if _, err := Run(context.Background(), ref, quiet(RunOptions{Hooks: []Hook{full}})); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Set("resume_auto=true"); err != nil || !cfg.ResumeAuto {
		t.Fatalf("resume_auto=true: %v", err)
	}
	_, first := interruptedRun(t, cfg, 7, RunOptions{})
	if dir, err := RunDirFor(cfg, RunOptions{}); err != nil || dir != cfg.CheckpointDir {
		t.Fatalf("run directory %q, %v", dir, err)
	}
	plan, err := PlanRun(cfg, RunOptions{})
	if err != nil || plan.Step != 7 {
		t.Fatalf("plan: %+v, %v", plan, err)
	}
	// A stored resume_auto=false relaunched with true is no change.
	stored := cfg
	stored.ResumeAuto = false
	if _, _, err := ResumeConfig(stored, []string{"resume_auto=true"}, ""); err != nil {
		t.Fatalf("resume_auto as an override on resume: %v", err)
	}
	second := &recorder{}
	sum, err := Run(context.Background(), cfg, quiet(RunOptions{Hooks: []Hook{second}}))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resumed == "" || second.steps[0] != 8 {
		t.Fatalf("resume_auto did not resume: %+v, first step %d", sum, second.steps[0])
	}
	if got := append(slices.Clone(first.losses), second.losses...); !slices.Equal(got, full.losses) {
		t.Fatalf("losses after the resume differ:\n got  %v\n want %v", got, full.losses)
	}
	var fromFile Config
	if err := ParseConfigJSON(&fromFile, []byte(`{"resume_auto": true}`), "c.json"); err != nil || !fromFile.ResumeAuto {
		t.Fatalf("config file: %v", err)
	}
	b, _ := json.Marshal(cfg)
	if !strings.Contains(string(b), `"resume_auto":true`) {
		t.Fatalf("stored config lacks resume_auto: %s", b)
	}
}
