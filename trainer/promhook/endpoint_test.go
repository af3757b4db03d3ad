package promhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tinyrecursive/trm/trainer"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// finalEval is an evaluation report whose values a test looks for after
// the run.
func finalEval() *trainer.EvalReport {
	return &trainer.EvalReport{Step: 40, Sets: map[string]*trainer.SetEval{"all": {}},
		Flat: map[string]float64{"all/exact_accuracy": 0.625, "all/count": 8}}
}

// stopAsync runs p.Stop(ctx) in the background.
func stopAsync(p *Endpoint, ctx context.Context) chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.Stop(ctx) }()
	return ch
}

// TestHealthz: /healthz answers 200 "ok" during and after the run.
func TestHealthz(t *testing.T) {
	p, err := Open(":0", Options{Run: "h", NVMLLibrary: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	url := "http://" + p.Server().Addr().String() + "/healthz"
	p.OnStart(runInfo())
	if code, body := get(t, url); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz during the run: %d %q", code, body)
	}
	p.OnEnd(nil)
	if code, body := get(t, url); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz after the run: %d %q", code, body)
	}
}

// TestLinger: after the run, Stop keeps serving until a scrape begun after
// the end has read trm_run_running 0 and the final evaluation, and returns
// right after it, well before the linger's limit; a scrape before the end
// does not count. Cancelling the context (the second signal) cuts the
// linger short, and with Linger 0 or a run that never ended Stop does not
// wait.
func TestLinger(t *testing.T) {
	p, err := Open(":0", Options{Run: "linger", NVMLLibrary: "off", Linger: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	url := p.Server().URL()
	p.OnStart(runInfo())
	get(t, url) // a scrape while the run trains
	p.OnEval(finalEval())
	p.OnEnd(nil)
	t0 := time.Now()
	done := stopAsync(p, context.Background())
	select {
	case err := <-done:
		t.Fatalf("Stop returned after %s without a final scrape: %v", time.Since(t0), err)
	case <-time.After(300 * time.Millisecond):
	}
	_, body := get(t, url)
	for _, want := range []string{`trm_run_running{run="linger"} 0`, `trm_eval_exact_accuracy_ratio{run="linger",set="all"} 0.625`} {
		if !strings.Contains(body, want) {
			t.Errorf("final scrape lacks %s", want)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Stop still lingering 3 s after the final scrape")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("Stop took %s", d)
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("server still answers after Stop")
	}

	// A cancelled context (Start's stop: SIGINT or SIGTERM) ends it.
	p, err = Open(":0", Options{Run: "cut", NVMLLibrary: "off", Linger: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.OnStart(runInfo())
	p.OnEnd(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done = stopAsync(p, ctx)
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Stop still lingering 3 s after its context was cancelled")
	}

	// No linger: Linger 0, or a run that did not end.
	for _, c := range []struct {
		linger time.Duration
		end    bool
	}{{0, true}, {20 * time.Second, false}} {
		p, err := Open(":0", Options{Run: "quick", NVMLLibrary: "off", Linger: c.linger})
		if err != nil {
			t.Fatal(err)
		}
		p.OnStart(runInfo())
		if c.end {
			p.OnEnd(nil)
		}
		t0 := time.Now()
		if err := p.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Fatalf("linger %s, ended %v: Stop took %s", c.linger, c.end, d)
		}
	}
}

// pushgateway starts Debian's prometheus-pushgateway on a loopback port
// and returns its URL; the test's cleanup stops it by PID.
func pushgateway(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-pushgateway")
	if err != nil {
		if bin, err = exec.LookPath("pushgateway"); err != nil {
			t.Skip("no prometheus-pushgateway binary: apt-get install -y prometheus-pushgateway (.ci/prometheus-test installs it and runs this test)")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var out bytes.Buffer
	// In memory only: Debian's build persists to a file in /var/lib by
	// default, which would carry one test's pushes into the next.
	cmd := exec.Command(bin, "--web.listen-address="+addr, "--persistence.file=")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	url := "http://" + addr
	for t0 := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", bin, out.String())
		default:
		}
		if time.Since(t0) > 15*time.Second {
			t.Fatalf("%s not ready within 15 s: %s", bin, out.String())
		}
	}
}

// gatewaySeries reads the Pushgateway's exposition: every series by its
// family name and sorted labels, e.g. `trm_run_running{job="trm-train",run="a"}`.
func gatewaySeries(t *testing.T, url string) map[string]float64 {
	t.Helper()
	_, body := get(t, url+"/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the Pushgateway's metrics: %v", err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				if l.GetValue() == "" {
					continue // the Pushgateway's instance="": absent for Prometheus
				}
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := name + "{" + strings.Join(ls, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_UNTYPED:
				out[key] = m.GetUntyped().GetValue()
			default:
				out[key] = 0
			}
		}
	}
	return out
}

// TestPushgateway pushes the final state of two runs to a real
// Pushgateway: each is its own group (job trm-train, run label), carries
// the final evaluation and trm_run_running 0 with the same labels as a
// scrape, and leaves out the Go runtime and process families. A push to
// an address nothing listens on is an error naming the URL, and the
// server still shuts down.
func TestPushgateway(t *testing.T) {
	gw := pushgateway(t)
	var log bytes.Buffer
	for i, run := range []string{"push-a", "push-b"} {
		p, err := Open("", Options{Run: run, NVMLLibrary: "off", PushURL: gw, Log: &log, Linger: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if p.Server() != nil {
			t.Fatal("Open without an address started a server")
		}
		p.OnStart(runInfo())
		ev := finalEval()
		ev.Flat["all/exact_accuracy"] = 0.5 + float64(i)/4
		p.OnEval(ev)
		p.OnEnd(nil)
		t0 := time.Now()
		if err := p.Stop(context.Background()); err != nil {
			t.Fatalf("%s: %v", run, err)
		}
		if d := time.Since(t0); d > 10*time.Second {
			t.Fatalf("push took %s (a run with no server must not linger)", d)
		}
	}
	if !strings.Contains(log.String(), `pushed the final state to `+gw+` (job "trm-train", run "push-b")`) {
		t.Errorf("log: %s", log.String())
	}
	got := gatewaySeries(t, gw)
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`trm_run_running{job="trm-train",run="push-a"}`, 0},
		{`trm_run_running{job="trm-train",run="push-b"}`, 0},
		{`trm_run_failed{job="trm-train",run="push-a"}`, 0},
		{`trm_eval_exact_accuracy_ratio{job="trm-train",run="push-a",set="all"}`, 0.5},
		{`trm_eval_exact_accuracy_ratio{job="trm-train",run="push-b",set="all"}`, 0.75},
		{`trm_eval_step{job="trm-train",run="push-b"}`, 40},
		{`trm_train_total_steps{job="trm-train",run="push-a"}`, 40},
	} {
		v, ok := got[c.series]
		if !ok || v != c.want {
			t.Errorf("%s: got %v (present %v), want %v", c.series, v, ok, c.want)
		}
	}
	pushed := 0
	for k := range got {
		if strings.Contains(k, `job="trm-train"`) && (strings.HasPrefix(k, "go_") || strings.HasPrefix(k, "process_")) {
			t.Errorf("pushed a runtime family: %s", k)
		}
		if strings.HasPrefix(k, "push_time_seconds{") && strings.Contains(k, `job="trm-train"`) {
			pushed++
		}
	}
	if pushed != 2 {
		t.Errorf("%d push groups of job trm-train, want 2", pushed)
	}

	// Nothing listens here: the push fails with the URL named, and Stop
	// still shuts the server down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	p, err := Open(":0", Options{Run: "nowhere", NVMLLibrary: "off", PushURL: dead})
	if err != nil {
		t.Fatal(err)
	}
	url := p.Server().URL()
	p.OnStart(runInfo())
	p.OnEnd(nil)
	if err := p.Stop(context.Background()); err == nil || !strings.Contains(err.Error(), "pushing the final state to "+dead) {
		t.Fatalf("push to %s: %v", dead, err)
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("server still answers after a failed push")
	}
}
