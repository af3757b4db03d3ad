// Package promhook exports a training run to Prometheus: a trainer.Hook
// that turns step, evaluation and checkpoint reports into metric
// families, plus NVML GPU telemetry, build information and the Go runtime
// and process collectors, served over HTTP for a Prometheus server to
// scrape.
//
// Every family starts with trm_ and follows Prometheus naming: base units
// (seconds, bytes, ratios in [0, 1]), _total for counters. The families
// of the run carry a run label; those that depend on the depth of
// recursion carry sup_step (1..halt_max_steps).
//
// Per-example quantities are exported as sums and counts (summaries
// without quantiles) rather than as the last batch's mean: Prometheus
// samples every few seconds while a step takes milliseconds, so a gauge
// would show one batch in hundreds, whereas
//
//	rate(trm_train_lm_loss_sum[1m]) / rate(trm_train_lm_loss_count[1m])
//
// is the exact mean over every example of the last minute.
package promhook

import (
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tinyrecursive/trm/device"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/trainer"
)

// Options configure an Exporter.
type Options struct {
	// Run is the value of the run label on every family of the run, so
	// several runs can share one Prometheus (default "default").
	Run string
	// Backend, when it implements DeviceMemoryReporter, adds the engine's
	// own device memory.
	Backend engine.Backend
	// NVMLLibrary is the NVML library to load (default
	// device.DefaultNVMLLibrary); "off" disables GPU telemetry.
	NVMLLibrary string
	// Log receives the one line saying GPU telemetry is off (nil: none).
	Log io.Writer
	// Rank, in a multi-process job, is this process's rank: the GPU
	// families (NVML and the engine's memory) carry it as a rank label,
	// so every rank's GPUs can be told apart on one dashboard.
	Rank string
	// Linger is how long Endpoint.Stop keeps serving after the run ended,
	// so that Prometheus scrapes the final evaluation and
	// trm_run_running 0 before the process exits. It ends early at the
	// first scrape begun after the end, or when Stop's context is done
	// (Start's stop: a SIGINT or SIGTERM). 0: no linger (tests; a run
	// whose final state only a Pushgateway needs). Command lines default
	// to DefaultLinger.
	Linger time.Duration
	// PushURL, if set, is a Prometheus Pushgateway (e.g.
	// http://pushgateway:9091) that Endpoint.Stop pushes the run's final
	// state to: every trm_ family, grouped by job PushJob and the run
	// label (see Push).
	PushURL string
	// PushJob is the job grouping label of the push (default
	// DefaultPushJob).
	PushJob string
}

// DefaultLinger is the linger command lines use: two scrape intervals of
// 15 s (a common Kubernetes setting; deploy/prometheus scrapes every 5 s).
// The linger ends at the first scrape after the end, so a scraped run
// waits one interval at most.
const DefaultLinger = 30 * time.Second

// DefaultPushJob is the Pushgateway job label when Options.PushJob is
// empty.
const DefaultPushJob = "trm-train"

// DeviceMemoryReporter is implemented by a backend that can say how much
// device memory it holds. NVML's memory figure counts every process on
// the GPU; this one is the engine's own share: in use by live buffers and
// reserved from the driver (an arena that never frees reserves more than
// it uses).
type DeviceMemoryReporter interface {
	DeviceMemory() (inUse, reserved uint64)
}

// GraphCaptureReporter is implemented by a backend that replays recorded
// op sequences as CUDA graphs: it counts the captures that failed, which
// the exporter publishes as trm_cuda_graph_capture_failures_total (a
// failed capture is logged once and the sequence runs eagerly, so this
// counter is how a slow run shows why).
type GraphCaptureReporter interface {
	GraphCaptureFailures() int64
}

// Exporter is a trainer.Hook publishing the run to its own registry.
type Exporter struct {
	reg  *prometheus.Registry
	nvml *device.NVML

	// progress
	step, totalSteps, epoch, epochs *prometheus.GaugeVec
	steps, examples, tokens         *prometheus.CounterVec
	stepSeconds                     *prometheus.HistogramVec
	// optimizer
	lr, gradNorm, updateNorm, loss *prometheus.GaugeVec
	skipped                        *prometheus.CounterVec
	// run
	runInfo, params, running, failed, startTime, endTime *prometheus.GaugeVec
	// evaluation
	evalSet     map[string]*prometheus.GaugeVec // by reference suffix: accuracy, exact_accuracy, ...
	evalCurve   map[string]*prometheus.GaugeVec
	arcPass     *prometheus.GaugeVec
	evalStep    *prometheus.GaugeVec
	evalTime    *prometheus.GaugeVec
	evals       *prometheus.CounterVec
	evalSeconds *prometheus.GaugeVec
	// checkpoints
	ckptSeconds, ckptTime, ckptStep *prometheus.GaugeVec
	ckpts                           *prometheus.CounterVec

	sup *supCollector

	opt Options
	// final is closed by the first scrape that begins after OnEnd.
	final     chan struct{}
	finalOnce sync.Once

	mu          sync.Mutex
	ended       time.Time // when OnEnd ran; zero while the run trains
	run         string
	seqLen      int
	globalBatch int
	stepsPerEp  float64
	lastStepEnd time.Time
}

// Names of the per-set evaluation gauges, keyed by the suffix of the
// reference's flat metric name (set/suffix) they publish.
var evalSetFamilies = []struct{ suffix, name, help string }{
	{"accuracy", "trm_eval_accuracy_ratio", "Mean per-example token accuracy of the last evaluation of a test set (the final or early-exit supervision step)."},
	{"exact_accuracy", "trm_eval_exact_accuracy_ratio", "Fraction of the test set's examples entirely right at the last evaluation."},
	{"q_halt_accuracy", "trm_eval_q_halt_accuracy_ratio", "Fraction of test examples whose halting logit sign agreed with their correctness."},
	{"lm_loss", "trm_eval_lm_loss", "Mean per-example LM loss (cross-entropy per token) on the test set at the last evaluation."},
	{"q_halt_loss", "trm_eval_q_halt_loss", "Mean per-example halting loss on the test set at the last evaluation."},
	{"steps", "trm_eval_act_steps", "Mean supervision steps per test example at the last evaluation."},
	{"count", "trm_eval_examples", "Test examples evaluated in the last evaluation."},
	{"steps_saved_fraction", "trm_eval_steps_saved_ratio", "Fraction of supervision steps that eval_early_exit saved."},
}

var evalCurveFamilies = []struct{ key, name, help string }{
	{"accuracy", "trm_eval_curve_accuracy_ratio", "Mean token accuracy of every test example after each supervision step (how answers improve with recursion)."},
	{"exact_accuracy", "trm_eval_curve_exact_accuracy_ratio", "Fraction of test examples entirely right after each supervision step."},
	{"q_halt_positive", "trm_eval_curve_q_halt_positive_ratio", "Fraction of test examples whose halting logit is positive after each supervision step."},
}

// New builds an exporter with its registry: the run's families, build
// information, the Go and process collectors, and GPU telemetry when NVML
// opens (otherwise one line to opt.Log says why it is off).
func New(opt Options) *Exporter {
	if opt.Run == "" {
		opt.Run = "default"
	}
	if opt.PushJob == "" {
		opt.PushJob = DefaultPushJob
	}
	e := &Exporter{reg: prometheus.NewRegistry(), opt: opt, final: make(chan struct{}), run: opt.Run, evalSet: map[string]*prometheus.GaugeVec{}, evalCurve: map[string]*prometheus.GaugeVec{}}
	// The run label is added by wrapping, so no family declares it and
	// none can forget it.
	runReg := prometheus.WrapRegistererWith(prometheus.Labels{"run": opt.Run}, e.reg)
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		runReg.MustRegister(g)
		return g
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		runReg.MustRegister(c)
		return c
	}
	e.step = gauge("trm_train_step", "Training steps (batches) done, resumed steps included.")
	e.totalSteps = gauge("trm_train_total_steps", "Training steps the run will take.")
	e.epoch = gauge("trm_train_epoch", "Epochs done (fractional): steps over steps per epoch.")
	e.epochs = gauge("trm_train_epochs", "Epochs the config asks for.")
	e.steps = counter("trm_train_steps_total", "Training steps taken by this process.")
	e.examples = counter("trm_train_examples_total", "Training examples this process stepped through (rate: examples/s).")
	e.tokens = counter("trm_train_tokens_total", "Training tokens this process stepped through, examples times seq_len (rate: tokens/s).")
	e.stepSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "trm_train_step_duration_seconds",
		Help:    "Time of one training step by phase: data_wait (waiting for the batch) and compute (forward, backward, optimizer).",
		Buckets: prometheus.ExponentialBucketsRange(1e-5, 100, 22),
	}, []string{"phase"})
	runReg.MustRegister(e.stepSeconds)
	e.lr = gauge("trm_train_learning_rate", "Learning rate of the last step per optimizer: adam_atan2 (the trained weights) and sign_sgd (the puzzle embedding).", "optimizer")
	e.gradNorm = gauge("trm_train_grad_norm", "L2 norm of the trained-parameter gradient at the last step (after the 1/global batch scale).")
	e.updateNorm = gauge("trm_train_update_norm", "L2 norm of the change of the trained parameters at the last step (weight decay included).")
	e.loss = gauge("trm_train_loss", "The reference's train/loss of the last step: (lm + 0.5 (q_halt + q_continue)) summed over the batch over the global batch size.")
	e.skipped = counter("trm_train_skipped_steps_total", "Steps whose loss or gradient was not finite, so the update was skipped.")
	e.runInfo = gauge("trm_run_info", "Always 1; labels describe the run.", "backend", "arch")
	e.params = gauge("trm_model_parameters", "Trained parameters of the model (the puzzle embedding excluded).")
	e.running = gauge("trm_run_running", "1 while the run trains, 0 after it ended.")
	e.failed = gauge("trm_run_failed", "1 if the run ended with an error.")
	e.startTime = gauge("trm_run_start_timestamp_seconds", "Unix time the run (this process) started training.")
	e.endTime = gauge("trm_run_end_timestamp_seconds", "Unix time the run ended (absent while it trains).")
	for _, f := range evalSetFamilies {
		e.evalSet[f.suffix] = gauge(f.name, f.help, "set")
	}
	for _, f := range evalCurveFamilies {
		e.evalCurve[f.key] = gauge(f.name, f.help, "set", "sup_step")
	}
	e.arcPass = gauge("trm_eval_arc_pass_ratio", "ARC pass@k of the last evaluation: fraction of test puzzles solved by one of the k top-voted answers.", "k")
	e.evalStep = gauge("trm_eval_step", "Training step of the last evaluation.")
	e.evalTime = gauge("trm_eval_last_timestamp_seconds", "Unix time of the last evaluation report.")
	e.evalSeconds = gauge("trm_eval_duration_seconds", "Time from the last training step of the pass to the evaluation report (the evaluation itself).")
	e.evals = counter("trm_evals_total", "Evaluations run by this process.")
	e.ckptSeconds = gauge("trm_checkpoint_last_duration_seconds", "Time the last checkpoint took to write.")
	e.ckptTime = gauge("trm_checkpoint_last_timestamp_seconds", "Unix time of the last checkpoint (age: time() minus this).")
	e.ckptStep = gauge("trm_checkpoint_last_step", "Training step of the last checkpoint.")
	e.ckpts = counter("trm_checkpoints_total", "Checkpoints written by this process.")
	e.sup = &supCollector{}
	runReg.MustRegister(e.sup)
	gpuReg := prometheus.Registerer(e.reg)
	if opt.Rank != "" {
		gpuReg = prometheus.WrapRegistererWith(prometheus.Labels{"rank": opt.Rank}, e.reg)
	}
	if r, ok := opt.Backend.(DeviceMemoryReporter); ok {
		reg := runReg
		if opt.Rank != "" {
			reg = prometheus.WrapRegistererWith(prometheus.Labels{"rank": opt.Rank}, runReg)
		}
		reg.MustRegister(&engineMemCollector{r: r, device: opt.Backend.Name()})
	}
	if r, ok := opt.Backend.(GraphCaptureReporter); ok {
		reg := runReg
		if opt.Rank != "" {
			reg = prometheus.WrapRegistererWith(prometheus.Labels{"rank": opt.Rank}, runReg)
		}
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "trm_cuda_graph_capture_failures_total",
			Help:        "CUDA graph captures that failed; each failed sequence of ops runs eagerly from then on (slower, never wrong).",
			ConstLabels: prometheus.Labels{"device": opt.Backend.Name()},
		}, func() float64 { return float64(r.GraphCaptureFailures()) }))
	}

	e.reg.MustRegister(newBuildInfo(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opt.NVMLLibrary != "off" {
		h, err := device.OpenNVML(opt.NVMLLibrary)
		if err != nil {
			if opt.Log != nil {
				fmt.Fprintf(opt.Log, "metrics: GPU telemetry off: %v\n", err)
			}
		} else {
			e.nvml = h
			gpuReg.MustRegister(newGPUCollector(h))
		}
	}
	return e
}

// Registry is the exporter's registry (for tests, or to add families).
func (e *Exporter) Registry() *prometheus.Registry { return e.reg }

// GPUs is the number of devices GPU telemetry reports (0 when off).
func (e *Exporter) GPUs() int {
	if e.nvml == nil {
		return 0
	}
	return e.nvml.Count()
}

// Close releases NVML. The registry stays readable.
func (e *Exporter) Close() error {
	if e.nvml != nil {
		return e.nvml.Close()
	}
	return nil
}

// OnStart implements trainer.Hook: it sets the run's constants and
// creates every series at zero, so rates and dashboards have a series
// from the first scrape rather than from the first event.
func (e *Exporter) OnStart(ri trainer.RunInfo) {
	e.mu.Lock()
	e.seqLen, e.globalBatch, e.stepsPerEp = ri.Config.Arch.SeqLen, ri.Config.GlobalBatchSize, ri.StepsPerEpoch
	e.lastStepEnd = time.Now()
	e.mu.Unlock()
	e.runInfo.Reset()
	e.runInfo.WithLabelValues(ri.Backend, archName(ri.Config.Arch)).Set(1)
	e.params.WithLabelValues().Set(float64(ri.Params))
	e.running.WithLabelValues().Set(1)
	e.failed.WithLabelValues().Set(0)
	e.endTime.Reset()
	e.startTime.WithLabelValues().SetToCurrentTime()
	e.totalSteps.WithLabelValues().Set(float64(ri.TotalSteps))
	e.step.WithLabelValues().Set(float64(ri.StartStep))
	e.epochs.WithLabelValues().Set(float64(ri.Config.Epochs))
	e.epoch.WithLabelValues().Set(e.epochOf(ri.StartStep))
	e.steps.WithLabelValues()
	e.examples.WithLabelValues()
	e.tokens.WithLabelValues()
	e.skipped.WithLabelValues()
	e.evals.WithLabelValues()
	e.ckpts.WithLabelValues()
	e.stepSeconds.WithLabelValues("data_wait")
	e.stepSeconds.WithLabelValues("compute")
	e.sup.start(ri.Config.Arch.HaltMaxSteps)
}

// archName is a short description of the model for the info label.
func archName(a engine.Config) string {
	kind := "attention"
	if a.MLPT {
		kind = "mlp"
	}
	return fmt.Sprintf("%s_h%d_L%d_H%dx%d", kind, a.HiddenSize, a.LLayers, a.HCycles, a.LCycles)
}

func (e *Exporter) epochOf(step int) float64 {
	if e.stepsPerEp <= 0 {
		return 0
	}
	return float64(step) / e.stepsPerEp
}

// OnStep implements trainer.Hook.
func (e *Exporter) OnStep(r *trainer.StepReport) {
	e.mu.Lock()
	seqLen, gb := e.seqLen, e.globalBatch
	e.lastStepEnd = time.Now()
	epoch := e.epochOf(r.Step)
	e.mu.Unlock()
	b := 0
	if r.Result != nil {
		b = len(r.Result.Halted)
		e.sup.add(r.Result)
	}
	e.step.WithLabelValues().Set(float64(r.Step))
	e.epoch.WithLabelValues().Set(epoch)
	e.steps.WithLabelValues().Inc()
	e.examples.WithLabelValues().Add(float64(b))
	e.tokens.WithLabelValues().Add(float64(b * seqLen))
	e.stepSeconds.WithLabelValues("data_wait").Observe(r.DataWait.Seconds())
	e.stepSeconds.WithLabelValues("compute").Observe(r.Compute.Seconds())
	e.lr.WithLabelValues("adam_atan2").Set(r.Info.LR)
	e.lr.WithLabelValues("sign_sgd").Set(r.Info.PuzzleLR)
	e.gradNorm.WithLabelValues().Set(r.Info.GradNorm)
	e.updateNorm.WithLabelValues().Set(r.Info.UpdateNorm)
	if gb > 0 {
		e.loss.WithLabelValues().Set(r.Metrics.Loss / float64(gb))
	}
	if r.Info.Skipped {
		e.skipped.WithLabelValues().Inc()
	}
}

// OnEval implements trainer.Hook: every set's summary metrics and
// per-step curve, and ARC pass@k.
func (e *Exporter) OnEval(r *trainer.EvalReport) {
	e.mu.Lock()
	since := time.Since(e.lastStepEnd)
	e.mu.Unlock()
	for name, se := range r.Sets {
		for _, f := range evalSetFamilies {
			if v, ok := r.Flat[name+"/"+f.suffix]; ok {
				e.evalSet[f.suffix].WithLabelValues(name).Set(v)
			}
		}
		curves := map[string][]float64{"accuracy": se.Curve.Accuracy, "exact_accuracy": se.Curve.ExactAccuracy, "q_halt_positive": se.Curve.QHaltPositive}
		for key, vals := range curves {
			for k, v := range vals {
				e.evalCurve[key].WithLabelValues(name, strconv.Itoa(k+1)).Set(v)
			}
		}
	}
	for key, v := range r.ARC {
		// Keys are the reference's "ARC/pass@K".
		if _, k, ok := strings.Cut(key, "pass@"); ok {
			e.arcPass.WithLabelValues(k).Set(v)
		}
	}
	e.evalStep.WithLabelValues().Set(float64(r.Step))
	e.evalTime.WithLabelValues().SetToCurrentTime()
	e.evalSeconds.WithLabelValues().Set(since.Seconds())
	e.evals.WithLabelValues().Inc()
}

// OnCheckpoint implements trainer.Hook.
func (e *Exporter) OnCheckpoint(c trainer.CheckpointInfo) {
	e.ckptSeconds.WithLabelValues().Set(c.Duration.Seconds())
	e.ckptTime.WithLabelValues().SetToCurrentTime()
	e.ckptStep.WithLabelValues().Set(float64(c.Step))
	e.ckpts.WithLabelValues().Inc()
}

// OnEnd implements trainer.Hook. The server keeps serving the final
// values until Endpoint.Stop, which lingers for a last scrape and pushes
// them (Options.Linger, Options.PushURL).
func (e *Exporter) OnEnd(err error) {
	e.running.WithLabelValues().Set(0)
	if err != nil {
		e.failed.WithLabelValues().Set(1)
	}
	e.endTime.WithLabelValues().SetToCurrentTime()
	e.mu.Lock()
	e.ended = time.Now()
	e.mu.Unlock()
}

// Ended reports whether the run ended (OnEnd ran).
func (e *Exporter) Ended() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.ended.IsZero()
}

// scraped notes a scrape that began at t: one begun after the end has
// read the final state.
func (e *Exporter) scraped(t time.Time) {
	e.mu.Lock()
	final := !e.ended.IsZero() && !t.Before(e.ended)
	e.mu.Unlock()
	if final {
		e.finalOnce.Do(func() { close(e.final) })
	}
}

// supCollector accumulates the per-supervision-step sums of every
// training step and exposes them as summaries (sum and count), the
// halting counts as a counter and as the ACT-steps histogram. It is one
// collector rather than a dozen metric vectors so a step's update is a
// single locked pass over halt_max_steps slots.
type supCollector struct {
	mu       sync.Mutex
	examples []uint64
	halted   []uint64
	sums     [numSupSums][]float64
}

// The per-example quantities summed per supervision step, in the order
// of supSumDescs.
const (
	supLM = iota
	supQHalt
	supQCont
	supAcc
	supExact
	supQHaltAcc
	numSupSums
)

var (
	supSumDescs = [numSupSums]*prometheus.Desc{
		supLM:       prometheus.NewDesc("trm_train_lm_loss", "Per-example LM loss (mean cross-entropy per token) of training examples at their k-th supervision step: _sum/_count is the mean.", []string{"sup_step"}, nil),
		supQHalt:    prometheus.NewDesc("trm_train_q_halt_loss", "Per-example halting (q_halt) loss of training examples at their k-th supervision step.", []string{"sup_step"}, nil),
		supQCont:    prometheus.NewDesc("trm_train_q_continue_loss", "Per-example q_continue loss of training examples at their k-th supervision step (0 with no_ACT_continue).", []string{"sup_step"}, nil),
		supAcc:      prometheus.NewDesc("trm_train_accuracy_ratio", "Per-example token accuracy of training examples at their k-th supervision step.", []string{"sup_step"}, nil),
		supExact:    prometheus.NewDesc("trm_train_exact_accuracy_ratio", "Exact accuracy (1 if every token is right) of training examples at their k-th supervision step.", []string{"sup_step"}, nil),
		supQHaltAcc: prometheus.NewDesc("trm_train_q_halt_accuracy_ratio", "1 where the halting logit sign agreed with correctness, for training examples at their k-th supervision step.", []string{"sup_step"}, nil),
	}
	haltedDesc   = prometheus.NewDesc("trm_train_halted_examples_total", "Training examples that halted after their k-th supervision step.", []string{"sup_step"}, nil)
	actStepsDesc = prometheus.NewDesc("trm_train_act_steps", "Supervision steps a training example ran before halting: _sum/_count is the mean ACT steps.", nil, nil)
)

func (c *supCollector) start(maxSteps int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.examples) == maxSteps {
		return
	}
	c.examples, c.halted = make([]uint64, maxSteps), make([]uint64, maxSteps)
	for i := range c.sums {
		c.sums[i] = make([]float64, maxSteps)
	}
}

func (c *supCollector) add(r *engine.StepResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.examples)
	if n == 0 {
		return
	}
	for k, s := range trainer.SupSteps(r, n) {
		c.examples[k] += uint64(s.Examples)
		c.halted[k] += uint64(s.Halted)
		c.sums[supLM][k] += s.LMLoss
		c.sums[supQHalt][k] += s.QHaltLoss
		c.sums[supQCont][k] += s.QContinueLoss
		c.sums[supAcc][k] += s.Accuracy
		c.sums[supExact][k] += s.ExactAccuracy
		c.sums[supQHaltAcc][k] += s.QHaltAccuracy
	}
}

// Describe implements prometheus.Collector.
func (c *supCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range supSumDescs {
		ch <- d
	}
	ch <- haltedDesc
	ch <- actStepsDesc
}

// Collect implements prometheus.Collector.
func (c *supCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.examples)
	if n == 0 {
		return
	}
	buckets := map[float64]uint64{}
	var cum, count uint64
	var sum float64
	for k := range n {
		ks := strconv.Itoa(k + 1)
		for i, d := range supSumDescs {
			ch <- prometheus.MustNewConstSummary(d, c.examples[k], c.sums[i][k], nil, ks)
		}
		ch <- prometheus.MustNewConstMetric(haltedDesc, prometheus.CounterValue, float64(c.halted[k]), ks)
		cum += c.halted[k]
		buckets[float64(k+1)] = cum
		count += c.halted[k]
		sum += float64(k+1) * float64(c.halted[k])
	}
	ch <- prometheus.MustNewConstHistogram(actStepsDesc, count, sum, buckets)
}

// engineMemCollector publishes a backend's own device memory at scrape
// time. The family sits under trm_gpu_ because only accelerator backends
// report it: a CPU run has none, like the NVML families.
type engineMemCollector struct {
	r      DeviceMemoryReporter
	device string
}

var (
	engineMemDesc = prometheus.NewDesc("trm_gpu_engine_memory_bytes", "Accelerator memory the engine's backend holds: state in_use by live buffers or reserved from the driver.", []string{"device", "state"}, nil)
)

// Describe implements prometheus.Collector.
func (c *engineMemCollector) Describe(ch chan<- *prometheus.Desc) { ch <- engineMemDesc }

// Collect implements prometheus.Collector.
func (c *engineMemCollector) Collect(ch chan<- prometheus.Metric) {
	used, reserved := c.r.DeviceMemory()
	ch <- prometheus.MustNewConstMetric(engineMemDesc, prometheus.GaugeValue, float64(used), c.device, "in_use")
	ch <- prometheus.MustNewConstMetric(engineMemDesc, prometheus.GaugeValue, float64(reserved), c.device, "reserved")
}

// gpuCollector reads NVML at scrape time, so the values are as fresh as
// the scrape and nothing polls between scrapes.
type gpuCollector struct {
	h     *device.NVML
	descs [6]*prometheus.Desc
}

func newGPUCollector(h *device.NVML) *gpuCollector {
	l := []string{"index", "uuid", "name"}
	return &gpuCollector{h: h, descs: [6]*prometheus.Desc{
		prometheus.NewDesc("trm_gpu_utilization_ratio", "Fraction of the last NVML sample period during which a kernel ran on the GPU.", l, nil),
		prometheus.NewDesc("trm_gpu_memory_used_bytes", "GPU memory in use by every process on the device.", l, nil),
		prometheus.NewDesc("trm_gpu_memory_total_bytes", "GPU memory installed.", l, nil),
		prometheus.NewDesc("trm_gpu_temperature_celsius", "GPU die temperature.", l, nil),
		prometheus.NewDesc("trm_gpu_power_watts", "Board power draw.", l, nil),
		prometheus.NewDesc("trm_gpu_sm_clock_hertz", "Current streaming-multiprocessor clock.", l, nil),
	}}
}

// Describe implements prometheus.Collector.
func (c *gpuCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector; a field the device does not
// report (NaN) is left out rather than published as a value.
func (c *gpuCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.h.Sample() {
		for i, v := range []float64{s.Utilization, s.MemoryUsed, s.MemoryTotal, s.Temperature, s.Power, s.SMClock} {
			if math.IsNaN(v) {
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.GaugeValue, v, strconv.Itoa(s.Index), s.UUID, s.Name)
		}
	}
}

// newBuildInfo is trm_build_info: the module version, VCS revision and
// Go version of the binary, read from its embedded build information.
func newBuildInfo() prometheus.Collector {
	version, revision, modified, goVersion := "unknown", "unknown", "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "trm_build_info",
		Help:        "Always 1; labels give the trm-train build (revision is unknown when built with -buildvcs=false).",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "modified": modified, "goversion": goVersion},
	})
	g.Set(1)
	return g
}
