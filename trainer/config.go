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
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tinyrecursive/trm/engine"
)

// Config is the training configuration: the keys of the reference's
// config/cfg_pretrain.yaml (its PretrainConfig) with the model under
// `arch`, plus this trainer's own keys for checkpoints and evaluation.
//
// A Config also carries how it was resolved, which is not part of its
// value: whether puzzle_emb_ndim was given explicitly (otherwise it
// follows hidden_size, as the reference's ${.hidden_size}) and the
// warnings about accepted reference keys that have no effect here.
// Compare two configs with Diff, not reflect.DeepEqual.
type Config struct {
	Arch engine.Config `json:"arch"`
	// ArchSettings selects the architecture (arch=NAME, the reference's
	// arch.name) and holds the keys of one architecture only. It is stored
	// in the JSON under "arch" as the reference's all_config.yaml has it:
	// name (the group), and act_enabled and act_inference for
	// transformers_baseline.
	ArchSettings  engine.ArchSettings `json:"-"`
	DataPaths     []string            `json:"data_paths"`
	DataPathsTest []string            `json:"data_paths_test"` // default: DataPaths

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

	// The reference's naming keys. RunName and ProjectName label the run
	// (its metrics and logs); LoadCheckpoint is a reference checkpoint
	// (.pt) imported as the initial weights.
	RunName        string `json:"run_name"`
	ProjectName    string `json:"project_name"`
	LoadCheckpoint string `json:"load_checkpoint"`

	// Own keys.
	CheckpointDir    string `json:"checkpoint_dir"`    // "" = no checkpoints; the reference's checkpoint_path
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
	// ResumeAuto launches the run as RunOptions.Resume = ResumeAuto does
	// (when no other resume is asked): it resumes from checkpoint_dir when
	// that holds a checkpoint and starts there otherwise, so one config
	// file serves the first launch and every restart. It says how to
	// launch, not what the run is: a resume never compares it.
	ResumeAuto bool `json:"resume_auto"`

	res resolution
}

// resolution is how a Config was built, beside its value.
type resolution struct {
	ndimGiven bool     // puzzle_emb_ndim was set explicitly, so it no longer follows hidden_size
	warned    []string // keys already warned about (one warning each)
	warnings  []string
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

// Upper bounds of the training keys that size or count work; the model's
// size keys have theirs in engine.Limits.
const (
	MaxGlobalBatchSize = engine.MaxBatchSize
	MaxEpochs          = 10_000_000
	MaxLRWarmupSteps   = 100_000_000
	MaxKeepCheckpoints = 1000
)

// Limits lists the upper bound of every size key: the training keys, then
// the model's (engine.Limits) under their arch. names (arch.batch_size is
// set from global_batch_size, whose limit is the same).
func Limits() []engine.Limit {
	out := []engine.Limit{
		{Key: "global_batch_size", Max: MaxGlobalBatchSize, Why: "examples per step; the activations grow with it"},
		{Key: "epochs", Max: MaxEpochs, Why: "passes over the training set (the paper uses at most 100000)"},
		{Key: "lr_warmup_steps", Max: MaxLRWarmupSteps, Why: "steps of linear learning-rate warm-up"},
		{Key: "keep_checkpoints", Max: MaxKeepCheckpoints, Why: "step checkpoints kept on disk"},
	}
	for _, l := range engine.Limits() {
		if l.Key == "batch_size" {
			continue // the trainer sets it from global_batch_size, bounded above
		}
		if !strings.Contains(l.Key, " ") {
			l.Key = "arch." + l.Key
		}
		out = append(out, l)
	}
	return out
}

// Validate reports every invalid setting in one error that names the
// keys; sizes above their documented limits (Limits) are refused here, so
// a run never starts allocating for them.
func (c Config) Validate() error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	arch := c.Arch
	if c.GlobalBatchSize > 0 && c.GlobalBatchSize <= MaxGlobalBatchSize {
		arch.BatchSize = c.GlobalBatchSize // the model's batch is a share of it
	}
	if err := engine.ValidateArch(arch, c.ArchSettings); err != nil {
		bad("arch: %v", err)
	}
	if c.GlobalBatchSize <= 0 {
		bad("global_batch_size must be positive, got %d", c.GlobalBatchSize)
	}
	if c.Epochs <= 0 {
		bad("epochs must be positive, got %d", c.Epochs)
	}
	sizes := map[string]int{"global_batch_size": c.GlobalBatchSize, "epochs": c.Epochs,
		"lr_warmup_steps": c.LRWarmupSteps, "keep_checkpoints": c.KeepCheckpoints}
	for _, l := range Limits() {
		if v, ok := sizes[l.Key]; ok && float64(v) > l.Max {
			bad("%s %d is above the limit %d (%s)", l.Key, v, int64(l.Max), l.Why)
		}
	}
	if c.EvalInterval <= 0 {
		bad("eval_interval must be positive, got %d", c.EvalInterval)
	} else if c.Epochs > 0 && c.Epochs%c.EvalInterval != 0 {
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
	if !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0) || !(c.PuzzleEmbWeightDecay >= 0) || math.IsInf(c.PuzzleEmbWeightDecay, 0) {
		bad("weight_decay and puzzle_emb_weight_decay must be finite and not negative")
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
	if c.TotalStepsLimit < 0 || c.EvalBatches < 0 {
		bad("max_steps and eval_max_batches must not be negative (0 means no limit)")
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
	c.Arch, c.ArchSettings = p.Model, p.Arch
	r := p.Recipe
	c.GlobalBatchSize, c.Epochs, c.EvalInterval = r.GlobalBatchSize, r.Epochs, r.EvalInterval
	c.LR, c.PuzzleEmbLR, c.WeightDecay, c.PuzzleEmbWeightDecay = r.LR, r.PuzzleEmbLR, r.WeightDecay, r.PuzzleEmbWeightDecay
	c.LRWarmupSteps, c.LRMinRatio, c.Beta1, c.Beta2 = r.LRWarmupSteps, r.LRMinRatio, r.Beta1, r.Beta2
	c.EMA, c.EMARate = r.EMA, r.EMARate
	return c, nil
}

// Presets lists the paper recipes FromPreset knows, with a one-line
// description each.
func Presets() []engine.PresetInfo { return engine.Presets() }

// keyPaths maps every settable key (arch.<model key>, arch.loss.loss_type
// and the top-level keys) to its field.
func keyPaths() map[string][]int {
	out := map[string][]int{}
	ct := reflect.TypeOf(Config{})
	for i := 0; i < ct.NumField(); i++ {
		f := ct.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if tag == "-" {
			continue // ArchSettings: set through arch=, arch.name and arch.act_*
		}
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

// Keys lists every key of the configuration that Set accepts, sorted. Set
// also accepts the reference's own forms listed by KeyDocs (arch=NAME,
// arch.name, arch.loss.name, checkpoint_path and the keys without effect
// here).
func Keys() []string {
	var ks []string
	for k := range keyPaths() {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// CanonicalKey returns the configuration key (one of Keys) that an
// override's key names: hydra's + and ++ prefixes dropped, the
// reference's checkpoint_path and arch.loss.loss_type mapped to
// checkpoint_dir and arch.loss_type. ok is false for the forms that are
// not one key (arch=, arch.name, arch.loss.name, the keys without effect)
// and for unknown keys.
func CanonicalKey(k string) (string, bool) {
	k = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(k), "+"), "+")
	if to, ok := aliases[k]; ok {
		k = to
	}
	if k == "arch.loss.loss_type" {
		k = "arch.loss_type"
	}
	_, ok := keyPaths()[k]
	return k, ok
}

// aliases maps the reference's key names that differ from ours to ours.
var aliases = map[string]string{
	"checkpoint_path": "checkpoint_dir",
}

// ignoredKeys are the reference's keys that have no effect here, with the
// reason given in their one warning. A key ending in "." covers its
// subkeys.
var ignoredKeys = map[string]string{
	"evaluators":        "the evaluation follows the test data: ARC sets (with test_puzzles.json) get the ARC pass@k scorer, every set gets exact and token accuracy",
	"eval_save_outputs": "evaluation outputs are not saved; ARC sets write submission.json to the checkpoint directory",
	"hydra.":            "hydra's own settings (output directories, logging) do not apply",
}

// ignoredKey returns the ignored entry covering k.
func ignoredKey(k string) (string, string, bool) {
	if why, ok := ignoredKeys[k]; ok {
		return k, why, true
	}
	for p, why := range ignoredKeys {
		if strings.HasSuffix(p, ".") && (strings.HasPrefix(k, p) || k+"." == p) {
			return strings.TrimSuffix(p, "."), why, true
		}
	}
	return "", "", false
}

// Warnings returns the warnings gathered while the config was built: one
// per accepted reference key that has no effect here.
func (c *Config) Warnings() []string { return append([]string(nil), c.res.warnings...) }

func (c *Config) warn(key, msg string) {
	if slices.Contains(c.res.warned, key) {
		return
	}
	// Copies of a Config share the slices' arrays: append to fresh ones.
	c.res.warned = append(slices.Clip(c.res.warned), key)
	c.res.warnings = append(slices.Clip(c.res.warnings), msg)
}

// value is one override's value: a scalar in its written form, a list, or
// null.
type value struct {
	s      string
	list   []string
	isList bool
	null   bool
}

// parseValue reads the command-line form of a value.
func parseValue(v string) value {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		v = v[1 : len(v)-1] // quoted as a shell would have, e.g. data_paths="[data/a]" in a Kubernetes args list
	}
	switch v {
	case "null", "None", "~":
		return value{null: true}
	}
	if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		return value{list: parseList(v), isList: true}
	}
	return value{s: v}
}

// Set applies one override in the reference's (hydra's) key=value form:
//
//	arch.L_cycles=4  lr=1e-4  ema=true  data_paths=[data/a,data/b]
//	arch=trm         the architecture group: the model keys as the
//	                 reference's config/arch/trm.yaml gives them (the
//	                 dataset's sizes are kept)
//	+run_name=x      hydra's "add a key" form, the same as run_name=x
//	checkpoint_path  the reference's name of checkpoint_dir
//	evaluators=[]    a reference key without effect here: accepted, with
//	                 one warning (see Warnings)
//
// puzzle_emb_ndim follows hidden_size unless it was set explicitly. null
// clears a name or path; eval_interval=null means one pass of all epochs,
// as in the reference. An unknown key is an error suggesting the nearest
// valid one.
func (c *Config) Set(kv string) error {
	if strings.HasPrefix(strings.TrimSpace(kv), "~") {
		return fmt.Errorf("override %q: deleting a key (hydra's ~key) is not supported; set it instead", kv)
	}
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("override %q: want key=value", kv)
	}
	k = strings.TrimSpace(k)
	k = strings.TrimPrefix(strings.TrimPrefix(k, "+"), "+")
	return c.assign(k, parseValue(v))
}

// SetAll applies overrides in hydra's order: the architecture group
// (arch=NAME) first, wherever it stands, then every other override in the
// order given, so `arch.L_cycles=4 arch=trm` keeps L_cycles 4 as the
// reference does. The first error is returned.
func (c *Config) SetAll(kvs []string) error {
	isGroup := func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return strings.TrimLeft(strings.TrimSpace(k), "+") == "arch"
	}
	for _, group := range []bool{true, false} {
		for _, kv := range kvs {
			if isGroup(kv) == group {
				if err := c.Set(kv); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// assign sets key k to val: the one path for overrides and config files.
func (c *Config) assign(k string, val value) error {
	if to, ok := aliases[k]; ok {
		k = to
	}
	switch k {
	case "arch", "arch.name":
		if val.isList || val.null {
			return fmt.Errorf("key %s: want an architecture name such as trm", k)
		}
		a, err := engine.LookupArch(strings.Trim(val.s, `"'`))
		if err != nil {
			return fmt.Errorf("key %s: %w", k, err)
		}
		if k == "arch" {
			arch, err := a.Defaults(c.Arch)
			if err != nil {
				return err
			}
			c.Arch, c.res.ndimGiven = arch, false
			c.ArchSettings = engine.ArchSettings{Name: groupName(a)}
			return nil
		}
		// arch.name alone names the model class and keeps the model keys,
		// as an override of the reference's arch.name does.
		c.ArchSettings.Name = groupName(a)
		return nil
	case "arch.act_enabled", "arch.act_inference":
		if val.isList || val.null {
			return fmt.Errorf("key %s: want true or false", k)
		}
		b, err := parseBool(val.s)
		if err != nil {
			return fmt.Errorf("key %s: %q is not true or false", k, val.s)
		}
		if k == "arch.act_enabled" {
			c.ArchSettings.ACTDisabled = !b
		} else {
			c.ArchSettings.ACTInference = b
		}
		return nil
	case "arch.loss.name":
		if n := strings.Trim(val.s, `"'`); n != engine.LossHeadName {
			return fmt.Errorf("key arch.loss.name: %q is not supported (the loss head is %s)", n, engine.LossHeadName)
		}
		return nil
	}
	if base, why, ok := ignoredKey(k); ok {
		c.warn(base, fmt.Sprintf("%s: accepted but has no effect here: %s", base, why))
		return nil
	}
	path, ok := keyPaths()[k]
	if !ok {
		return unknownKey(k)
	}
	f := reflect.ValueOf(c).Elem()
	for _, i := range path {
		f = f.Field(i)
	}
	if val.null {
		switch {
		case f.Kind() == reflect.String:
			f.SetString("")
		case f.Kind() == reflect.Slice:
			f.Set(reflect.Zero(f.Type()))
		case k == "eval_interval":
			c.EvalInterval = c.Epochs
		case k == "min_eval_interval":
			c.MinEvalInterval = 0
		default:
			return fmt.Errorf("key %s: null is not a value of this key", k)
		}
		return nil
	}
	if val.isList != (f.Kind() == reflect.Slice) {
		if val.isList {
			return fmt.Errorf("key %s: a list is not a value of this key", k)
		}
		val = value{list: parseList(val.s), isList: true}
	}
	v := strings.TrimSpace(val.s)
	oldHidden := c.Arch.HiddenSize
	switch f.Kind() {
	case reflect.Int:
		n, err := strconv.ParseFloat(v, 64) // the reference accepts 1e4 for ints
		if err != nil || n != math.Trunc(n) || math.Abs(n) > 1<<53 {
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
		b, err := parseBool(v)
		if err != nil {
			return fmt.Errorf("key %s: %q is not true or false", k, v)
		}
		f.SetBool(b)
	case reflect.String:
		f.SetString(strings.Trim(v, `"'`))
	case reflect.Slice:
		if len(val.list) == 0 {
			f.Set(reflect.Zero(f.Type())) // [] and an absent list are the same
		} else {
			f.Set(reflect.ValueOf(val.list))
		}
	default:
		return fmt.Errorf("key %s: unsupported kind %v", k, f.Kind())
	}
	switch k {
	case "arch.puzzle_emb_ndim":
		c.res.ndimGiven = true
	case "arch.hidden_size":
		if !c.res.ndimGiven {
			c.Arch.FollowHiddenSize(oldHidden)
		}
	}
	return nil
}

// parseBool reads the boolean spellings of YAML and Python.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.Trim(v, `"'`)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean")
}

// parseList reads `[a,b]`, `a,b` or `a` as a list of strings.
func parseList(v string) []string {
	v = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(v), "["), "]")
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.Trim(strings.TrimSpace(p), `"'`); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// archKeys returns the architecture's own keys as the JSON under "arch"
// holds them: name (the group; trm for the zero ArchSettings), and the
// transformer baseline's act_enabled and act_inference where set.
func (c Config) archKeys() map[string]any {
	g, err := c.ArchSettings.Group()
	if err != nil {
		g = c.ArchSettings.Name // an unknown name is kept for Validate to report
	}
	out := map[string]any{"name": g}
	if c.ArchSettings.ACTDisabled {
		out["act_enabled"] = false
	}
	if c.ArchSettings.ACTInference {
		out["act_inference"] = true
	}
	return out
}

// plainConfig is Config without its JSON methods.
type plainConfig Config

// MarshalJSON writes the config with the architecture's keys (archKeys)
// inside "arch", beside the model keys, so that a stored config names
// the architecture its weights belong to.
func (c Config) MarshalJSON() ([]byte, error) {
	ab, err := json.Marshal(c.Arch)
	if err != nil {
		return nil, err
	}
	var arch map[string]json.RawMessage
	if err := json.Unmarshal(ab, &arch); err != nil {
		return nil, err
	}
	for k, v := range c.archKeys() {
		b, _ := json.Marshal(v)
		arch[k] = b
	}
	ab, err = json.Marshal(arch)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Arch json.RawMessage `json:"arch"`
		plainConfig
	}{ab, plainConfig(c)})
}

// UnmarshalJSON reads what MarshalJSON writes. A config without
// arch.name (written before architectures were selectable) is the TRM.
func (c *Config) UnmarshalJSON(b []byte) error {
	var p plainConfig
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var top struct {
		Arch struct {
			Name         string `json:"name"`
			ACTEnabled   *bool  `json:"act_enabled"`
			ACTInference bool   `json:"act_inference"`
		} `json:"arch"`
	}
	if err := json.Unmarshal(b, &top); err != nil {
		return err
	}
	res := c.res
	*c = Config(p)
	c.res = res
	c.ArchSettings = engine.ArchSettings{Name: top.Arch.Name, ACTInference: top.Arch.ACTInference}
	if top.Arch.ACTEnabled != nil {
		c.ArchSettings.ACTDisabled = !*top.Arch.ACTEnabled
	}
	if c.ArchSettings.Name != "" {
		a, err := engine.FindArch(c.ArchSettings.Name)
		if err != nil {
			return fmt.Errorf("arch.name: %w", err)
		}
		c.ArchSettings.Name = groupName(a)
	}
	return nil
}

// groupName is the ArchSettings.Name a config keeps for a: its group, and
// "" for the TRM, so that a config naming trm equals one naming nothing.
func groupName(a engine.Architecture) string {
	if a.Group == "trm" {
		return ""
	}
	return a.Group
}

// Group returns the config's architecture group (trm, hrm, ...).
func (c Config) Group() string {
	g, err := c.ArchSettings.Group()
	if err != nil {
		return c.ArchSettings.Name
	}
	return g
}

// MarshalIndent returns the config as indented JSON (for checkpoints and logs).
func (c Config) MarshalIndent() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

// Diff lists the keys whose values differ between c and d, sorted, as
// "key: a -> b". The resolution state (see Config) is not compared.
func (c Config) Diff(d Config) []string {
	var out []string
	ca, da := c.archKeys(), d.archKeys()
	for _, k := range []string{"name", "act_enabled", "act_inference"} {
		if !reflect.DeepEqual(ca[k], da[k]) {
			out = append(out, fmt.Sprintf("arch.%s: %v -> %v", k, orDefault(ca[k], k), orDefault(da[k], k)))
		}
	}
	cv, dv := reflect.ValueOf(c), reflect.ValueOf(d)
	for _, k := range Keys() {
		if k == "arch.loss.loss_type" {
			continue // the same field as arch.loss_type
		}
		a, b := cv, dv
		for _, i := range keyPaths()[k] {
			a, b = a.Field(i), b.Field(i)
		}
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			out = append(out, fmt.Sprintf("%s: %v -> %v", k, a.Interface(), b.Interface()))
		}
	}
	sort.Strings(out)
	return out
}

// orDefault shows an architecture key that archKeys leaves out by its
// default value (act_enabled true, act_inference false).
func orDefault(v any, key string) any {
	if v != nil {
		return v
	}
	return key == "act_enabled"
}
