package enginetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/internal/safetensors"
)

// Factory returns a fresh backend for one test.
type Factory func() engine.Backend

// GoldenDir is the repository's copy of the reference's golden cases.
func GoldenDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "golden")
}

// GoldenCases lists the case folders to check: every folder of GoldenDir
// holding a batch.safetensors, plus the folders named in TRM_GOLDEN_DIRS
// (colon-separated; each a case folder or a folder of case folders).
func GoldenCases(t *testing.T) []string {
	t.Helper()
	roots := []string{GoldenDir()}
	if env := os.Getenv("TRM_GOLDEN_DIRS"); env != "" {
		roots = append(roots, strings.Split(env, ":")...)
	}
	var cases []string
	for _, r := range roots {
		if r == "" {
			continue
		}
		if isCase(r) {
			cases = append(cases, r)
			continue
		}
		ents, err := os.ReadDir(r)
		if err != nil {
			t.Fatalf("golden folder %s: %v", r, err)
		}
		found := 0
		for _, e := range ents {
			if p := filepath.Join(r, e.Name()); e.IsDir() && isCase(p) {
				cases = append(cases, p)
				found++
			}
		}
		if found == 0 {
			t.Fatalf("golden folder %s holds no case (a folder with config.json, weights, batch and expected safetensors)", r)
		}
	}
	sort.Strings(cases)
	return cases
}

func isCase(dir string) bool {
	for _, f := range []string{"config.json", "weights.safetensors", "batch.safetensors", "expected.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// goldenFile is a decoded safetensors file with typed accessors that fail
// the test on a missing key.
type goldenFile struct {
	t    *testing.T
	path string
	f    *safetensors.File
}

func openGolden(t *testing.T, path string) goldenFile {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return goldenFile{t, path, f}
}

func (g goldenFile) has(key string) bool { _, ok := g.f.Tensors[key]; return ok }

func (g goldenFile) f64(key string) []float64 {
	g.t.Helper()
	tt, ok := g.f.Tensors[key]
	if !ok {
		g.t.Fatalf("%s: no key %s", g.path, key)
	}
	v, err := tt.Float64()
	if err != nil {
		g.t.Fatalf("%s: %s: %v", g.path, key, err)
	}
	return v
}

func (g goldenFile) i32(key string) []int32 {
	g.t.Helper()
	v := g.f64(key)
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

// loadGoldenCase reads a golden case's configuration, the reference's
// weights and its batch.
// The config's name key selects the architecture (absent: trm).
func loadGoldenCase(t *testing.T, dir string) (gc goldenConfig, params *engine.Params, in, labels, pids []int32) {
	t.Helper()
	cfg, arch, err := engine.LoadArchConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	gc = goldenConfig{cfg, arch}
	layout, err := engine.NewArchLayout(cfg, arch)
	if err != nil {
		t.Fatal(err)
	}
	params, err = engine.LoadState(filepath.Join(dir, "weights.safetensors"), layout)
	if err != nil {
		t.Fatal(err)
	}
	batch := openGolden(t, filepath.Join(dir, "batch.safetensors"))
	in, labels, pids = batch.i32("inputs"), batch.i32("labels"), batch.i32("puzzle_identifiers")
	if len(pids) != cfg.BatchSize {
		t.Fatalf("%s: batch has %d rows, config batch_size %d", dir, len(pids), cfg.BatchSize)
	}
	return gc, params, in, labels, pids
}

// goldenConfig is a case's model config and architecture.
type goldenConfig struct {
	engine.Config
	arch engine.ArchSettings
}

// RunGolden checks a backend against every golden case: one training step
// (outputs, new carry, losses, metrics, halting, every gradient) and three
// evaluation steps.
func RunGolden(t *testing.T, newBackend Factory) {
	for _, dir := range GoldenCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg, params, in, labels, pids := loadGoldenCase(t, dir)
			if meta := filepath.Join(dir, "meta.json"); fileExists(meta) {
				checkParamCount(t, meta, params)
			}
			t.Run("train_step", func(t *testing.T) {
				checkTrainStep(t, newBackend(), cfg, params, in, labels, pids, openGolden(t, filepath.Join(dir, "expected.safetensors")))
			})
			if p := filepath.Join(dir, "eval_steps.safetensors"); fileExists(p) {
				t.Run("eval_steps", func(t *testing.T) {
					checkEvalSteps(t, newBackend(), cfg, params, in, labels, pids, openGolden(t, p))
				})
			}
		})
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func newGoldenModel(t *testing.T, be engine.Backend, cfg goldenConfig, p *engine.Params, backward bool) *engine.Model {
	t.Helper()
	m, err := engine.NewModel(cfg.Config, be, engine.Options{Backward: backward, Arch: cfg.arch})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetParams(p); err != nil {
		t.Fatal(err)
	}
	return m
}

func checkTrainStep(t *testing.T, be engine.Backend, cfg goldenConfig, p *engine.Params, in, labels, pids []int32, want goldenFile) {
	m := newGoldenModel(t, be, cfg, p, true)
	if err := m.SetBatch(in, labels, pids); err != nil {
		t.Fatal(err)
	}
	c := m.NewCarry()
	if err := m.Step(c, engine.StepOptions{Train: true, Backward: true, GradScale: 1}); err != nil {
		t.Fatal(err)
	}
	r, err := m.Result(c, true)
	if err != nil {
		t.Fatal(err)
	}
	tol := OneStep
	tol.Check(t, "logits", f64(r.Logits), want.f64("logits"))
	tol.Check(t, "q_halt_logits", f64(r.QHalt), want.f64("q_halt_logits"))
	tol.Check(t, "q_continue_logits", f64(r.QContinue), want.f64("q_continue_logits"))
	Exact.Check(t, "preds", i64(r.Preds), want.f64("preds"))
	Exact.Check(t, "halted", i64(r.Halted), want.f64("halted"))
	Exact.Check(t, "steps", i64(r.Steps), want.f64("steps"))
	allHalted := 0.0
	if r.AllHalted() {
		allHalted = 1
	}
	Exact.Check(t, "all_halted", []float64{allHalted}, want.f64("all_halted"))
	checkMetrics(t, tol, "", r.Metrics(), want)

	checkCarry(t, tol, m, c, "", want)
	if want.has("debug.target_q_continue") {
		tol.Check(t, "debug.target_q_continue", f64(r.QTarget), want.f64("debug.target_q_continue"))
	}
	if want.has("debug.input_embeddings") {
		x, err := m.InputEmbeddings()
		if err != nil {
			t.Fatal(err)
		}
		tol.Check(t, "debug.input_embeddings", f64(x), want.f64("debug.input_embeddings"))
	}
	if want.has("debug.rope_cos") {
		cos, sin := engine.RopeTables(cfg.SeqTotal(), cfg.HeadDim(), cfg.RopeTheta)
		tol.Check(t, "debug.rope_cos", f64(cos), want.f64("debug.rope_cos"))
		tol.Check(t, "debug.rope_sin", f64(sin), want.f64("debug.rope_sin"))
	}

	grads, local, err := m.Gradients()
	if err != nil {
		t.Fatal(err)
	}
	gp := engine.NewParams(m.Layout)
	gp.Trained = grads
	checked := 0
	for _, e := range m.Layout.Entries {
		if e.Kind != engine.Trained {
			continue
		}
		tol.Check(t, "grad."+e.Key, f64(gp.View(e.Key)), want.f64("grad."+e.Key))
		checked++
	}
	if cfg.PuzzleEmbNdim > 0 {
		tol.Check(t, "grad.inner.puzzle_emb.local_weights", f64(local), want.f64("grad.inner.puzzle_emb.local_weights"))
		checked++
	}
	// Every gradient the reference wrote must have been compared.
	n := 0
	for k := range want.f.Tensors {
		if strings.HasPrefix(k, "grad.") {
			n++
		}
	}
	if n != checked {
		t.Errorf("compared %d gradients, the golden file has %d", checked, n)
	}
}

// Exact demands identical values (integers, predictions, flags).
var Exact = Tolerance{}

func checkMetrics(t *testing.T, tol Tolerance, prefix string, got engine.Metrics, want goldenFile) {
	t.Helper()
	tol.Check(t, prefix+"loss", []float64{got.Loss}, want.f64(prefix+"loss"))
	for _, k := range []struct {
		key string
		v   float64
	}{
		{"lm_loss", got.LMLoss}, {"q_halt_loss", got.QHaltLoss}, {"q_continue_loss", got.QContinueLoss},
	} {
		if want.has(prefix + k.key) {
			tol.Check(t, prefix+k.key, []float64{k.v}, want.f64(prefix+k.key))
		}
	}
	Exact.Check(t, prefix+"metrics.count", []float64{got.Count}, want.f64(prefix+"metrics.count"))
	Exact.Check(t, prefix+"metrics.exact_accuracy", []float64{got.ExactAccuracy}, want.f64(prefix+"metrics.exact_accuracy"))
	Exact.Check(t, prefix+"metrics.q_halt_accuracy", []float64{got.QHaltAccuracy}, want.f64(prefix+"metrics.q_halt_accuracy"))
	Exact.Check(t, prefix+"metrics.steps", []float64{got.Steps}, want.f64(prefix+"metrics.steps"))
	tol.Check(t, prefix+"metrics.accuracy", []float64{got.Accuracy}, want.f64(prefix+"metrics.accuracy"))
}

func checkEvalSteps(t *testing.T, be engine.Backend, cfg goldenConfig, p *engine.Params, in, labels, pids []int32, want goldenFile) {
	m := newGoldenModel(t, be, cfg, p, false)
	if err := m.SetBatch(in, labels, pids); err != nil {
		t.Fatal(err)
	}
	c := m.NewCarry()
	for k := 1; k <= 3; k++ {
		if err := m.Step(c, engine.StepOptions{}); err != nil {
			t.Fatal(err)
		}
		r, err := m.Result(c, true)
		if err != nil {
			t.Fatal(err)
		}
		// Rounding differences grow with each recursive step.
		tol := OneStep
		if k > 1 {
			tol = ThreeSteps
		}
		pre := "step" + string(rune('0'+k)) + "."
		tol.Check(t, pre+"logits", f64(r.Logits), want.f64(pre+"logits"))
		tol.Check(t, pre+"q_halt_logits", f64(r.QHalt), want.f64(pre+"q_halt_logits"))
		tol.Check(t, pre+"q_continue_logits", f64(r.QContinue), want.f64(pre+"q_continue_logits"))
		Exact.Check(t, pre+"halted", i64(r.Halted), want.f64(pre+"halted"))
		Exact.Check(t, pre+"steps", i64(r.Steps), want.f64(pre+"steps"))
		checkMetrics(t, tol, pre, r.Metrics(), want)
		if k == 3 {
			checkCarry(t, tol, m, c, "step3.", want)
		}
	}
}

// checkCarry compares every state of the carry with the golden file's key
// of the same name (the reference's carry field names), and requires the
// file to hold no carry field the model lacks.
func checkCarry(t *testing.T, tol Tolerance, m *engine.Model, c *engine.Carry, prefix string, want goldenFile) {
	t.Helper()
	zs, err := m.CarryStates(c)
	if err != nil {
		t.Fatal(err)
	}
	names := m.CarryFields()
	for i, name := range names {
		tol.Check(t, prefix+name, f64(zs[i]), want.f64(prefix+name))
	}
	for k := range want.f.Tensors {
		rest, ok := strings.CutPrefix(k, prefix+"z_")
		if ok && !strings.Contains(rest, ".") && !slices.Contains(names, "z_"+rest) {
			t.Errorf("golden carry field %s is not a state of the %s model (%v)", k, m.Arch(), names)
		}
	}
}

// checkParamCount compares the trained parameter count with the
// reference's num_parameters in the case's meta.json.
func checkParamCount(t *testing.T, path string, p *engine.Params) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		NumParameters *int `json:"num_parameters"`
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if meta.NumParameters != nil && *meta.NumParameters != len(p.Trained) {
		t.Errorf("%s: the model has %d trained parameters, the reference %d", path, len(p.Trained), *meta.NumParameters)
	}
}
