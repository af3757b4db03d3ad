//go:build prometheus

// The real-Prometheus test: `go test -tags prometheus ./trainer/promhook/`
// (or .ci/prometheus-test, which installs Debian's prometheus package
// first). It trains a small ARC model with trm-train built from this tree,
// scrapes it with a real Prometheus, and runs every panel query of the
// Grafana dashboard against Prometheus's HTTP API.

package promhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module root, two levels above this package.
var repoRoot = filepath.Join("..", "..")

const dashboardPath = "deploy/grafana/dashboards/trm-training.json"

func TestRealPrometheus(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("the prometheus binary is not on PATH: run .ci/prometheus-test, which installs Debian's prometheus package")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on PATH (it comes with Debian's prometheus package)")
	}
	dir := t.TempDir()

	// trm-train from this tree, and a small ARC dataset from the ARC files
	// in testdata: ARC so that the pass@k panel has data too.
	bin := filepath.Join(dir, "trm-train")
	build := exec.Command("go", "build", "-o", bin, "./cmd/trm-train")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "arc")
	prefix := writeSmallARC(t, dir)
	if out, err := exec.Command(bin, "data", "arc", "--prefix", prefix, "--out", data, "--subsets", "training,evaluation",
		"--test-set", "evaluation", "--num-aug", "1", "--quiet").CombinedOutput(); err != nil {
		t.Fatalf("trm-train data arc: %v\n%s", err, out)
	}

	// The run: long enough to outlast the queries (it is stopped by PID),
	// an evaluation and a checkpoint every epoch, port 0 so two test runs
	// never collide; the chosen port is read from its stderr.
	train := exec.Command(bin, "train", "--quiet", "--metrics-addr", "127.0.0.1:0", "--metrics-run", "itest", "--out", filepath.Join(dir, "run"),
		"data_paths=["+data+"]", "global_batch_size=4", "epochs=1000", "eval_interval=1", "eval_max_batches=1", "checkpoint_every_eval=true",
		"arch.hidden_size=16", "arch.num_heads=2", "arch.puzzle_emb_ndim=16", "arch.H_cycles=1", "arch.L_cycles=1", "arch.L_layers=1",
		"arch.halt_max_steps=3", "lr=1e-3", "lr_warmup_steps=2")
	trainErr := &syncBuffer{}
	train.Stderr = trainErr
	var trainOut strings.Builder
	train.Stdout = &trainOut
	if err := train.Start(); err != nil {
		t.Fatal(err)
	}
	trainDone := make(chan error, 1)
	go func() { trainDone <- train.Wait() }()
	stopped := false
	stopTrain := func() error {
		if stopped {
			return nil
		}
		stopped = true
		return stopByPID(t, train.Process, trainDone, "trm-train")
	}
	t.Cleanup(func() { stopTrain() })

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trm-train stderr:\n%s", trainErr.String())
		}
	})
	var metricsURL string
	waitFor(t, 2*time.Minute, "trm-train's metrics URL", func() (bool, string) {
		select {
		case err := <-trainDone:
			stopped = true
			t.Fatalf("trm-train exited (%v) before serving metrics:\n%s", err, trainErr.String())
		default:
		}
		if _, rest, ok := strings.Cut(trainErr.String(), "metrics: serving "); ok {
			metricsURL, _, _ = strings.Cut(rest, " ")
		}
		return metricsURL != "", "no URL on stderr yet"
	})
	target := strings.TrimSuffix(strings.TrimPrefix(metricsURL, "http://"), "/metrics")
	t.Logf("trm-train (pid %d) serves %s", train.Process.Pid, metricsURL)

	// Prometheus on a free loopback port with its own config and data.
	promAddr := freeLoopbackAddr(t)
	cfg := filepath.Join(dir, "prometheus.yml")
	writeFile(t, cfg, fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: trm-train\n    static_configs:\n      - targets: [%q]\n", target))
	promLog, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer promLog.Close()
	prom := exec.Command(promBin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	prom.Stdout, prom.Stderr = promLog, promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	promDone := make(chan error, 1)
	go func() { promDone <- prom.Wait() }()
	promStopped := false
	stopProm := func() error {
		if promStopped {
			return nil
		}
		promStopped = true
		return stopByPID(t, prom.Process, promDone, "prometheus")
	}
	t.Cleanup(func() {
		stopProm()
		if t.Failed() {
			b, _ := os.ReadFile(promLog.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	api := "http://" + promAddr
	t.Logf("prometheus (pid %d) on %s", prom.Process.Pid, api)
	waitFor(t, 60*time.Second, "prometheus ready", func() (bool, string) {
		resp, err := http.Get(api + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})

	// Wait for the events every panel needs: training steps with halted
	// examples, an evaluation, a checkpoint, and enough scrapes after
	// them for rates.
	for _, q := range []string{`trm_train_act_steps_count{run="itest"} > 0`, `trm_eval_step{run="itest"}`,
		`trm_checkpoint_last_step{run="itest"}`, `count_over_time(trm_train_step{run="itest"}[1m]) > 5`} {
		waitFor(t, 3*time.Minute, q, func() (bool, string) {
			res, err := query(api, q)
			if err != nil {
				return false, err.Error()
			}
			return len(res) > 0, fmt.Sprintf("%d series", len(res))
		})
	}

	// promtool lints a scrape of the running trainer.
	scrape := httpGet(t, metricsURL)
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(scrape)
	if out, err := check.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// Every panel query of the dashboard, with Grafana's variables
	// replaced by what selects everything.
	gpus, err := query(api, "trm_gpu_memory_total_bytes")
	if err != nil {
		t.Fatal(err)
	}
	queries := dashboardQueries(t, filepath.Join(repoRoot, dashboardPath))
	if len(queries) < 30 {
		t.Fatalf("found only %d panel queries in %s", len(queries), dashboardPath)
	}
	vars := strings.NewReplacer("$__rate_interval", "20s", "$run", ".*", "$set", ".*")
	familyRE := regexp.MustCompile(`\btrm_[a-z0-9_]+`)
	ran, exempt := 0, 0
	for _, pq := range queries {
		fams := familyRE.FindAllString(pq.expr, -1)
		if len(fams) == 0 {
			t.Errorf("panel %q: query names no trm_ family: %s", pq.panel, pq.expr)
			continue
		}
		gpuOnly := !slices.ContainsFunc(fams, func(f string) bool { return !strings.HasPrefix(f, "trm_gpu_") })
		if gpuOnly && len(gpus) == 0 {
			exempt++
			t.Logf("panel %q: GPU query exempt on a machine without a GPU: %s", pq.panel, pq.expr)
			continue
		}
		expr := vars.Replace(pq.expr)
		var last string
		ok := poll(30*time.Second, func() bool {
			res, err := query(api, expr)
			if err != nil {
				last = err.Error()
				return false
			}
			finite := 0
			for _, s := range res {
				if !math.IsNaN(s.value) && !math.IsInf(s.value, 0) {
					finite++
				}
			}
			last = fmt.Sprintf("%d series, %d finite", len(res), finite)
			return finite > 0
		})
		if !ok {
			t.Errorf("panel %q: %s\n  query: %s", pq.panel, last, expr)
			continue
		}
		ran++
	}
	t.Logf("%d panel queries returned data, %d GPU queries exempt", ran, exempt)

	// Stop both by PID; the trainer turns SIGTERM into a checkpoint and a
	// clean exit.
	if err := stopTrain(); err != nil {
		t.Errorf("trm-train: %v", err)
	}
	if !strings.Contains(trainOut.String(), "interrupted at step") {
		t.Errorf("trm-train did not report the interrupted run:\n%s", trainOut.String())
	}
	// trm-train lingers after the run (--metrics-linger, default
	// promhook.DefaultLinger) and must have been scraped in its final state before it exited: the end
	// timestamp, set only when the run ended, and trm_run_running 0.
	// (Range selectors skip the staleness markers written once the
	// target is gone.)
	if strings.Contains(trainErr.String(), "serving the final state") {
		for _, q := range []string{`last_over_time(trm_run_running{run="itest"}[10m]) == 0`, `last_over_time(trm_run_end_timestamp_seconds{run="itest"}[10m]) > 0`} {
			res, err := query(api, q)
			if err != nil || len(res) != 1 {
				t.Errorf("final state not scraped before trm-train exited: %s: %d series, %v", q, len(res), err)
			}
		}
	} else {
		t.Errorf("trm-train did not print its linger line (metrics: serving the final state ...): its --metrics-linger default should keep serving until the final state is scraped:\n%s", trainErr.String())
	}
	if err := stopProm(); err != nil {
		t.Errorf("prometheus: %v", err)
	}
	for _, p := range []*os.Process{train.Process, prom.Process} {
		if err := p.Signal(syscall.Signal(0)); err == nil {
			t.Errorf("pid %d still running", p.Pid)
		}
	}
}

// syncBuffer collects a child's stderr: exec copies into it from its own
// goroutine while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// panelQuery is one target of one dashboard panel.
type panelQuery struct{ panel, expr string }

// dashboardQueries returns every target expression of every panel,
// rows' nested panels included.
func dashboardQueries(t *testing.T, path string) []panelQuery {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []panelQuery
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("panel %q has a target without a query", p.Title)
				}
				out = append(out, panelQuery{p.Title, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// sample is one series of an instant query's result.
type sample struct {
	labels map[string]string
	value  float64
}

// query runs an instant query against the Prometheus HTTP API.
func query(api, q string) ([]sample, error) {
	resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", q, r.Data.ResultType)
	}
	var out []sample
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v", q, s.Value[1])
		}
		out = append(out, sample{s.Metric, v})
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i].labels) < fmt.Sprint(out[j].labels) })
	return out, nil
}

// poll calls f every half second until it returns true or d passes.
func poll(d time.Duration, f func() bool) bool {
	end := time.Now().Add(d)
	for {
		if f() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitFor polls f until it holds, failing the test after d with f's last
// explanation.
func waitFor(t *testing.T, d time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	var last string
	if !poll(d, func() bool {
		var ok bool
		ok, last = f()
		return ok
	}) {
		t.Fatalf("waiting for %s: gave up after %s (%s)", what, d, last)
	}
}

// stopByPID sends SIGTERM to p and waits up to 60 s for it to exit, then
// kills it. A process that had to be killed is an error.
func stopByPID(t *testing.T, p *os.Process, done <-chan error, name string) error {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM to %s (pid %d): %w", name, p.Pid, err)
	}
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		p.Kill()
		<-done
		return fmt.Errorf("%s (pid %d) ignored SIGTERM for 60 s and was killed", name, p.Pid)
	}
}

// freeLoopbackAddr asks the kernel for a free port on 127.0.0.1.
// Prometheus needs its address up front, so the port is released and
// reused; another process taking it in between makes Prometheus fail to
// start, which the readiness wait reports.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSmallARC copies the first three training and two evaluation tasks
// of testdata's ARC-AGI-1 files to dir/arc_<subset>_{challenges,solutions}.json
// and returns the prefix for `trm-train data arc`: five puzzles keep a CPU
// step around a second on two cores.
func writeSmallARC(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(repoRoot, "testdata", "arc-agi", "arc-agi_")
	prefix := filepath.Join(dir, "arc")
	for subset, n := range map[string]int{"training": 3, "evaluation": 2} {
		var keys []string
		for _, kind := range []string{"challenges", "solutions"} {
			name := subset + "_" + kind + ".json"
			b, err := os.ReadFile(src + name)
			if err != nil {
				t.Fatal(err)
			}
			var all map[string]json.RawMessage
			if err := json.Unmarshal(b, &all); err != nil {
				t.Fatal(err)
			}
			if keys == nil {
				for k := range all {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				keys = keys[:n]
			}
			part := map[string]json.RawMessage{}
			for _, k := range keys {
				part[k] = all[k]
			}
			out, err := json.Marshal(part)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, prefix+"_"+name, string(out))
		}
	}
	return prefix
}
