package promhook

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/cpu"
	"github.com/tinyrecursive/trm/trainer"
)

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		":9090":          "127.0.0.1:9090",
		"9090":           "127.0.0.1:9090",
		":0":             "127.0.0.1:0",
		"0.0.0.0:9100":   "0.0.0.0:9100",
		"[::1]:9090":     "[::1]:9090",
		"localhost:9090": "localhost:9090",
	} {
		got, err := ListenAddr(in)
		if err != nil || got != want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "localhost", ":http", ":70000", "1.2.3.4"} {
		if got, err := ListenAddr(in); err == nil {
			t.Errorf("ListenAddr(%q) = %q, want an error", in, got)
		}
	}
}

// stepResult is a hand-made batch of five examples across three
// supervision steps; the expected sums in TestStepFamilies follow from it.
func stepResult() *engine.StepResult {
	return &engine.StepResult{
		Steps:      []int32{1, 2, 2, 3, 3},
		Halted:     []int32{0, 0, 1, 1, 1},
		NValid:     []int32{4, 4, 4, 0, 2}, // example 3 is padding
		NCorrect:   []int32{2, 4, 3, 0, 2},
		SeqCorrect: []int32{0, 1, 0, 0, 1},
		LMLoss:     []float64{1, 0.5, 0.75, 9, 0.125},
		QHaltLoss:  []float64{0.5, 0.25, 1, 9, 0.0625},
		QContLoss:  []float64{0.125, 0.25, 0.25, 9, 0},
		QHalt:      []float32{-1, 2, 1, 9, 3},
	}
}

func runInfo() trainer.RunInfo {
	cfg := trainer.DefaultConfig()
	cfg.GlobalBatchSize, cfg.Epochs = 5, 10
	cfg.Arch.HaltMaxSteps, cfg.Arch.SeqLen = 3, 16
	return trainer.RunInfo{Config: cfg, TotalSteps: 40, StartStep: 0, Backend: "cpu", Params: 1234, StepsPerEpoch: 4}
}

func TestStepFamilies(t *testing.T) {
	var log bytes.Buffer
	e := New(Options{Run: "r1", NVMLLibrary: "/nonexistent/libnvidia-ml.so.1", Log: &log})
	defer e.Close()
	if !strings.Contains(log.String(), "GPU telemetry off") || strings.Count(log.String(), "\n") != 1 {
		t.Errorf("want one line saying GPU telemetry is off, got %q", log.String())
	}
	e.OnStart(runInfo())
	rep := &trainer.StepReport{Step: 2, Result: stepResult(), Info: trainer.StepInfo{LR: 1e-4, PuzzleLR: 1e-2, GradNorm: 0.5, Skipped: true},
		Compute: 30 * time.Millisecond, DataWait: 2 * time.Millisecond}
	rep.Metrics = rep.Result.Metrics()
	e.OnStep(rep)

	want := `
# HELP trm_train_lm_loss Per-example LM loss (mean cross-entropy per token) of training examples at their k-th supervision step: _sum/_count is the mean.
# TYPE trm_train_lm_loss summary
trm_train_lm_loss_sum{run="r1",sup_step="1"} 1
trm_train_lm_loss_count{run="r1",sup_step="1"} 1
trm_train_lm_loss_sum{run="r1",sup_step="2"} 1.25
trm_train_lm_loss_count{run="r1",sup_step="2"} 2
trm_train_lm_loss_sum{run="r1",sup_step="3"} 0.125
trm_train_lm_loss_count{run="r1",sup_step="3"} 1
# HELP trm_train_accuracy_ratio Per-example token accuracy of training examples at their k-th supervision step.
# TYPE trm_train_accuracy_ratio summary
trm_train_accuracy_ratio_sum{run="r1",sup_step="1"} 0.5
trm_train_accuracy_ratio_count{run="r1",sup_step="1"} 1
trm_train_accuracy_ratio_sum{run="r1",sup_step="2"} 1.75
trm_train_accuracy_ratio_count{run="r1",sup_step="2"} 2
trm_train_accuracy_ratio_sum{run="r1",sup_step="3"} 1
trm_train_accuracy_ratio_count{run="r1",sup_step="3"} 1
# HELP trm_train_exact_accuracy_ratio Exact accuracy (1 if every token is right) of training examples at their k-th supervision step.
# TYPE trm_train_exact_accuracy_ratio summary
trm_train_exact_accuracy_ratio_sum{run="r1",sup_step="1"} 0
trm_train_exact_accuracy_ratio_count{run="r1",sup_step="1"} 1
trm_train_exact_accuracy_ratio_sum{run="r1",sup_step="2"} 1
trm_train_exact_accuracy_ratio_count{run="r1",sup_step="2"} 2
trm_train_exact_accuracy_ratio_sum{run="r1",sup_step="3"} 1
trm_train_exact_accuracy_ratio_count{run="r1",sup_step="3"} 1
# HELP trm_train_q_halt_accuracy_ratio 1 where the halting logit sign agreed with correctness, for training examples at their k-th supervision step.
# TYPE trm_train_q_halt_accuracy_ratio summary
trm_train_q_halt_accuracy_ratio_sum{run="r1",sup_step="1"} 1
trm_train_q_halt_accuracy_ratio_count{run="r1",sup_step="1"} 1
trm_train_q_halt_accuracy_ratio_sum{run="r1",sup_step="2"} 1
trm_train_q_halt_accuracy_ratio_count{run="r1",sup_step="2"} 2
trm_train_q_halt_accuracy_ratio_sum{run="r1",sup_step="3"} 1
trm_train_q_halt_accuracy_ratio_count{run="r1",sup_step="3"} 1
# HELP trm_train_q_halt_loss Per-example halting (q_halt) loss of training examples at their k-th supervision step.
# TYPE trm_train_q_halt_loss summary
trm_train_q_halt_loss_sum{run="r1",sup_step="1"} 0.5
trm_train_q_halt_loss_count{run="r1",sup_step="1"} 1
trm_train_q_halt_loss_sum{run="r1",sup_step="2"} 1.25
trm_train_q_halt_loss_count{run="r1",sup_step="2"} 2
trm_train_q_halt_loss_sum{run="r1",sup_step="3"} 0.0625
trm_train_q_halt_loss_count{run="r1",sup_step="3"} 1
# HELP trm_train_q_continue_loss Per-example q_continue loss of training examples at their k-th supervision step (0 with no_ACT_continue).
# TYPE trm_train_q_continue_loss summary
trm_train_q_continue_loss_sum{run="r1",sup_step="1"} 0.125
trm_train_q_continue_loss_count{run="r1",sup_step="1"} 1
trm_train_q_continue_loss_sum{run="r1",sup_step="2"} 0.5
trm_train_q_continue_loss_count{run="r1",sup_step="2"} 2
trm_train_q_continue_loss_sum{run="r1",sup_step="3"} 0
trm_train_q_continue_loss_count{run="r1",sup_step="3"} 1
# HELP trm_train_halted_examples_total Training examples that halted after their k-th supervision step.
# TYPE trm_train_halted_examples_total counter
trm_train_halted_examples_total{run="r1",sup_step="1"} 0
trm_train_halted_examples_total{run="r1",sup_step="2"} 1
trm_train_halted_examples_total{run="r1",sup_step="3"} 1
# HELP trm_train_act_steps Supervision steps a training example ran before halting: _sum/_count is the mean ACT steps.
# TYPE trm_train_act_steps histogram
trm_train_act_steps_bucket{run="r1",le="1"} 0
trm_train_act_steps_bucket{run="r1",le="2"} 1
trm_train_act_steps_bucket{run="r1",le="3"} 2
trm_train_act_steps_bucket{run="r1",le="+Inf"} 2
trm_train_act_steps_sum{run="r1"} 5
trm_train_act_steps_count{run="r1"} 2
# HELP trm_train_skipped_steps_total Steps whose loss or gradient was not finite, so the update was skipped.
# TYPE trm_train_skipped_steps_total counter
trm_train_skipped_steps_total{run="r1"} 1
# HELP trm_train_examples_total Training examples this process stepped through (rate: examples/s).
# TYPE trm_train_examples_total counter
trm_train_examples_total{run="r1"} 5
# HELP trm_train_tokens_total Training tokens this process stepped through, examples times seq_len (rate: tokens/s).
# TYPE trm_train_tokens_total counter
trm_train_tokens_total{run="r1"} 80
# HELP trm_train_epoch Epochs done (fractional): steps over steps per epoch.
# TYPE trm_train_epoch gauge
trm_train_epoch{run="r1"} 0.5
# HELP trm_train_learning_rate Learning rate of the last step per optimizer: adam_atan2 (the trained weights) and sign_sgd (the puzzle embedding).
# TYPE trm_train_learning_rate gauge
trm_train_learning_rate{optimizer="adam_atan2",run="r1"} 0.0001
trm_train_learning_rate{optimizer="sign_sgd",run="r1"} 0.01
`
	names := []string{"trm_train_lm_loss", "trm_train_accuracy_ratio", "trm_train_exact_accuracy_ratio", "trm_train_q_halt_accuracy_ratio",
		"trm_train_q_halt_loss", "trm_train_q_continue_loss", "trm_train_halted_examples_total", "trm_train_act_steps",
		"trm_train_skipped_steps_total", "trm_train_examples_total", "trm_train_tokens_total", "trm_train_epoch", "trm_train_learning_rate"}
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	phases := map[string]float64{}
	for _, m := range family(t, e, "trm_train_step_duration_seconds").GetMetric() {
		if h := m.GetHistogram(); h.GetSampleCount() == 1 {
			phases[m.GetLabel()[0].GetValue()] = h.GetSampleSum()
		}
	}
	if len(phases) != 2 || phases["data_wait"] != 0.002 || phases["compute"] != 0.03 {
		t.Errorf("step duration observations by phase: %v, want data_wait 0.002 and compute 0.03", phases)
	}
	wantLoss := rep.Metrics.Loss / 5
	if got := testutil.ToFloat64(e.loss); got != wantLoss {
		t.Errorf("trm_train_loss = %g, want %g", got, wantLoss)
	}
	problems, err := testutil.GatherAndLint(e.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// family gathers one metric family of e's registry.
func family(t *testing.T, e *Exporter, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := e.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("no metric family %s", name)
	return nil
}

func TestEvalAndCheckpointFamilies(t *testing.T) {
	e := New(Options{Run: "r2", NVMLLibrary: "off"})
	e.OnStart(runInfo())
	e.OnEval(&trainer.EvalReport{
		Step: 8,
		Sets: map[string]*trainer.SetEval{"all": {Curve: trainer.StepCurve{Count: 4,
			Accuracy: []float64{0.5, 0.75, 1}, ExactAccuracy: []float64{0, 0.5, 1}, QHaltPositive: []float64{0, 0.25, 1}}}},
		Flat: map[string]float64{"all/accuracy": 0.875, "all/exact_accuracy": 0.75, "all/count": 4, "all/steps": 2.5,
			"all/lm_loss": 0.3, "all/q_halt_loss": 0.2, "all/q_halt_accuracy": 1, "ARC/pass@1": 0.25, "ARC/pass@2": 0.5},
		ARC: map[string]float64{"ARC/pass@1": 0.25, "ARC/pass@2": 0.5},
	})
	e.OnCheckpoint(trainer.CheckpointInfo{Step: 8, Dir: "x", Duration: 1500 * time.Millisecond})
	e.OnEnd(io.ErrUnexpectedEOF)
	want := `
# HELP trm_eval_exact_accuracy_ratio Fraction of the test set's examples entirely right at the last evaluation.
# TYPE trm_eval_exact_accuracy_ratio gauge
trm_eval_exact_accuracy_ratio{run="r2",set="all"} 0.75
# HELP trm_eval_act_steps Mean supervision steps per test example at the last evaluation.
# TYPE trm_eval_act_steps gauge
trm_eval_act_steps{run="r2",set="all"} 2.5
# HELP trm_eval_curve_exact_accuracy_ratio Fraction of test examples entirely right after each supervision step.
# TYPE trm_eval_curve_exact_accuracy_ratio gauge
trm_eval_curve_exact_accuracy_ratio{run="r2",set="all",sup_step="1"} 0
trm_eval_curve_exact_accuracy_ratio{run="r2",set="all",sup_step="2"} 0.5
trm_eval_curve_exact_accuracy_ratio{run="r2",set="all",sup_step="3"} 1
# HELP trm_eval_arc_pass_ratio ARC pass@k of the last evaluation: fraction of test puzzles solved by one of the k top-voted answers.
# TYPE trm_eval_arc_pass_ratio gauge
trm_eval_arc_pass_ratio{k="1",run="r2"} 0.25
trm_eval_arc_pass_ratio{k="2",run="r2"} 0.5
# HELP trm_eval_step Training step of the last evaluation.
# TYPE trm_eval_step gauge
trm_eval_step{run="r2"} 8
# HELP trm_checkpoint_last_duration_seconds Time the last checkpoint took to write.
# TYPE trm_checkpoint_last_duration_seconds gauge
trm_checkpoint_last_duration_seconds{run="r2"} 1.5
# HELP trm_checkpoints_total Checkpoints written by this process.
# TYPE trm_checkpoints_total counter
trm_checkpoints_total{run="r2"} 1
# HELP trm_run_failed 1 if the run ended with an error.
# TYPE trm_run_failed gauge
trm_run_failed{run="r2"} 1
# HELP trm_run_running 1 while the run trains, 0 after it ended.
# TYPE trm_run_running gauge
trm_run_running{run="r2"} 0
`
	names := []string{"trm_eval_exact_accuracy_ratio", "trm_eval_act_steps", "trm_eval_curve_exact_accuracy_ratio", "trm_eval_arc_pass_ratio",
		"trm_eval_step", "trm_checkpoint_last_duration_seconds", "trm_checkpoints_total", "trm_run_failed", "trm_run_running"}
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if age := float64(time.Now().UnixNano())/1e9 - testutil.ToFloat64(e.ckptTime); age < 0 || age > 60 {
		t.Errorf("checkpoint timestamp is %gs old", age)
	}
	// A set without early exit has no steps_saved series.
	if n, _ := testutil.GatherAndCount(e.Registry(), "trm_eval_steps_saved_ratio"); n != 0 {
		t.Errorf("trm_eval_steps_saved_ratio has %d series, want 0", n)
	}
}

// memBackend is a CPU backend that also reports device memory, as a GPU
// backend would.
type memBackend struct{ engine.Backend }

func (memBackend) DeviceMemory() (uint64, uint64) { return 3 << 20, 8 << 20 }

func (memBackend) Name() string { return "cuda:0" }

func TestEngineMemoryAndServe(t *testing.T) {
	e := New(Options{Run: "r3", NVMLLibrary: "off", Backend: memBackend{cpu.New(1)}})
	want := `
# HELP trm_gpu_engine_memory_bytes Accelerator memory the engine's backend holds: state in_use by live buffers or reserved from the driver.
# TYPE trm_gpu_engine_memory_bytes gauge
trm_gpu_engine_memory_bytes{device="cuda:0",run="r3",state="in_use"} 3.145728e+06
trm_gpu_engine_memory_bytes{device="cuda:0",run="r3",state="reserved"} 8.388608e+06
`
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(want), "trm_gpu_engine_memory_bytes"); err != nil {
		t.Error(err)
	}
	// In a multi-process job the GPU families carry the process's rank.
	ranked := New(Options{Run: "r3", NVMLLibrary: "off", Backend: memBackend{cpu.New(1)}, Rank: "5"})
	wantRanked := strings.ReplaceAll(want, `run="r3",`, `rank="5",run="r3",`)
	if err := testutil.GatherAndCompare(ranked.Registry(), strings.NewReader(wantRanked), "trm_gpu_engine_memory_bytes"); err != nil {
		t.Error(err)
	}
	// A plain CPU backend reports no engine memory.
	if n, _ := testutil.GatherAndCount(New(Options{NVMLLibrary: "off", Backend: cpu.New(1)}).Registry(), "trm_gpu_engine_memory_bytes"); n != 0 {
		t.Errorf("CPU backend: %d engine memory series, want 0", n)
	}

	e.OnStart(runInfo())
	srv, err := e.Serve(":0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %s: want loopback", srv.URL())
	}
	resp, err := http.Get(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range []string{`trm_train_total_steps{run="r3"} 40`, "trm_build_info{", "go_goroutines ", "process_cpu_seconds_total ", `backend="cpu",run="r3"} 1`} {
		if !strings.Contains(string(body), s) {
			t.Errorf("scrape lacks %q", s)
		}
	}
	if _, err := e.Serve(srv.Addr().String()); err == nil {
		t.Error("serving twice on one port: want an error")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(srv.URL()); err == nil {
		t.Error("server still answers after Shutdown")
	}
}

// graphBackend stands for a backend that replays CUDA graphs and counts
// the captures that failed.
type graphBackend struct {
	engine.Backend
	failures *int64
}

func (g graphBackend) GraphCaptureFailures() int64 { return *g.failures }

func (graphBackend) Name() string { return "cuda:1" }

func TestGraphCaptureFailures(t *testing.T) {
	var n int64
	e := New(Options{Run: "r4", NVMLLibrary: "off", Backend: graphBackend{cpu.New(1), &n}})
	const head = `
# HELP trm_cuda_graph_capture_failures_total CUDA graph captures that failed; each failed sequence of ops runs eagerly from then on (slower, never wrong).
# TYPE trm_cuda_graph_capture_failures_total counter
`
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(head+`trm_cuda_graph_capture_failures_total{device="cuda:1",run="r4"} 0
`), "trm_cuda_graph_capture_failures_total"); err != nil {
		t.Error(err)
	}
	// Read at scrape time: a later failure shows at the next scrape.
	n = 2
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(head+`trm_cuda_graph_capture_failures_total{device="cuda:1",run="r4"} 2
`), "trm_cuda_graph_capture_failures_total"); err != nil {
		t.Error(err)
	}
	if c, _ := testutil.GatherAndCount(New(Options{NVMLLibrary: "off", Backend: cpu.New(1)}).Registry(), "trm_cuda_graph_capture_failures_total"); c != 0 {
		t.Errorf("CPU backend: %d capture-failure series, want 0", c)
	}
}
