package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/trainer/data"
)

// Checkpoint files inside a checkpoint directory.
const (
	// StateFile holds the full training state: the model under the
	// reference keys, the optimizer moments and EMA shadow (optim.*), and
	// the ACT carry of every slot (carry.*).
	StateFile = "state.safetensors"
	// ModelFile holds the evaluation weights (the EMA when on) under the
	// reference keys only: what `trm-train eval` and other tools load.
	ModelFile = "model.safetensors"
	// MetaFile holds the config, counters and data/RNG positions.
	MetaFile = "trainer.json"
)

// MetaVersion is the format of the trainer.json a checkpoint is written
// with. Version 1 recorded a pass the step limit cut short before its data
// ended as completed (Pass one too high), so a resume with a larger budget
// skipped the rest of that pass; LoadMeta reads version 1 with that
// corrected.
const MetaVersion = 2

// Meta is the JSON part of a checkpoint.
type Meta struct {
	Version      int             `json:"version"`
	Step         int             `json:"step"`
	OptimStep    int             `json:"optim_step"`
	TotalSteps   int             `json:"total_steps"`
	Pass         int             `json:"pass"`          // evaluation intervals completed (a pass the step limit cut before its data ended is not)
	PassDone     bool            `json:"pass_done"`     // the training of pass Pass is over, its evaluation pending: its data exhausted, or (Data.PassBatches > 0) cut by the step limit
	Data         data.TrainState `json:"data"`          // training iterator position
	Exploration  []byte          `json:"exploration"`   // halting-exploration RNG state
	NonFinite    int             `json:"non_finite"`    // skipped updates in a row
	SkippedTotal int             `json:"skipped_total"` // skipped updates in the run
	Best         *BestInfo       `json:"best,omitempty"`
	Config       Config          `json:"config"`
}

// BestInfo records the best evaluation so far by Config.BestMetric.
type BestInfo struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Step   int     `json:"step"`
}

// StepDirName is the directory name of the checkpoint at step s.
func StepDirName(s int) string { return fmt.Sprintf("step_%09d", s) }

// asidePrefix names a checkpoint moved aside while a checkpoint of the
// same step replaces it (a resumed run writing that step again): the old
// one stays complete under this name until the new one is in place, and
// ListCheckpoints and recoverRunDir take it back if a crash came between
// the two renames.
const asidePrefix = ".replaced-"

// tmpPrefix starts the name of a checkpoint being written.
const tmpPrefix = ".tmp-"

// ErrNonFiniteWeights is returned instead of writing a checkpoint of
// weights or optimizer state holding NaN or Inf: such a checkpoint could
// only be resumed into more non-finite steps.
var ErrNonFiniteWeights = errors.New("the weights or optimizer state are not finite")

// writeCheckpoint writes a complete checkpoint directory atomically: every
// file goes into a temporary sibling directory, is fsynced, then hashed
// into the manifest, and the directory is renamed into place, so a crash
// leaves either the old set of checkpoints or the new one, never a
// half-written one. A checkpoint of the same step is moved aside before
// the new one is renamed in and removed after, so at every moment one
// complete checkpoint of that step exists under one of the two names.
func writeCheckpoint(root string, t *Trainer, meta Meta, ch *engine.CarryHost) (string, error) {
	params, err := t.Model.Params()
	if err != nil {
		return "", err
	}
	os_, err := t.Optim.Save()
	if err != nil {
		return "", err
	}
	for _, part := range []struct {
		name string
		v    []float32
	}{{"weights", params.Trained}, {"puzzle embeddings", params.Puzzle}, {"buffers", params.Buffers},
		{"optimizer first moments", os_.M}, {"optimizer second moments", os_.V}, {"EMA weights", os_.Shadow}} {
		if i := firstNonFinite(part.v); i >= 0 {
			return "", fmt.Errorf("%w: %s element %d is %g; no checkpoint written for step %d", ErrNonFiniteWeights, part.name, i, part.v[i], meta.Step)
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(root, StepDirName(meta.Step))
	tmp, err := os.MkdirTemp(root, tmpPrefix+StepDirName(meta.Step)+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ts := params.Tensors()
	n := []int{len(os_.M)}
	ts["optim.m"] = safetensors.FromFloat32(n, os_.M)
	ts["optim.v"] = safetensors.FromFloat32(n, os_.V)
	if os_.Shadow != nil {
		ts["optim.ema"] = safetensors.FromFloat32(n, os_.Shadow)
	}
	// The carry of the whole global batch (every replica's slots).
	m := t.Model.Shape()
	B := len(ch.Steps)
	// One tensor per carried state, under the reference's field names
	// (carry.z_H, carry.z_L; carry.z_L1..z_L6 for trm_hier6).
	for i, name := range t.Model.CarryFields() {
		ts["carry."+name] = safetensors.FromFloat32([]int{B, m.S, m.H}, ch.Z[i])
	}
	ts["carry.steps"] = safetensors.FromInt32([]int{B}, ch.Steps)
	ts["carry.halted"] = safetensors.FromInt32([]int{B}, ch.Halted)
	ts["carry.inputs"] = safetensors.FromInt32([]int{B, m.L}, ch.Inputs)
	ts["carry.labels"] = safetensors.FromInt32([]int{B, m.L}, ch.Labels)
	ts["carry.puzzle_identifiers"] = safetensors.FromInt32([]int{B}, ch.PIDs)
	if err := safetensors.WriteFile(filepath.Join(tmp, StateFile), ts, map[string]string{"format": "trm-train-state"}); err != nil {
		return "", err
	}
	if err := testHook("checkpoint-write"); err != nil {
		return "", err
	}
	eval, err := t.Optim.EMAParams()
	if err != nil {
		return "", err
	}
	if err := engine.SaveState(filepath.Join(tmp, ModelFile), eval, map[string]string{"format": "pt", "step": fmt.Sprint(meta.Step)}); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeSynced(filepath.Join(tmp, MetaFile), b); err != nil {
		return "", err
	}
	if err := writeSynced(filepath.Join(tmp, "arch.json"), modelConfigJSON(meta.Config)); err != nil {
		return "", err
	}
	if err := writeManifest(tmp, []string{StateFile, ModelFile, MetaFile, "arch.json"}); err != nil {
		return "", err
	}
	if err := syncDir(tmp); err != nil {
		return "", err
	}
	if err := testHook("checkpoint-before-rename"); err != nil {
		return "", err
	}
	if _, err := os.Stat(final); err == nil {
		aside := filepath.Join(root, asidePrefix+StepDirName(meta.Step))
		if err := os.RemoveAll(aside); err != nil {
			return "", err
		}
		if err := os.Rename(final, aside); err != nil {
			return "", err
		}
		if err := testHook("checkpoint-aside"); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, final); err != nil {
			return "", err
		}
		if err := syncDir(root); err != nil {
			return "", err
		}
		return final, os.RemoveAll(aside)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, syncDir(root)
}

// modelConfigJSON is a checkpoint's arch.json: the model keys as
// engine.LoadConfig reads them for the TRM, with the architecture's keys
// (name, act_enabled, act_inference) beside them for the other
// architectures, as engine.LoadArchConfig reads them.
func modelConfigJSON(c Config) []byte {
	if c.Group() == "trm" {
		return mustJSON(c.Arch)
	}
	var m map[string]any
	if err := json.Unmarshal(mustJSON(c.Arch), &m); err != nil {
		panic(err) // a marshalled struct always reads back
	}
	for k, v := range c.archKeys() {
		m[k] = v
	}
	return mustJSON(m)
}

// testHook lets the fault-injection tests (trainer/faults_test.go) stop a
// process at a named point of a checkpoint write: "checkpoint-write" (the
// state file written, the rest not), "checkpoint-before-rename" (complete
// in its temporary directory) and "checkpoint-aside" (a replaced
// checkpoint moved aside, the new one not yet in place).
// TRM_TEST_CRASH_AT=name kills the process there with SIGKILL;
// TRM_TEST_FAIL_AT=name makes the write fail there as a full disk would.
// Unset, it does nothing.
func testHook(point string) error {
	if os.Getenv("TRM_TEST_CRASH_AT") == point {
		p, _ := os.FindProcess(os.Getpid())
		p.Kill()
		select {} // the kill is asynchronous: never continue past it
	}
	if os.Getenv("TRM_TEST_FAIL_AT") == point {
		return fmt.Errorf("write %s: %w", point, syscall.ENOSPC)
	}
	return nil
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
			return i
		}
	}
	return -1
}

func mustJSON(v any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ")
	return b
}

func writeSynced(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// pruneCheckpoints keeps the newest `keep` step directories.
func pruneCheckpoints(root string, keep int) error {
	steps, err := ListCheckpoints(root)
	if err != nil {
		return err
	}
	for i := 0; i < len(steps)-keep; i++ {
		if err := removeCheckpoint(steps[i]); err != nil {
			return err
		}
	}
	return nil
}

// removeCheckpoint deletes a checkpoint directory without ever leaving a
// partly deleted one under a checkpoint's name: it is renamed to a
// temporary name first (which the next start removes if a kill comes
// before the deletion ends).
func removeCheckpoint(dir string) error {
	trash, err := os.MkdirTemp(filepath.Dir(dir), tmpPrefix+"removed-")
	if err != nil {
		return err
	}
	gone := filepath.Join(trash, filepath.Base(dir))
	if err := os.Rename(dir, gone); err != nil {
		os.Remove(trash)
		return err
	}
	return os.RemoveAll(trash)
}

// parseStepDir returns the step of a checkpoint directory name (step_N, or
// the aside name of one being replaced).
func parseStepDir(name string) (int, bool) {
	n, ok := strings.CutPrefix(strings.TrimPrefix(name, asidePrefix), "step_")
	if !ok || n == "" {
		return 0, false
	}
	s, err := strconv.Atoi(n)
	if err != nil || s < 0 {
		return 0, false
	}
	return s, true
}

// ListCheckpoints returns the step checkpoint directories under root,
// oldest first. A step directory is listed whether or not its files are
// intact (it was renamed into place complete, so a damaged one is an error
// for the loader to report, not a reason to fall back silently to an older
// one); a checkpoint moved aside by a replacement that a crash interrupted
// is listed under its aside name when its step has no other directory.
func ListCheckpoints(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	type ck struct {
		step int
		path string
	}
	byStep := map[int]string{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		s, ok := parseStepDir(e.Name())
		if !ok {
			continue
		}
		if _, have := byStep[s]; have && strings.HasPrefix(e.Name(), asidePrefix) {
			continue
		}
		byStep[s] = filepath.Join(root, e.Name())
	}
	var cks []ck
	for s, p := range byStep {
		cks = append(cks, ck{s, p})
	}
	sort.Slice(cks, func(i, j int) bool { return cks[i].step < cks[j].step })
	out := make([]string, len(cks))
	for i, c := range cks {
		out[i] = c.path
	}
	return out, nil
}

// LatestCheckpoint resolves a --resume argument: a checkpoint directory
// itself, or a root holding step_* directories (the newest is taken).
func LatestCheckpoint(path string) (string, error) {
	for _, f := range []string{MetaFile, ManifestFile, StateFile} {
		if _, err := os.Stat(filepath.Join(path, f)); err == nil {
			return path, nil
		}
	}
	steps, err := ListCheckpoints(path)
	if err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if len(steps) == 0 {
		return "", fmt.Errorf("checkpoint %s: not a checkpoint (no %s, no step_* directory)", path, MetaFile)
	}
	return steps[len(steps)-1], nil
}

// recoverRunDir tidies a run directory left by a process that died, before
// a new one writes there (the caller holds the directory's lock): a
// checkpoint moved aside by an interrupted replacement is renamed back when
// its step has no other directory (else removed), and half-written
// temporary checkpoints are removed. It returns what it did, for the log.
func recoverRunDir(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var notes []string
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(root, name)
		switch {
		case strings.HasPrefix(name, asidePrefix):
			final := filepath.Join(root, strings.TrimPrefix(name, asidePrefix))
			if _, err := os.Stat(final); err == nil {
				if err := os.RemoveAll(p); err != nil {
					return notes, err
				}
				notes = append(notes, "removed "+name+" (a replaced checkpoint)")
			} else {
				if err := os.Rename(p, final); err != nil {
					return notes, err
				}
				notes = append(notes, "restored "+filepath.Base(final)+" from "+name+" (its replacement was interrupted)")
			}
		case strings.HasPrefix(name, tmpPrefix):
			if err := os.RemoveAll(p); err != nil {
				return notes, err
			}
			notes = append(notes, "removed "+name+" (a checkpoint a stopped process left half-written)")
		case name == "best.old":
			if _, err := os.Stat(filepath.Join(root, "best")); err == nil {
				err = os.RemoveAll(p)
				if err != nil {
					return notes, err
				}
			} else if err := os.Rename(p, filepath.Join(root, "best")); err != nil {
				return notes, err
			}
		}
	}
	if len(notes) > 0 {
		return notes, syncDir(root)
	}
	return nil, nil
}

// markBest points root/best at the checkpoint dir: a fresh copy made by
// hard links, swapped in by rename.
func markBest(root, dir string, info BestInfo) error {
	tmp, err := os.MkdirTemp(root, tmpPrefix+"best-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Link(filepath.Join(dir, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
	}
	if err := writeSynced(filepath.Join(tmp, "best.json"), mustJSON(info)); err != nil {
		return err
	}
	best := filepath.Join(root, "best")
	old := best + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(best); err == nil {
		if err := os.Rename(best, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, best); err != nil {
		return err
	}
	os.RemoveAll(old)
	return syncDir(root)
}

// LoadMeta reads a checkpoint's trainer.json and checks its counters
// against each other and its config (a step count below zero, more
// evaluation passes than the config's epochs allow, ... are refused: the
// run would otherwise resume into nonsense or end "done" untrained).
func LoadMeta(dir string) (Meta, error) {
	var m Meta
	path := filepath.Join(dir, MetaFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return m, fmt.Errorf("checkpoint %s: %s is missing", dir, MetaFile)
		}
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	if m.Version != 1 && m.Version != MetaVersion {
		return m, fmt.Errorf("%s: unsupported checkpoint version %d", path, m.Version)
	}
	if err := m.validate(); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	if m.Version == 1 && !m.PassDone && m.Data.PassBatches > 0 && m.Step >= m.TotalSteps && m.Pass > 0 {
		// Written when the step limit ended a pass whose data had not
		// reported its end: version 1 counted that pass as completed.
		// (A version 1 run stopped by an error at its very last step is
		// indistinguishable; it then trains one pass less when extended.)
		m.Pass--
	}
	return m, nil
}

// validate checks the counters of a checkpoint.
func (m Meta) validate() error {
	if err := m.Config.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	c := m.Config
	passes := c.Epochs / c.EvalInterval
	var bad []string
	if m.TotalSteps < 1 {
		bad = append(bad, fmt.Sprintf("total_steps %d is not positive", m.TotalSteps))
	}
	if m.Step < 0 || m.Step > m.TotalSteps {
		bad = append(bad, fmt.Sprintf("step %d is outside [0, total_steps %d]", m.Step, m.TotalSteps))
	}
	if m.OptimStep < 0 || m.OptimStep > m.Step {
		bad = append(bad, fmt.Sprintf("optim_step %d is outside [0, step %d]", m.OptimStep, m.Step))
	}
	if m.Pass < 0 || m.Pass > passes {
		bad = append(bad, fmt.Sprintf("pass %d is outside [0, %d] (epochs %d / eval_interval %d)", m.Pass, passes, c.Epochs, c.EvalInterval))
	}
	if m.SkippedTotal < 0 || m.SkippedTotal > m.Step {
		bad = append(bad, fmt.Sprintf("skipped_total %d is outside [0, step %d]", m.SkippedTotal, m.Step))
	}
	if m.NonFinite < 0 || m.NonFinite > m.SkippedTotal || m.NonFinite > c.MaxNonFinite {
		bad = append(bad, fmt.Sprintf("non_finite %d is outside [0, min(skipped_total %d, max_non_finite %d)]", m.NonFinite, m.SkippedTotal, c.MaxNonFinite))
	}
	if d := m.Data; d.Pass < 0 || d.Iters < 0 || d.Batches < 0 || d.PassBatches < 0 || d.PassBatches > d.Batches || d.Pass > int64(passes) {
		bad = append(bad, fmt.Sprintf("data position (pass %d, iters %d, batches %d, pass_batches %d) is out of range", d.Pass, d.Iters, d.Batches, d.PassBatches))
	}
	if m.Best != nil && (m.Best.Step < 0 || m.Best.Step > m.Step) {
		bad = append(bad, fmt.Sprintf("best.step %d is outside [0, step %d]", m.Best.Step, m.Step))
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// restoreState loads a checkpoint's state.safetensors into a trainer built
// from the checkpoint's config; replica rank of n takes its slots of the
// saved global carry (so a run may resume on another number of replicas).
func restoreState(dir string, t *Trainer, meta Meta, rank, n int) error {
	path := filepath.Join(dir, StateFile)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	model := map[string]safetensors.Tensor{}
	get := func(key string) (safetensors.Tensor, error) {
		tt, ok := f.Tensors[key]
		if !ok {
			return tt, fmt.Errorf("%s: missing key %s", path, key)
		}
		return tt, nil
	}
	for k, v := range f.Tensors {
		if !strings.HasPrefix(k, "optim.") && !strings.HasPrefix(k, "carry.") {
			model[k] = v
			// The state is written in F32 only: another dtype is a
			// relabelled or foreign file, whose bytes would be converted
			// into different numbers.
			if v.DType != safetensors.F32 {
				return fmt.Errorf("%s: key %s has dtype %s, a training state stores F32", path, k, v.DType)
			}
		}
	}
	// The optimizer and carry tensors: dtypes and shapes the config fixes.
	nTrained := t.Model.ParamLayout().NumTrained
	gb := meta.Config.GlobalBatchSize
	m := t.Model.Shape()
	type wantTensor struct {
		key   string
		dtype safetensors.DType
		shape []int
	}
	wants := []wantTensor{
		{"optim.m", safetensors.F32, []int{nTrained}}, {"optim.v", safetensors.F32, []int{nTrained}},
		{"optim.ema", safetensors.F32, []int{nTrained}},
		{"carry.steps", safetensors.I32, []int{gb}}, {"carry.halted", safetensors.I32, []int{gb}},
		{"carry.inputs", safetensors.I32, []int{gb, m.L}}, {"carry.labels", safetensors.I32, []int{gb, m.L}},
		{"carry.puzzle_identifiers", safetensors.I32, []int{gb}},
	}
	known := map[string]bool{}
	for _, name := range t.Model.CarryFields() {
		wants = append(wants, wantTensor{"carry." + name, safetensors.F32, []int{gb, m.S, m.H}})
	}
	for _, w := range wants {
		known[w.key] = true
	}
	for k := range f.Tensors {
		if strings.HasPrefix(k, "carry.") && !known[k] {
			return fmt.Errorf("%s: key %s is not a state of the %s carry (%s)", path, k, t.Model.Arch(), strings.Join(t.Model.CarryFields(), ", "))
		}
	}
	for _, want := range wants {
		tt, ok := f.Tensors[want.key]
		if !ok {
			if want.key == "optim.ema" && !meta.Config.EMA {
				continue
			}
			return fmt.Errorf("%s: missing key %s", path, want.key)
		}
		if tt.DType != want.dtype || !slices.Equal(tt.Shape, want.shape) {
			return fmt.Errorf("%s: key %s is %s %v, the config needs %s %v", path, want.key, tt.DType, tt.Shape, want.dtype, want.shape)
		}
	}
	p, err := engine.StateFromTensors(model, t.Model.ParamLayout(), path)
	if err != nil {
		return err
	}
	if err := t.Model.SetParams(p); err != nil {
		return err
	}
	var os_ OptimState
	os_.Step = meta.OptimStep
	for _, kv := range []struct {
		key string
		dst *[]float32
	}{{"optim.m", &os_.M}, {"optim.v", &os_.V}, {"optim.ema", &os_.Shadow}} {
		if kv.key == "optim.ema" && !meta.Config.EMA {
			continue
		}
		tt, err := get(kv.key)
		if err != nil {
			return err
		}
		if *kv.dst, err = tt.Float32(); err != nil {
			return fmt.Errorf("%s: %s: %w", path, kv.key, err)
		}
	}
	if err := t.Optim.Load(&os_); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var ch engine.CarryHost
	fields := t.Model.CarryFields()
	ch.Z = make([][]float32, len(fields))
	type carryTensor struct {
		key string
		f   *[]float32
		i   *[]int32
	}
	var cts []carryTensor
	for i, name := range fields {
		cts = append(cts, carryTensor{"carry." + name, &ch.Z[i], nil})
	}
	cts = append(cts, carryTensor{"carry.steps", nil, &ch.Steps}, carryTensor{"carry.halted", nil, &ch.Halted},
		carryTensor{"carry.inputs", nil, &ch.Inputs}, carryTensor{"carry.labels", nil, &ch.Labels}, carryTensor{"carry.puzzle_identifiers", nil, &ch.PIDs})
	for _, kv := range cts {
		tt, err := get(kv.key)
		if err != nil {
			return err
		}
		if kv.f != nil {
			if *kv.f, err = tt.Float32(); err != nil {
				return err
			}
			continue
		}
		v, err := tt.Int64()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, kv.key, err)
		}
		*kv.i = make([]int32, len(v))
		for i, x := range v {
			(*kv.i)[i] = int32(x)
		}
	}
	local, err := sliceCarry(&ch, rank, n)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := t.Model.LoadCarry(t.Carry, local); err != nil {
		return fmt.Errorf("%s: %w (was the checkpoint written with another number of replicas?)", path, err)
	}
	if err := t.Model.SetExplorationState(meta.Exploration); err != nil {
		return fmt.Errorf("%s: exploration RNG: %w", filepath.Join(dir, MetaFile), err)
	}
	t.Step, t.NonFinite, t.SkippedTotal, t.TotalSteps = meta.Step, meta.NonFinite, meta.SkippedTotal, meta.TotalSteps
	return nil
}
