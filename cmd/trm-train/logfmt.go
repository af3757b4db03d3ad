package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/tinyrecursive/trm/trainer"
)

// Log formats of train's progress and log lines (--log-format).
const (
	logText = "text" // the human-readable lines of trainer.ProgressHook
	logJSON = "json" // one JSON object per line (log/slog), for cloud log pipelines
)

// checkLogFormat validates a --log-format value.
func checkLogFormat(s string) error {
	if s != logText && s != logJSON {
		return usageErrorf("--log-format %q: want %s or %s", s, logText, logJSON)
	}
	return nil
}

// newJSONLogger is the structured logger of --log-format json: one JSON
// object per line on w with time, level and msg, as Cloud Logging,
// CloudWatch, Loki and Elasticsearch ingest without a parser of ours.
func newJSONLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// slogHook reports a run as structured records: "start", "progress"
// (at most every Every, and at the last step), "evaluation",
// "checkpoint" and "end", with the figures the text lines show as
// numbers a log pipeline can query.
type slogHook struct {
	trainer.NopHook
	log   *slog.Logger
	Every time.Duration

	total, startStep, globalBatch int
	stepsPerEpoch                 float64
	start, last                   time.Time
	step                          int
	sumLoss, sumExact, sumCount   float64
	n                             int
}

// OnStart implements trainer.Hook.
func (h *slogHook) OnStart(ri trainer.RunInfo) {
	h.total, h.startStep, h.globalBatch, h.stepsPerEpoch = ri.TotalSteps, ri.StartStep, ri.Config.GlobalBatchSize, ri.StepsPerEpoch
	h.start, h.step = time.Now(), ri.StartStep
	attrs := []any{"total_steps", ri.TotalSteps, "start_step", ri.StartStep, "backend", ri.Backend, "params", ri.Params,
		"global_batch_size", ri.Config.GlobalBatchSize, "train_sets", ri.TrainSets, "test_sets", ri.TestSets}
	if ri.RunLabel != "" {
		attrs = append(attrs, "run", ri.RunLabel)
	}
	if ri.RunDir != "" {
		attrs = append(attrs, "run_dir", ri.RunDir)
	}
	if ri.ResumedFrom != "" {
		attrs = append(attrs, "resumed_from", ri.ResumedFrom)
	}
	h.log.Info("start", attrs...)
}

// OnStep implements trainer.Hook.
func (h *slogHook) OnStep(r *trainer.StepReport) {
	h.step = r.Step
	h.sumLoss += r.Metrics.Loss / float64(max(h.globalBatch, 1))
	h.sumExact += r.Metrics.ExactAccuracy
	h.sumCount += r.Metrics.Count
	h.n++
	now := time.Now()
	if now.Sub(h.last) < h.Every && r.Step != h.total {
		return
	}
	h.last = now
	el := now.Sub(h.start)
	done := r.Step - h.startStep
	attrs := []any{"step", r.Step, "total_steps", h.total, "elapsed_s", round3(el.Seconds()),
		"loss", h.sumLoss / float64(h.n), "exact_accuracy", h.sumExact / math.Max(h.sumCount, 1), "lr", r.Info.LR}
	if h.stepsPerEpoch > 0 {
		attrs = append(attrs, "epoch", round3(float64(r.Step)/h.stepsPerEpoch))
	}
	if el > 0 {
		attrs = append(attrs, "examples_per_s", round3(float64(done*h.globalBatch)/el.Seconds()))
		if done > 0 {
			attrs = append(attrs, "eta_s", math.Round(el.Seconds()/float64(done)*float64(h.total-r.Step)))
		}
	}
	h.log.Info("progress", attrs...)
	h.sumLoss, h.sumExact, h.sumCount, h.n = 0, 0, 0, 0
}

// OnEval implements trainer.Hook: every reported metric under "metrics",
// by its reference name.
func (h *slogHook) OnEval(r *trainer.EvalReport) {
	var ms []any
	for _, k := range r.SortedKeys() {
		ms = append(ms, slog.Float64(k, r.Flat[k]))
	}
	h.log.Info("evaluation", "step", r.Step, slog.Group("metrics", ms...))
	for _, w := range r.Warning {
		h.log.Warn("evaluation warning", "step", r.Step, "warning", w)
	}
}

// OnCheckpoint implements trainer.Hook.
func (h *slogHook) OnCheckpoint(c trainer.CheckpointInfo) {
	h.log.Info("checkpoint", "step", c.Step, "dir", c.Dir, "duration_s", round3(c.Duration.Seconds()), "best", c.Best)
}

// OnEnd implements trainer.Hook.
func (h *slogHook) OnEnd(err error) {
	attrs := []any{"step", h.step, "total_steps", h.total, "elapsed_s", round3(time.Since(h.start).Seconds())}
	if err != nil {
		h.log.Error("end", append(attrs, "error", err.Error())...)
		return
	}
	h.log.Info("end", attrs...)
}

// logWarnings reports the config's warnings in the chosen format.
func logWarnings(w io.Writer, format string, cfg *trainer.Config) {
	if format != logJSON {
		printWarnings(w, cfg)
		return
	}
	l := newJSONLogger(w)
	for _, m := range cfg.Warnings() {
		l.Warn("config warning", "warning", m)
	}
}

// round3 keeps three decimals: enough for seconds and rates, without the
// noise digits of a float64.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

var _ trainer.Hook = (*slogHook)(nil)

// describeLogFormat is the flag's help.
var describeLogFormat = fmt.Sprintf("format of the progress and log lines on stderr: %s (for people) or %s (one JSON object per line: start, progress, evaluation, checkpoint and end records, for cloud log pipelines)", logText, logJSON)
