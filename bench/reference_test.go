package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The harnesses in reference/ (compare, step.py, summarize.py, bf16dev.py)
// needs the reference model and torch to run; these tests keep it honest
// without them: its scripts parse, its argument checks fail before any
// work, the einops stand-in maps patterns to the right permutations, and
// the table's mins, medians and ratios are right.

// python3 returns the Python interpreter on PATH, or skips the test.
func python3(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	return p
}

// TestReferenceScriptsParse checks that compare is valid bash and that the
// Python scripts compile (compile(), not py_compile: nothing is written
// next to the sources).
func TestReferenceScriptsParse(t *testing.T) {
	if out, err := exec.Command("bash", "-n", "reference/compare").CombinedOutput(); err != nil {
		t.Fatalf("bash -n reference/compare: %v\n%s", err, out)
	}
	py := python3(t)
	for _, f := range []string{"reference/step.py", "reference/summarize.py"} {
		cmd := exec.Command(py, "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')", f)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s does not compile: %v\n%s", f, err, out)
		}
	}
}

// TestReferenceCompareArgs checks that compare rejects bad arguments with
// a message naming the problem, before it looks for torch or builds.
func TestReferenceCompareArgs(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-checkout")
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "usage: bench/reference/compare REFERENCE_DIR"},
		{[]string{missing}, 1, missing + ": no models/recursive_reasoning/trm.py"},
		{[]string{missing, "--rounds", "0"}, 2, "--rounds 0: want a positive integer"},
		{[]string{missing, "--steps"}, 2, "--steps needs a value"},
		{[]string{missing, "--warp"}, 2, "unknown argument --warp"},
	}
	for _, c := range cases {
		out, err := exec.Command("reference/compare", c.args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("compare %q: %v", c.args, err)
		}
		if code != c.code || !strings.Contains(string(out), c.msg) {
			t.Errorf("compare %q: exit %d, output %q; want exit %d and %q", c.args, code, out, c.code, c.msg)
		}
	}
}

// TestReferenceEinopsPermutation checks step.py's einops stand-in: the
// reference's two patterns and the patterns it must refuse.
func TestReferenceEinopsPermutation(t *testing.T) {
	py := python3(t)
	const script = `
import sys
sys.path.insert(0, "reference")
import step
for p in sys.argv[1:]:
    try:
        print(p, "=", step.permutation(p))
    except ValueError as e:
        print(p, "! ValueError")
`
	patterns := []string{"B S H D -> B H S D", "B H S D -> B S H D", "a b c -> c a b", "B (H D) -> B H D", "B S -> B S S", "B S -> B T", "B S"}
	out, err := exec.Command(py, append([]string{"-c", script}, patterns...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := strings.Join([]string{
		"B S H D -> B H S D = (0, 2, 1, 3)",
		"B H S D -> B S H D = (0, 2, 1, 3)",
		"a b c -> c a b = (2, 0, 1)",
		"B (H D) -> B H D ! ValueError",
		"B S -> B S S ! ValueError",
		"B S -> B T ! ValueError",
		"B S ! ValueError",
	}, "\n") + "\n"
	if string(out) != want {
		t.Fatalf("permutations:\n%s\nwant:\n%s", out, want)
	}
}

// TestReferenceSummarize checks summarize.py's table on a results file of
// three rounds (min, median, trm/reference ratios of both) and its error
// on a malformed one.
func TestReferenceSummarize(t *testing.T) {
	py := python3(t)
	dir := t.TempDir()
	results := filepath.Join(dir, "results.tsv")
	tsv := "round\tside\tconfig\tprecision\ts\tcpu_s\n" +
		"1\treference\tmlp\tbf16\t2.0\t4.0\n" +
		"1\ttrm\tmlp\tbf16\t1.5\t2.5\n" +
		"2\ttrm\tmlp\tbf16\t1.0\t2.0\n" +
		"2\treference\tmlp\tbf16\t1.6\t3.2\n" +
		"3\treference\tmlp\tbf16\t1.8\t3.0\n" +
		"3\ttrm\tmlp\tbf16\t1.2\t2.2\n" +
		"1\treference\tatt\tfp32\t6.0\t12.0\n" // no trm run: no row
	if err := os.WriteFile(results, []byte(tsv), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "reference/summarize.py", results).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	// reference s 1.6 / 1.8, trm s 1.0 / 1.2, ratios 0.625 and 0.667;
	// reference cpu 3.0 / 3.2, trm cpu 2.0 / 2.2, ratios 0.667 and 0.6875.
	want := "| Sudoku MLP-T, H 512, B 16 | bf16 | 1.60 / 1.80 | 1.00 / 1.20 | 0.62 / 0.67 | 3.00 / 3.20 | 2.00 / 2.20 | 0.67 / 0.69 | 3 |"
	if len(lines) != 3 || lines[2] != want {
		t.Fatalf("table:\n%s\nwant its one row:\n%s", out, want)
	}

	bad := filepath.Join(dir, "bad.tsv")
	if err := os.WriteFile(bad, []byte("round\tside\tconfig\tprecision\ts\tcpu_s\n1\ttrm\tmlp\tbf16\tfast\t1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(py, "reference/summarize.py", bad).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte(bad+":2: seconds")) {
		t.Fatalf("malformed results: err %v, output %q; want an error naming %s:2", err, out, bad)
	}
}

// TestReferenceBF16Dev checks bf16dev.py without torch: it compiles, it
// rejects bad arguments and malformed golden inputs with a message naming
// the argument or the file before it imports torch, and its comparison
// rule is engine/enginetest/tolerance.go's on hand-computed values.
func TestReferenceBF16Dev(t *testing.T) {
	py := python3(t)
	const script = "reference/bf16dev.py"
	if out, err := exec.Command(py, "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')", script).CombinedOutput(); err != nil {
		t.Fatalf("%s does not compile: %v\n%s", script, err, out)
	}

	dir := t.TempDir()
	// A stand-in reference checkout: the files the argument check looks
	// for, which are never imported because every run below stops first.
	ref := filepath.Join(dir, "ref")
	for _, f := range []string{"models/recursive_reasoning/trm.py", "models/losses.py"} {
		p := filepath.Join(ref, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// safetensors writes a file of I32 tensors, one element each.
	safetensors := func(path string, keys ...string) {
		var hdr []string
		for i, k := range keys {
			hdr = append(hdr, fmt.Sprintf(`"%s":{"dtype":"I32","shape":[1],"data_offsets":[%d,%d]}`, k, 4*i, 4*i+4))
		}
		h := "{" + strings.Join(hdr, ",") + "}"
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		b = append(append(b, h...), make([]byte, 4*len(keys))...)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mkcase := func(name, config string) string {
		c := filepath.Join(dir, "golden", name)
		if err := os.MkdirAll(c, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c, "config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		safetensors(filepath.Join(c, "weights.safetensors"), "inner.H_init")
		safetensors(filepath.Join(c, "batch.safetensors"), "inputs", "labels", "puzzle_identifiers")
		safetensors(filepath.Join(c, "expected.safetensors"), "logits", "q_halt_logits", "q_continue_logits", "lm_loss")
		return c
	}
	badJSON := mkcase("bad_json", `{"batch_size": 4,`)
	noLabels := mkcase("no_labels", `{}`)
	safetensors(filepath.Join(noLabels, "batch.safetensors"), "inputs", "puzzle_identifiers")
	truncated := mkcase("truncated", `{}`)
	if err := os.WriteFile(filepath.Join(truncated, "expected.safetensors"), []byte{200, 0, 0, 0, 0, 0, 0, 0, '{', '}'}, 0o644); err != nil {
		t.Fatal(err)
	}
	noExpected := mkcase("no_expected", `{}`)
	if err := os.Remove(filepath.Join(noExpected, "expected.safetensors")); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.MkdirAll(filepath.Join(empty, "trajectory_x"), 0o755); err != nil {
		t.Fatal(err)
	}
	safetensors(filepath.Join(empty, "trajectory_x", "batch.safetensors"), "inputs")
	missing := filepath.Join(dir, "no-such-checkout")

	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "the following arguments are required: reference_dir"},
		{[]string{ref, "--tol", "0.1"}, 2, "--tol 0.1: want ABS,REL"},
		{[]string{ref, "--tol", "a,b"}, 2, "--tol a,b: want ABS,REL"},
		{[]string{ref, "--tol", "0.1,0"}, 2, "--tol 0.1,0: ABS and REL must be positive and finite"},
		{[]string{ref, "--tol", "inf,0.1"}, 2, "--tol inf,0.1: ABS and REL must be positive and finite"},
		{[]string{ref, "--threads", "0"}, 2, "--threads 0: want a positive integer"},
		{[]string{missing}, 1, missing + ": no models/recursive_reasoning/trm.py"},
		{[]string{ref, filepath.Join(dir, "nowhere")}, 1, filepath.Join(dir, "nowhere") + ": no such folder"},
		{[]string{ref, empty}, 1, empty + ": no golden case"},
		{[]string{ref, badJSON}, 1, filepath.Join(badJSON, "config.json") + ": not JSON"},
		{[]string{ref, noLabels}, 1, filepath.Join(noLabels, "batch.safetensors") + ": no tensor labels"},
		{[]string{ref, truncated}, 1, filepath.Join(truncated, "expected.safetensors") + ": header length 200 runs past the end of the file (10 bytes)"},
		{[]string{ref, noExpected}, 1, filepath.Join(noExpected, "expected.safetensors") + ": No such file or directory"},
	}
	for _, c := range cases {
		out, err := exec.Command(py, append([]string{script}, c.args...)...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("bf16dev.py %q: %v", c.args, err)
		}
		if code != c.code || !strings.Contains(string(out), c.msg) {
			t.Errorf("bf16dev.py %q: exit %d, output %q; want exit %d and %q", c.args, code, out, c.code, c.msg)
		}
	}

	// The rule: scale = max(1, max|want|) = 4, limits 0.1*4 + 0.1*|want| =
	// 0.4, 0.6, 0.8, differences 0.5, 0.1, 0: ratios 1.25, 1/6, 0.
	const rule = `
import sys
sys.path.insert(0, "reference")
import bf16dev
def show(worst, i, over, diff, scale):
    print("%.6g %d %d %.6g %.6g" % (worst, i, over, diff, scale))
show(*bf16dev.tolerance_stats([0.5, 2.1, -4.0], [0.0, 2.0, -4.0], 0.1, 0.1))
show(*bf16dev.tolerance_stats([0.25, 0.5], [0.5, 0.5], 0.1, 0.1))
show(*bf16dev.tolerance_stats([1.0, float("nan")], [1.0, 1.0], 0.1, 0.1))
show(*bf16dev.tolerance_stats([1.0], [1.0], 0.1, 0.1))
print(bf16dev.parse_tol("5e-05,0.0001"))
`
	out, err := exec.Command(py, "-c", rule).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := strings.Join([]string{
		"1.25 0 1 0.5 4",
		"1.66667 0 1 0.25 1", // scale 1: limit 0.1 + 0.05
		"inf 1 1 nan 1",
		"0 -1 0 0 1",
		"(5e-05, 0.0001)",
	}, "\n") + "\n"
	if string(out) != want {
		t.Fatalf("tolerance_stats:\n%s\nwant:\n%s", out, want)
	}
}
