package bench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The side-by-side harness in reference/ (compare, step.py, summarize.py)
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
