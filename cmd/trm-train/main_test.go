package main

import (
	"bytes"
	"strings"
	"testing"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestParamsPaperCounts(t *testing.T) {
	for preset, want := range map[string]string{"sudoku-mlp": "5,028,866", "sudoku-att": "6,828,034", "maze": "6,822,914",
		"arc1": "6,829,058", "arc2": "6,829,058", "hrm-sudoku": "27,275,266", "hrm-maze": "27,270,146", "hrm-arc1": "27,276,290", "hrm-arc2": "27,276,290"} {
		code, out, errs := runCmd("params", preset)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", preset, code, errs)
		}
		if !strings.Contains(out, "trained parameters (AdamATan2): "+want) {
			t.Errorf("%s: output lacks %s:\n%s", preset, want, out)
		}
	}
	_, out, _ := runCmd("params", "sudoku-mlp")
	for _, k := range []string{"inner.L_level.layers.1.mlp_t.gate_up_proj.weight", "[1024 97]", "inner.H_init", "sign-SGD"} {
		if !strings.Contains(out, k) {
			t.Errorf("params output lacks %q", k)
		}
	}
}

func TestParamsErrors(t *testing.T) {
	if code, _, errs := runCmd("params"); code != 2 || !strings.Contains(errs, "usage: trm-train params") {
		t.Errorf("no argument: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := runCmd("params", "sudoku"); code != 1 || !strings.Contains(errs, "sudoku-mlp") {
		t.Errorf("unknown preset: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := runCmd("params", "/nonexistent/cfg.json"); code != 1 || !strings.Contains(errs, "/nonexistent/cfg.json") {
		t.Errorf("missing file: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := runCmd("params", "-h"); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}

func TestDispatcher(t *testing.T) {
	if code, _, errs := runCmd("no-such-command"); code != 2 || !strings.Contains(errs, `unknown command "no-such-command"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, errs)
	}
	code, out, _ := runCmd("help")
	if code != 0 || !strings.Contains(out, "params") {
		t.Errorf("help: exit %d:\n%s", code, out)
	}
}
