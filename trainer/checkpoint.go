package trainer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

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

// Meta is the JSON part of a checkpoint.
type Meta struct {
	Version      int             `json:"version"`
	Step         int             `json:"step"`
	OptimStep    int             `json:"optim_step"`
	TotalSteps   int             `json:"total_steps"`
	Pass         int             `json:"pass"`          // evaluation intervals completed
	PassDone     bool            `json:"pass_done"`     // the data of pass Pass is exhausted (its evaluation pending or done)
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

// writeCheckpoint writes a complete checkpoint directory atomically: every
// file goes into a temporary sibling directory, is fsynced, and the
// directory is renamed into place, so a crash leaves either the old set of
// checkpoints or the new one, never a half-written one.
func writeCheckpoint(root string, t *Trainer, meta Meta, ch *engine.CarryHost) (string, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(root, StepDirName(meta.Step))
	tmp, err := os.MkdirTemp(root, ".tmp-"+StepDirName(meta.Step)+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	params, err := t.Model.Params()
	if err != nil {
		return "", err
	}
	ts := params.Tensors()
	os_, err := t.Optim.Save()
	if err != nil {
		return "", err
	}
	n := []int{len(os_.M)}
	ts["optim.m"] = safetensors.FromFloat32(n, os_.M)
	ts["optim.v"] = safetensors.FromFloat32(n, os_.V)
	if os_.Shadow != nil {
		ts["optim.ema"] = safetensors.FromFloat32(n, os_.Shadow)
	}
	// The carry of the whole global batch (every replica's slots).
	m := t.Model
	B := len(ch.Steps)
	ts["carry.z_H"] = safetensors.FromFloat32([]int{B, m.S, m.H}, ch.ZH)
	ts["carry.z_L"] = safetensors.FromFloat32([]int{B, m.S, m.H}, ch.ZL)
	ts["carry.steps"] = safetensors.FromInt32([]int{B}, ch.Steps)
	ts["carry.halted"] = safetensors.FromInt32([]int{B}, ch.Halted)
	ts["carry.inputs"] = safetensors.FromInt32([]int{B, m.L}, ch.Inputs)
	ts["carry.labels"] = safetensors.FromInt32([]int{B, m.L}, ch.Labels)
	ts["carry.puzzle_identifiers"] = safetensors.FromInt32([]int{B}, ch.PIDs)
	if err := safetensors.WriteFile(filepath.Join(tmp, StateFile), ts, map[string]string{"format": "trm-train-state"}); err != nil {
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
	if err := writeSynced(filepath.Join(tmp, "arch.json"), mustJSON(meta.Config.Arch)); err != nil {
		return "", err
	}
	if err := syncDir(tmp); err != nil {
		return "", err
	}
	// A checkpoint of the same step (a resumed run writing again) is replaced.
	if _, err := os.Stat(final); err == nil {
		if err := os.RemoveAll(final); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, syncDir(root)
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
		if err := os.RemoveAll(steps[i]); err != nil {
			return err
		}
	}
	return nil
}

// ListCheckpoints returns the step checkpoint directories under root,
// oldest first.
func ListCheckpoints(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "step_") {
			if _, err := os.Stat(filepath.Join(root, e.Name(), MetaFile)); err == nil {
				out = append(out, filepath.Join(root, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// LatestCheckpoint resolves a --resume argument: a checkpoint directory
// itself, or a root holding step_* directories (the newest is taken).
func LatestCheckpoint(path string) (string, error) {
	if _, err := os.Stat(filepath.Join(path, MetaFile)); err == nil {
		return path, nil
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

// markBest points root/best at the checkpoint dir: a fresh copy made by
// hard links, swapped in by rename.
func markBest(root, dir string, info BestInfo) error {
	tmp, err := os.MkdirTemp(root, ".tmp-best-")
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

// LoadMeta reads a checkpoint's trainer.json.
func LoadMeta(dir string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(dir, MetaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(dir, MetaFile), err)
	}
	if m.Version != 1 {
		return m, fmt.Errorf("%s: unsupported checkpoint version %d", filepath.Join(dir, MetaFile), m.Version)
	}
	return m, nil
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
		}
	}
	p, err := engine.StateFromTensors(model, t.Model.Layout, path)
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
	for _, kv := range []struct {
		key string
		f   *[]float32
		i   *[]int32
	}{
		{"carry.z_H", &ch.ZH, nil}, {"carry.z_L", &ch.ZL, nil}, {"carry.steps", nil, &ch.Steps}, {"carry.halted", nil, &ch.Halted},
		{"carry.inputs", nil, &ch.Inputs}, {"carry.labels", nil, &ch.Labels}, {"carry.puzzle_identifiers", nil, &ch.PIDs},
	} {
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
