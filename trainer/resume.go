package trainer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"
)

// ResumeAuto as RunOptions.Resume resumes from the run directory
// (checkpoint_dir) when it holds a checkpoint and starts a fresh run
// there otherwise: the same command line serves the first launch and
// every restart (a SLURM requeue, a Kubernetes restart, a spot instance
// replaced).
const ResumeAuto = "auto"

// ResumableKeys are the config keys a resumed run may change. Everything
// else (the model, the optimizer, the batch, the seed) is the stored run's
// and is refused: a different value would silently make another run under
// the same name.
var ResumableKeys = []string{
	"data_paths", "max_steps", "epochs",
	"eval_interval", "min_eval_interval", "eval_max_batches", "eval_early_exit",
	"checkpoint_dir", "keep_checkpoints", "best_metric",
}

// launchKeys say how to launch a run, not what the run is: they are never
// stored differences (a `resume auto` relaunch may set them freely).
var launchKeys = map[string]bool{"resume_auto": true}

// launchOptions applies the config's launch keys to the options: with
// resume_auto and no resume asked, Resume is ResumeAuto.
func launchOptions(cfg Config, opt RunOptions) RunOptions {
	if cfg.ResumeAuto && opt.Resume == "" {
		opt.Resume = ResumeAuto
	}
	return opt
}

func resumable(key string) bool {
	for _, k := range ResumableKeys {
		if k == key {
			return true
		}
	}
	return false
}

// absPaths makes the config's paths absolute, so a stored config means the
// same directories whatever the working directory of a later resume.
func absPaths(c *Config) error {
	abs := func(p string) (string, error) {
		if p == "" {
			return p, nil
		}
		return filepath.Abs(p)
	}
	var err error
	for _, l := range []*[]string{&c.DataPaths, &c.DataPathsTest} {
		if *l == nil {
			continue
		}
		out := make([]string, len(*l))
		for i, p := range *l {
			if out[i], err = abs(p); err != nil {
				return err
			}
		}
		*l = out
	}
	c.CheckpointDir, err = abs(c.CheckpointDir)
	return err
}

// ResumeConfig returns the config a resumed run uses: the stored one, with
// the overrides (key=value, as Config.Set takes them) applied where they
// are among ResumableKeys, and with checkpoint_dir set to out when out is
// given. An override of any other key is refused naming the key, unless it
// repeats the stored value (so relaunching the original command line
// resumes). notes says what changed, for the log.
func ResumeConfig(stored Config, overrides []string, out string) (Config, []string, error) {
	cfg := stored
	var notes []string
	paths := keyPaths()
	for _, kv := range overrides {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			return stored, nil, fmt.Errorf("override %q: want key=value", kv)
		}
		next := cfg
		if err := next.Set(kv); err != nil {
			return stored, nil, err
		}
		if err := absPaths(&next); err != nil {
			return stored, nil, err
		}
		k, known := CanonicalKey(k) // the reference's spellings name our keys
		var before, after any
		switch {
		case known:
			before, after = fieldOf(&cfg, paths[k]), fieldOf(&next, paths[k])
		case strings.HasPrefix(strings.TrimLeft(strings.TrimSpace(k), "+"), "arch"):
			// A model group (arch=NAME, arch.name, arch.act_*): the
			// architecture, then the model as a whole.
			if cfg.Group() != next.Group() {
				k, before, after = "arch", cfg.Group(), next.Group()
			} else {
				k, before, after = "arch", [2]any{cfg.Arch, cfg.ArchSettings}, [2]any{next.Arch, next.ArchSettings}
			}
		default:
			continue // a reference key without effect here (Set warned)
		}
		if reflect.DeepEqual(before, after) {
			continue
		}
		if launchKeys[k] {
			cfg = next
			continue
		}
		if !resumable(k) {
			return stored, nil, fmt.Errorf("resume: %s cannot change on resume (the checkpoint's run has %s=%v, asked %v); a resumed run may change only %s; start a fresh run (--init with the checkpoint's %s) to change it",
				k, k, fmtValue(before), fmtValue(after), strings.Join(ResumableKeys, ", "), ModelFile)
		}
		notes = append(notes, fmt.Sprintf("%s changed on resume: %v -> %v", k, fmtValue(before), fmtValue(after)))
		cfg = next
	}
	if out != "" {
		abs, err := filepath.Abs(out)
		if err != nil {
			return stored, nil, err
		}
		if abs != cfg.CheckpointDir {
			notes = append(notes, fmt.Sprintf("checkpoints now go to %s (the checkpoint's run wrote to %s)", abs, fmtValue(cfg.CheckpointDir)))
		}
		cfg.CheckpointDir = abs
	}
	if err := cfg.Validate(); err != nil {
		return stored, nil, fmt.Errorf("resume: %w", err)
	}
	return cfg, notes, nil
}

func fieldOf(c *Config, path []int) any {
	f := reflect.ValueOf(c).Elem()
	for _, i := range path {
		f = f.Field(i)
	}
	return f.Interface()
}

func fmtValue(v any) string {
	switch x := v.(type) {
	case []string:
		return "[" + strings.Join(x, ",") + "]"
	case string:
		if x == "" {
			return `""`
		}
	}
	return fmt.Sprint(v)
}

// datasetKeys are set from the dataset's metadata, not by the user: a
// fresh config has them unset, so they are no difference between runs.
var datasetKeys = map[string]bool{"arch.seq_len": true, "arch.vocab_size": true, "arch.num_puzzle_identifiers": true, "arch.loss.loss_type": true}

// configDiff returns key=value overrides that turn stored into asked (the
// keys where they differ, in key order): what a `resume auto` relaunch
// asks to change.
func configDiff(stored, asked Config) []string {
	var out []string
	if stored.Group() != asked.Group() {
		out = append(out, "arch="+asked.Group()) // SetAll applies it before the model keys
	}
	sa, aa := stored.archKeys(), asked.archKeys()
	for _, k := range []string{"act_enabled", "act_inference"} {
		if !reflect.DeepEqual(sa[k], aa[k]) {
			out = append(out, fmt.Sprintf("arch.%s=%v", k, orDefault(aa[k], k)))
		}
	}
	paths := keyPaths()
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if datasetKeys[k] || launchKeys[k] {
			continue
		}
		a, b := fieldOf(&stored, paths[k]), fieldOf(&asked, paths[k])
		if reflect.DeepEqual(a, b) {
			continue
		}
		if l, ok := b.([]string); ok {
			if len(l) == 0 && len(a.([]string)) == 0 {
				continue
			}
			out = append(out, k+"=["+strings.Join(l, ",")+"]")
			continue
		}
		out = append(out, fmt.Sprintf("%s=%v", k, b))
	}
	return out
}

// Files a run keeps in its directory beside the checkpoints.
const (
	// ConfigFile is the resolved config of the run (the reference key
	// names), rewritten at every start and resume.
	ConfigFile = "config.json"
	// RunFile records the run's identity: its metrics run label, kept
	// across resumes, and where it was resumed from.
	RunFile = "run.json"
)

// RunRecord is the content of RunFile.
type RunRecord struct {
	// Label is the run label of the metrics (promhook's "run"): a resumed
	// run keeps it so its series continue.
	Label   string         `json:"label"`
	Created string         `json:"created"`
	Resumes []ResumeRecord `json:"resumes,omitempty"`
}

// ResumeRecord is one resume of a run.
type ResumeRecord struct {
	Time  string   `json:"time"`
	From  string   `json:"from"`
	Step  int      `json:"step"`
	Notes []string `json:"notes,omitempty"`
}

// ReadRunRecord reads dir's RunFile (false when there is none).
func ReadRunRecord(dir string) (RunRecord, bool, error) {
	var r RunRecord
	b, err := os.ReadFile(filepath.Join(dir, RunFile))
	if os.IsNotExist(err) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("%s: %w", filepath.Join(dir, RunFile), err)
	}
	return r, true, nil
}

// StoredRunLabel returns the metrics run label recorded for the run that
// a --resume argument (a run directory or one of its checkpoints) names,
// or "" when none is recorded: a command line starts its metrics exporter
// with it so a resumed run keeps its series.
func StoredRunLabel(resume string) string {
	for _, d := range []string{resume, runRoot(resume)} {
		if r, ok, err := ReadRunRecord(d); err == nil && ok && r.Label != "" {
			return r.Label
		}
	}
	return ""
}

// runRoot is the run directory a --resume argument belongs to: the
// directory itself, or the parent of a checkpoint directory (step_N,
// best, an aside name), as an absolute path.
func runRoot(resume string) string {
	p, err := filepath.Abs(resume)
	if err != nil {
		p = filepath.Clean(resume)
	}
	base := filepath.Base(p)
	if _, ok := parseStepDir(base); ok || base == "best" {
		return filepath.Dir(p)
	}
	for _, f := range []string{MetaFile, ManifestFile, StateFile} {
		if _, err := os.Stat(filepath.Join(p, f)); err == nil {
			return filepath.Dir(p)
		}
	}
	return p
}

// writeRunFiles records the resolved config and the run record in dir.
func writeRunFiles(dir string, cfg Config, rec RunRecord) error {
	if err := writeAtomic(filepath.Join(dir, ConfigFile), cfg.MarshalIndent()); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	return writeAtomic(filepath.Join(dir, RunFile), b)
}

// writeAtomic replaces path by a complete new file (a crash leaves the old
// or the new content).
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := writeSynced(tmp, append(b, '\n')); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339) }

// RunLabelFor returns the metrics run label Run will record for cfg and
// opt when opt.RunLabel is empty: the label the resumed run recorded (in
// the checkpoint's run directory), else the run directory's name, else ""
// (a run without a directory). A command line starts its metrics exporter
// with it, so a resumed run, even into a new --out, keeps its series.
func RunLabelFor(cfg Config, opt RunOptions) string {
	opt = launchOptions(cfg, opt)
	if opt.RunLabel != "" {
		return opt.RunLabel
	}
	dir, err := RunDirFor(cfg, opt)
	if err != nil {
		return ""
	}
	src := opt.Resume
	if src == ResumeAuto {
		src = dir
	}
	if src != "" {
		if l := StoredRunLabel(src); l != "" {
			return l
		}
	}
	if dir != "" {
		return filepath.Base(dir)
	}
	return ""
}

// RunPlan is how Run will start a run, resolved without writing anything
// (what a dry run prints).
type RunPlan struct {
	// Config is the config the run will use: cfg for a fresh run, the
	// stored config with the resume's changes otherwise.
	Config Config
	// Checkpoint is the verified checkpoint a resume continues ("" for a
	// fresh run) and Step its step.
	Checkpoint string
	Step       int
	// RunDir is the directory the run will lock and write.
	RunDir string
	// Notes say what the resume changes or decided.
	Notes []string
}

// PlanRun resolves cfg and opt as Run does (fresh or resumed, which
// checkpoint, which config, refused overrides) without locking or
// writing: Run's choice, for a dry run to print. Checks that need the data
// (its shapes against the stored model, the schedule) are Run's.
func PlanRun(cfg Config, opt RunOptions) (*RunPlan, error) {
	opt = launchOptions(cfg, opt)
	p, err := resolve(cfg, opt)
	if err != nil {
		return nil, err
	}
	rp := &RunPlan{Config: p.cfg, Checkpoint: p.from, RunDir: p.runDir, Notes: p.notes}
	if p.meta != nil {
		rp.Step = p.meta.Step
	}
	return rp, nil
}
