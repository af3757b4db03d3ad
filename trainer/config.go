// Package trainer trains a TRM: the training configuration with the
// reference's keys, the learning-rate schedule, the optimizers and EMA on
// the engine's backend, the loop with its persistent ACT carry, evaluation,
// resumable checkpoints and the hooks (JSONL log, progress, metrics) that
// observe it.
package trainer

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/tinyrecursive/trm/engine"
)

// Config is the training configuration: the reference's cfg_pretrain.yaml
// keys (spec section 6) with the model under `arch`, plus this trainer's
// own keys for checkpoints and evaluation.
type Config struct {
	Arch          engine.Config `json:"arch"`
	DataPaths     []string      `json:"data_paths"`
	DataPathsTest []string      `json:"data_paths_test"` // default: DataPaths

	GlobalBatchSize      int     `json:"global_batch_size"`
	Epochs               int     `json:"epochs"`
	EvalInterval         int     `json:"eval_interval"`     // epochs per pass; evaluation at the end of each pass
	MinEvalInterval      int     `json:"min_eval_interval"` // evaluation intervals to skip before the first evaluation
	CheckpointEveryEval  bool    `json:"checkpoint_every_eval"`
	LR                   float64 `json:"lr"`
	LRMinRatio           float64 `json:"lr_min_ratio"`
	LRWarmupSteps        int     `json:"lr_warmup_steps"`
	Beta1                float64 `json:"beta1"`
	Beta2                float64 `json:"beta2"`
	WeightDecay          float64 `json:"weight_decay"`
	PuzzleEmbWeightDecay float64 `json:"puzzle_emb_weight_decay"`
	PuzzleEmbLR          float64 `json:"puzzle_emb_lr"`
	Seed                 uint64  `json:"seed"`
	EMA                  bool    `json:"ema"`
	EMARate              float64 `json:"ema_rate"`
	FreezeWeights        bool    `json:"freeze_weights"`

	// Own keys.
	CheckpointDir    string `json:"checkpoint_dir"`    // "" = no checkpoints
	KeepCheckpoints  int    `json:"keep_checkpoints"`  // the last N step checkpoints kept
	BestMetric       string `json:"best_metric"`       // eval metric whose best checkpoint is kept, e.g. all/exact_accuracy
	AggregatedVoting bool   `json:"aggregated_voting"` // ARC: pool votes over all evaluations of a run (the reference default)
	EvalEarlyExit    bool   `json:"eval_early_exit"`   // stop a test batch once every example's q_halt > 0
	MaxNonFinite     int    `json:"max_non_finite"`    // consecutive skipped updates that stop the run
	TotalStepsLimit  int    `json:"max_steps"`         // 0 = none; stop after this many steps (for demos and tests)
	EvalBatches      int    `json:"eval_max_batches"`  // 0 = all; evaluate on at most this many test batches per set
	// ReplicaCheckEvery: with several replicas, compare a checksum of the
	// weights across them at the start and every N steps (0 = never).
	ReplicaCheckEvery int `json:"replica_check_every"`
}

// DefaultConfig returns the reference defaults (cfg_pretrain.yaml) with the
// reference architecture.
func DefaultConfig() Config {
	return Config{
		Arch:                 engine.DefaultConfig(),
		GlobalBatchSize:      768,
		Epochs:               100000,
		EvalInterval:         10000,
		MinEvalInterval:      0,
		CheckpointEveryEval:  true,
		LR:                   1e-4,
		LRMinRatio:           1.0,
		LRWarmupSteps:        2000,
		Beta1:                0.9,
		Beta2:                0.95,
		WeightDecay:          0.1,
		PuzzleEmbWeightDecay: 0.1,
		PuzzleEmbLR:          1e-2,
		Seed:                 0,
		EMA:                  false,
		EMARate:              0.999,
		KeepCheckpoints:      3,
		BestMetric:           "",
		AggregatedVoting:     true,
		MaxNonFinite:         5,
		ReplicaCheckEvery:    100,
	}
}

// Validate reports invalid settings with the key's name.
func (c Config) Validate() error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if err := c.Arch.Validate(); err != nil {
		bad("arch: %v", err)
	}
	if c.GlobalBatchSize <= 0 {
		bad("global_batch_size must be positive, got %d", c.GlobalBatchSize)
	}
	if c.Epochs <= 0 {
		bad("epochs must be positive, got %d", c.Epochs)
	}
	if c.EvalInterval <= 0 {
		bad("eval_interval must be positive, got %d", c.EvalInterval)
	} else if c.Epochs%c.EvalInterval != 0 {
		bad("eval_interval %d must divide epochs %d", c.EvalInterval, c.Epochs)
	}
	if c.MinEvalInterval < 0 {
		bad("min_eval_interval must not be negative")
	}
	if !(c.LR >= 0) || !(c.PuzzleEmbLR >= 0) || math.IsInf(c.LR, 0) || math.IsInf(c.PuzzleEmbLR, 0) {
		bad("lr and puzzle_emb_lr must be finite and not negative")
	}
	if !(c.LRMinRatio >= 0 && c.LRMinRatio <= 1) {
		bad("lr_min_ratio must be in [0, 1], got %g", c.LRMinRatio)
	}
	if c.LRWarmupSteps < 0 {
		bad("lr_warmup_steps must not be negative")
	}
	if !(c.Beta1 >= 0 && c.Beta1 < 1) || !(c.Beta2 >= 0 && c.Beta2 < 1) {
		bad("beta1 and beta2 must be in [0, 1)")
	}
	if c.EMA && !(c.EMARate >= 0 && c.EMARate <= 1) {
		bad("ema_rate must be in [0, 1], got %g", c.EMARate)
	}
	if c.FreezeWeights && c.Arch.PuzzleEmbNdim == 0 {
		bad("freeze_weights trains only the puzzle embedding, but arch.puzzle_emb_ndim is 0")
	}
	if c.KeepCheckpoints < 1 {
		bad("keep_checkpoints must be at least 1")
	}
	if c.MaxNonFinite < 1 {
		bad("max_non_finite must be at least 1")
	}
	if c.ReplicaCheckEvery < 0 {
		bad("replica_check_every must not be negative (0 turns the check off)")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid training config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// FromPreset returns the paper recipe of a preset: its model and training
// settings.
func FromPreset(name string) (Config, error) {
	p, err := engine.LookupPreset(name)
	if err != nil {
		return Config{}, err
	}
	c := DefaultConfig()
	c.Arch = p.Model
	r := p.Recipe
	c.GlobalBatchSize, c.Epochs, c.EvalInterval = r.GlobalBatchSize, r.Epochs, r.EvalInterval
	c.LR, c.PuzzleEmbLR, c.WeightDecay, c.PuzzleEmbWeightDecay = r.LR, r.PuzzleEmbLR, r.WeightDecay, r.PuzzleEmbWeightDecay
	c.LRWarmupSteps, c.LRMinRatio, c.Beta1, c.Beta2 = r.LRWarmupSteps, r.LRMinRatio, r.Beta1, r.Beta2
	c.EMA, c.EMARate = r.EMA, r.EMARate
	return c, nil
}

// keyPaths maps every settable key (arch.<model key>, arch.loss.loss_type
// and the top-level keys) to its field.
func keyPaths() map[string][]int {
	out := map[string][]int{}
	ct := reflect.TypeOf(Config{})
	for i := 0; i < ct.NumField(); i++ {
		f := ct.Field(i)
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if tag == "arch" {
			at := f.Type
			for j := 0; j < at.NumField(); j++ {
				af := at.Field(j)
				at := strings.Split(af.Tag.Get("json"), ",")[0]
				out["arch."+at] = []int{i, j}
				if at == "loss_type" {
					out["arch.loss.loss_type"] = []int{i, j}
				}
			}
			continue
		}
		out[tag] = []int{i}
	}
	return out
}

// Keys lists every key Set accepts, sorted.
func Keys() []string {
	var ks []string
	for k := range keyPaths() {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Set applies one override in the reference's key=value form:
// `arch.L_cycles=4`, `lr=1e-4`, `ema=true`, `data_paths=[data/a,data/b]`.
// An unknown key is an error listing the valid ones.
func (c *Config) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("override %q: want key=value", kv)
	}
	k = strings.TrimPrefix(strings.TrimSpace(k), "+")
	path, ok := keyPaths()[k]
	if !ok {
		return fmt.Errorf("unknown key %q; valid keys: %s", k, strings.Join(Keys(), ", "))
	}
	f := reflect.ValueOf(c).Elem()
	for _, i := range path {
		f = f.Field(i)
	}
	v = strings.TrimSpace(v)
	switch f.Kind() {
	case reflect.Int:
		n, err := strconv.ParseFloat(v, 64) // the reference accepts 1e4 for ints
		if err != nil || n != float64(int(n)) {
			return fmt.Errorf("key %s: %q is not an integer", k, v)
		}
		f.SetInt(int64(n))
	case reflect.Uint64:
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("key %s: %q is not a non-negative integer", k, v)
		}
		f.SetUint(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("key %s: %q is not a number", k, v)
		}
		f.SetFloat(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.ToLower(v))
		if err != nil {
			return fmt.Errorf("key %s: %q is not true or false", k, v)
		}
		f.SetBool(b)
	case reflect.String:
		f.SetString(strings.Trim(v, `"'`))
	case reflect.Slice:
		f.Set(reflect.ValueOf(parseList(v)))
	default:
		return fmt.Errorf("key %s: unsupported kind %v", k, f.Kind())
	}
	return nil
}

// parseList reads `[a,b]`, `a,b` or `a` as a list of strings.
func parseList(v string) []string {
	v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.Trim(strings.TrimSpace(p), `"'`); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// MarshalIndent returns the config as indented JSON (for checkpoints and logs).
func (c Config) MarshalIndent() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

// ParseConfigJSON overlays a JSON training config (reference keys, the
// model under "arch") on c; unknown keys are errors naming the file.
func ParseConfigJSON(c *Config, b []byte, name string) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if a, ok := raw["arch"]; ok {
		arch, err := engine.ParseConfigOver(c.Arch, a, name+": arch")
		if err != nil {
			return err
		}
		c.Arch = arch
		delete(raw, "arch")
	}
	paths := keyPaths()
	for k, v := range raw {
		if _, ok := paths[k]; !ok {
			return fmt.Errorf("%s: unknown key %q; valid keys: %s", name, k, strings.Join(Keys(), ", "))
		}
		s := strings.TrimSpace(string(v))
		if strings.HasPrefix(s, "[") {
			var list []string
			if err := json.Unmarshal(v, &list); err != nil {
				return fmt.Errorf("%s: key %s: %v", name, k, err)
			}
			s = "[" + strings.Join(list, ",") + "]"
		} else {
			s = strings.Trim(s, `"`)
		}
		if err := c.Set(k + "=" + s); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
	}
	return nil
}
