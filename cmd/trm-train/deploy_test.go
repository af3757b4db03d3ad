package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/trainer/promhook"
)

// TestImageEntrypoint: the image's trm-train runs the CUDA build only
// where it can start (libcuda.so.1 loadable) or where CUDA is asked for,
// and TRM_BUILD overrides.
func TestImageEntrypoint(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	bins, fake, libs := filepath.Join(dir, "bin"), filepath.Join(dir, "fake"), filepath.Join(dir, "libs")
	for _, b := range []string{"cpu", "cuda"} {
		writeScript(t, filepath.Join(bins, "trm-train-"+b), "echo "+b+" \"$@\"\n")
	}
	os.MkdirAll(libs, 0o755)
	os.WriteFile(filepath.Join(libs, "libcuda.so.1"), nil, 0o644)
	for _, c := range []struct {
		args    []string
		env     []string
		ldcache bool
		want    string
		code    int
	}{
		{[]string{"version"}, nil, false, "cpu version", 0},
		{[]string{"version"}, nil, true, "cuda version", 0},
		{[]string{"data", "check", "d"}, []string{"LD_LIBRARY_PATH=/nonexistent:" + libs}, false, "cuda data check d", 0},
		{[]string{"train", "--device", "cuda:0"}, nil, false, "cuda train --device cuda:0", 0},
		{[]string{"train", "--device=cuda"}, nil, false, "cuda train --device=cuda", 0},
		{[]string{"eval", "--device", "cpu"}, nil, false, "cpu eval --device cpu", 0},
		{[]string{"version"}, []string{"TRM_BUILD=cpu"}, true, "cpu version", 0},
		{[]string{"version"}, []string{"TRM_BUILD=cuda"}, false, "cuda version", 0},
		{[]string{"version"}, []string{"TRM_BUILD=gpu"}, false, "TRM_BUILD=gpu: want cpu or cuda", 2},
		{[]string{"solve", "--checkpoint", "r", "1 2 3"}, nil, false, "cpu solve --checkpoint r 1 2 3", 0},
	} {
		ld := ""
		if c.ldcache {
			ld = "echo '	libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1'"
		}
		writeScript(t, filepath.Join(fake, "ldconfig"), ld+"\n")
		cmd := exec.Command("bash", append([]string{filepath.Join(root, "deploy", "docker", "trm-entrypoint")}, c.args...)...)
		cmd.Env = append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"), "TRM_BIN_DIR="+bins, "LD_LIBRARY_PATH=", "TRM_BUILD=")
		cmd.Env = append(cmd.Env, c.env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		if code != c.code || strings.TrimSpace(string(out)) != c.want && !strings.Contains(string(out), c.want) {
			t.Errorf("%v %v (ldconfig lists libcuda: %v): exit %d, %q; want %d, %q", c.env, c.args, c.ldcache, code, out, c.code, c.want)
		}
	}
}

// TestImageHealthcheck: the HEALTHCHECK script is healthy when the
// metrics server's /healthz answers 200 (trainer/promhook's real server),
// unhealthy when it answers otherwise or nothing listens, and healthy
// when the container serves no metrics.
func TestImageHealthcheck(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script := filepath.Join(repoRoot(t), "deploy", "docker", "trm-healthcheck")
	check := func(env ...string) (int, string) {
		cmd := exec.Command("bash", script)
		cmd.Env = append(os.Environ(), "TRM_METRICS_ADDR=", "TRM_HEALTH_ADDR=")
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return cmd.ProcessState.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	var log bytes.Buffer
	_, stop, err := promhook.Start("127.0.0.1:0", promhook.Options{Run: "health", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	m := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`).FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("no metrics address in %q", log.String())
	}
	port := m[1][strings.LastIndex(m[1], ":"):]
	if code, out := check("TRM_HEALTH_ADDR=" + m[1]); code != 0 {
		t.Errorf("the metrics server's /healthz: exit %d, %s", code, out)
	}
	if code, out := check("TRM_METRICS_ADDR=0.0.0.0" + port); code != 0 {
		t.Errorf("TRM_METRICS_ADDR=0.0.0.0%s (checked on loopback): exit %d, %s", port, code, out)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	if code, _ := check("TRM_HEALTH_ADDR=" + strings.TrimPrefix(bad.URL, "http://")); code != 1 {
		t.Errorf("a 503: exit %d, want 1", code)
	}
	l := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(l.URL, "http://")
	l.Close()
	if code, _ := check("TRM_HEALTH_ADDR=" + addr); code != 1 {
		t.Errorf("nothing listening: exit %d, want 1", code)
	}
	// PID 1 here is not a trm-train with --metrics-addr: nothing to check.
	if code, out := check(); code != 0 {
		t.Errorf("no metrics server: exit %d, %s", code, out)
	}
}
