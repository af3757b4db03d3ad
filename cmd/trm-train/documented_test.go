package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/tinyrecursive/trm/trainer"
	"github.com/tinyrecursive/trm/trainer/data"
	"github.com/tinyrecursive/trm/trainer/data/build"
)

// This file runs every command line the repository documents: README.md
// and docs/cli.md (shell code blocks, and inline trm-train spans),
// Dockerfile.cuda and deploy/ (the usage lines of their header comments,
// the launcher, the SLURM script, the Kubernetes Job's container) and the
// Example of every command's help. trm-train lines run in this process,
// train, eval and the data builders with --dry-run and the quick commands
// for real, against small datasets written at the documented paths in a
// temporary directory. docker run, sbatch, kubectl apply and the launcher
// run through their real entry points (the image's entrypoint script, the
// batch script, the Job's container command) with srun, scontrol,
// ldconfig and the binaries replaced by recorders, and the trm-train
// command lines they produce run here the same way. Any other documented
// command must be on allowlisted, with the reason it is not run.

// allowlisted are the documented commands this test does not run, by
// their first words, with the reason.
var allowlisted = map[string]string{
	"go run":                       "builds the binary and trains the demo for about half a minute; the commands it dispatches to are run here",
	"go test":                      "the test suite itself (CI runs it)",
	"go build":                     "a build (CI runs make build and .ci/cuda-build)",
	"make":                         "builds and tests (CI runs make lint, build and test)",
	"prometheus":                   "a long-running server; .ci/prometheus-test runs it against the exporter",
	"docker build":                 "no Docker engine in CI; the image's build steps are deploy/docker/install-go and deploy/docker/build-binaries, which run on a build machine",
	"docker run grafana/grafana":   "a third-party image (Grafana); the dashboard is checked by .ci/prometheus-test",
	"kubectl create":               "needs a Kubernetes cluster; the objects it creates are the ones trm-train-job.yaml reads, which this test checks",
	"ssh":                          "a tunnel to another machine",
	"bash bench/gpu-check":         "needs a GPU machine",
	"bench/gpu-check":              "needs a GPU machine",
	"deploy/docker/install-go":     "downloads a Go toolchain (about 70 MB) from the module proxy",
	"deploy/docker/build-binaries": "compiles the kernels with nvcc and both binaries (.ci/cuda-build covers the CUDA build)",
	"curl":                         "a request to a running trm-train serve; TestServeKindsAndHostileRequests sends the same requests",
	"trm-train serve":              "a long-running server; TestServeKindsAndHostileRequests starts it on loopback and sends every kind of request and every hostile one",
	"bin/trm-train version":        "the cuda build on the CPU stand-in; make test-cuda-standin runs the cuda build's version test (TestVersionCUDA) there",
}

// docCommand is one documented command line.
type docCommand struct {
	src   string            // file:line or command path
	line  string            // as written
	words []string          // after shell expansion, without leading assignments
	env   map[string]string // leading VAR=value assignments and exports before it
	// synopsis marks an inline span with placeholders (DIR, <command>,
	// [--flag], a|b): its command and flags must exist, it is not run.
	synopsis bool
}

func (d docCommand) name() string {
	n := d.src + " " + strings.Join(d.words, " ")
	if len(n) > 120 {
		n = n[:120]
	}
	return n
}

// testRoot is the repository's root, resolved before any test changes
// the working directory.
var testRoot, testRootErr = filepath.Abs(filepath.Join("..", ".."))

func repoRoot(t *testing.T) string {
	if testRootErr != nil {
		t.Fatal(testRootErr)
	}
	return testRoot
}

// TestDocumentedCommands runs every documented command line (see the top
// of this file).
func TestDocumentedCommands(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is needed to run the documented scripts")
	}
	root := repoRoot(t)
	cmds := collectDocumented(t, root)
	perSource := map[string]int{}
	for _, c := range cmds {
		perSource[strings.SplitN(c.src, ":", 2)[0]]++
	}
	// The extraction itself must keep finding the documents' commands.
	for src, min := range map[string]int{"README.md": 15, "docs/cli.md": 1, "Dockerfile.cuda": 3, "help": 8,
		"deploy/multinode/trm-launch": 1, "deploy/slurm/trm-train.sbatch": 2, "deploy/kubernetes/trm-train-job.yaml": 3} {
		if perSource[src] < min {
			t.Errorf("%s: %d documented commands found, want at least %d (did the extraction break?)", src, perSource[src], min)
		}
	}
	fx := &fixtures{root: root, cache: t.TempDir()}
	for _, c := range cmds {
		t.Run(c.name(), func(t *testing.T) {
			h := newHarness(t, fx)
			h.run(c)
		})
	}
}

// collectDocumented extracts the documented command lines.
func collectDocumented(t *testing.T, root string) []docCommand {
	var out []docCommand
	for _, md := range []string{"README.md", "docs/cli.md"} {
		out = append(out, markdownCommands(t, root, md)...)
	}
	for _, f := range []string{"Dockerfile.cuda", "deploy/multinode/trm-launch", "deploy/slurm/trm-train.sbatch",
		"deploy/kubernetes/trm-train-job.yaml", "deploy/docker/install-go", "deploy/docker/build-binaries",
		"deploy/docker/trm-entrypoint", "deploy/docker/trm-healthcheck", "deploy/prometheus/prometheus.yml"} {
		out = append(out, commentCommands(t, root, f)...)
	}
	// The Job's container always runs, whatever the comments say.
	out = append(out, docCommand{src: "deploy/kubernetes/trm-train-job.yaml:Job", line: "kubectl apply -f deploy/kubernetes/trm-train-job.yaml",
		words: []string{"kubectl", "apply", "-f", "deploy/kubernetes/trm-train-job.yaml"}, env: map[string]string{}})
	// The help texts' examples.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, l := range strings.Split(c.Example, "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "trm-train ") {
				out = append(out, parseCommand(t, "help:"+c.CommandPath(), l, nil, false))
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRoot(&bytes.Buffer{}, &bytes.Buffer{}))
	return out
}

var inlineCode = regexp.MustCompile("`([^`]+)`")

// markdownCommands reads the shell code blocks of a markdown file (lines
// joined at trailing backslashes; export lines set the environment of
// the lines after them) and its inline trm-train spans.
func markdownCommands(t *testing.T, root, name string) []docCommand {
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []docCommand
	lines := strings.Split(string(b), "\n")
	inBlock, shell := false, false
	env := map[string]string{}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "```") {
			if !inBlock {
				lang := strings.TrimSpace(strings.TrimPrefix(l, "```"))
				shell = lang == "sh" || lang == "bash" || lang == "shell" || lang == "console"
				env = map[string]string{}
			}
			inBlock = !inBlock
			continue
		}
		if inBlock {
			if !shell {
				continue
			}
			start := i
			for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
				i++
				l = strings.TrimSuffix(l, "\\") + " " + strings.TrimSpace(lines[i])
			}
			if c := parseCommand(t, fmt.Sprintf("%s:%d", name, start+1), l, env, false); len(c.words) > 0 {
				out = append(out, c)
			}
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(l, -1) {
			if strings.HasPrefix(m[1], "trm-train ") { // a bare `trm-train` names the program
				out = append(out, parseCommand(t, fmt.Sprintf("%s:%d", name, i+1), strings.ReplaceAll(m[1], `\|`, "|"), nil, true))
			}
		}
	}
	return out
}

// commentCommands reads the usage lines of a file's comments: comment
// lines indented by three or more spaces ("#   cmd ..."), joined at
// trailing backslashes, and inline trm-train spans in back-quotes.
func commentCommands(t *testing.T, root, name string) []docCommand {
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []docCommand
	lines := strings.Split(string(b), "\n")
	env := map[string]string{}
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "#") || strings.HasPrefix(l, "#!") || strings.HasPrefix(l, "#SBATCH") {
			continue
		}
		body := strings.TrimPrefix(l, "#")
		if strings.HasPrefix(body, "   ") && !strings.HasPrefix(strings.TrimSpace(body), "-") {
			start := i
			cmd := strings.TrimSpace(body)
			for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
				i++
				cmd = strings.TrimSuffix(cmd, "\\") + " " + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[i]), "#"))
			}
			if looksLikeCommand(cmd) {
				if c := parseCommand(t, fmt.Sprintf("%s:%d", name, start+1), cmd, env, false); len(c.words) > 0 {
					out = append(out, c)
				}
			}
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(body, -1) {
			if strings.HasPrefix(m[1], "trm-train ") {
				out = append(out, parseCommand(t, fmt.Sprintf("%s:%d", name, i+1), m[1], nil, true))
			}
		}
	}
	return out
}

// looksLikeCommand tells a usage line from an indented prose list in a
// comment: after any VAR=value assignments it starts with a known
// program or a path.
func looksLikeCommand(s string) bool {
	words, err := shellWords(s, func(string) string { return "" })
	if err != nil {
		return false
	}
	for _, w := range words {
		if isAssignment(w) {
			continue
		}
		switch w {
		case "trm-train", "docker", "sbatch", "kubectl", "prometheus", "make", "go", "export", "bash", "ssh":
			return true
		}
		return strings.Contains(w, "/")
	}
	return false
}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func isAssignment(w string) bool { return assignment.MatchString(w) }

// placeholder matches the synopsis forms of an inline span.
var placeholder = regexp.MustCompile(`^[A-Z][A-Z0-9_]*(\.[a-z]+)?$|<|\.\.\.|\||^\[`)

// parseCommand splits one command line as a shell would (quotes,
// $VAR and ${VAR:-default} from env, $(...) as a fixed random-looking
// value, comments and redirections dropped); leading assignments and
// export lines go to the environment. Inline spans with placeholders are
// synopses, split on spaces.
func parseCommand(t *testing.T, src, line string, env map[string]string, inline bool) docCommand {
	c := docCommand{src: src, line: line, env: map[string]string{}}
	for k, v := range env {
		c.env[k] = v
	}
	if inline {
		for _, w := range strings.Fields(line) {
			if placeholder.MatchString(w) {
				c.synopsis = true
			}
		}
		if c.synopsis {
			c.words = strings.Fields(line)
			return c
		}
	}
	words, err := shellWords(line, func(k string) string {
		switch {
		case c.env[k] != "":
			return c.env[k]
		case k == "PWD" || k == "HOME":
			return "@" + k + "@" // the harness's directory, known when it runs
		}
		return ""
	})
	if err != nil {
		t.Fatalf("%s: %q: %v", src, line, err)
	}
	export := len(words) > 0 && words[0] == "export"
	if export {
		words = words[1:]
	}
	for len(words) > 0 && isAssignment(words[0]) {
		k, v, _ := strings.Cut(words[0], "=")
		c.env[k] = v
		if export && env != nil {
			env[k] = v
		}
		words = words[1:]
	}
	if export {
		return docCommand{} // an export sets the environment of later lines
	}
	c.words = words
	return c
}

// substitution stands for every $(...) in a documented line: the outputs
// documented there (a secret, an id, a version) are opaque strings.
const substitution = "5f3c9a0e7b2d4c1f8a6e0b3d9c7f2a1e5d4b8c0f6a2e9d3b7c1f0a4e8d2b6c9a"

func shellWords(s string, lookup func(string) string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	redirect := false
	flush := func() {
		if inWord {
			if redirect {
				redirect = false
			} else {
				words = append(words, cur.String())
			}
		}
		cur.Reset()
		inWord = false
	}
	expand := func(i int) (string, int, error) { // s[i] == '$'
		switch {
		case i+1 < len(s) && s[i+1] == '(':
			depth := 0
			for j := i + 1; j < len(s); j++ {
				switch s[j] {
				case '(':
					depth++
				case ')':
					depth--
					if depth == 0 {
						return substitution, j + 1, nil
					}
				}
			}
			return "", 0, fmt.Errorf("unclosed $(")
		case i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", 0, fmt.Errorf("unclosed ${")
			}
			expr := s[i+2 : i+end]
			name, def, hasDef := strings.Cut(expr, ":-")
			v := lookup(name)
			if v == "" && hasDef {
				v = def
			}
			return v, i + end + 1, nil
		default:
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			if j == i+1 {
				return "$", j, nil
			}
			return lookup(s[i+1 : j]), j, nil
		}
	}
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t':
			flush()
			i++
		case ch == '#' && !inWord:
			flush()
			return words, nil
		case ch == '>' || ch == '<':
			if inWord && (cur.String() == "1" || cur.String() == "2") {
				cur.Reset()
				inWord = false
			} else {
				flush()
			}
			i++
			if i < len(s) && (s[i] == '>' || s[i] == '&') {
				i++
			}
			redirect = true
			// The target follows (possibly after spaces).
			for i < len(s) && s[i] == ' ' {
				i++
			}
			inWord = false
		case ch == ';' || ch == '|' || ch == '&':
			return nil, fmt.Errorf("unsupported shell syntax %q: document one command per line", string(ch))
		case ch == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unclosed '")
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case ch == '"':
			inWord = true
			i++
			for i < len(s) && s[i] != '"' {
				switch {
				case s[i] == '\\' && i+1 < len(s):
					cur.WriteByte(s[i+1])
					i += 2
				case s[i] == '$':
					v, next, err := expand(i)
					if err != nil {
						return nil, err
					}
					cur.WriteString(v)
					i = next
				default:
					cur.WriteByte(s[i])
					i++
				}
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unclosed \"")
			}
			i++
		case ch == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			inWord = true
			i += 2
		case ch == '$':
			v, next, err := expand(i)
			if err != nil {
				return nil, err
			}
			cur.WriteString(v)
			inWord = true
			i = next
		case ch == '~' && !inWord:
			cur.WriteString(lookup("HOME"))
			inWord = true
			i++
		default:
			cur.WriteByte(ch)
			inWord = true
			i++
		}
	}
	flush()
	return words, nil
}

// fixtures builds each kind of small dataset once and copies it to the
// documented paths.
type fixtures struct {
	root  string
	cache string
	mu    sync.Mutex
	built map[string]string
	done  map[string]bool
}

// once reports true the first time it is asked about key.
func (f *fixtures) once(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done == nil {
		f.done = map[string]bool{}
	}
	first := !f.done[key]
	f.done[key] = true
	return first
}

// dataset returns a directory holding a small dataset of the kind a
// documented path names.
func (f *fixtures) dataset(t *testing.T, kind string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.built == nil {
		f.built = map[string]string{}
	}
	if d, ok := f.built[kind]; ok {
		return d
	}
	d := filepath.Join(f.cache, kind)
	r := data.NewRNG(7, 1)
	var err error
	switch kind {
	case "sudoku4":
		err = trainer.BuildDemoSudoku(d, 32, 8, 8, 0, 1, nil)
	case "sudoku":
		o := build.SudokuOptions{Out: d, Box: 3, NumAug: 1, Seed: 1}
		o.Train, err = genSudokus(r, 8)
		if err == nil {
			o.Test, err = genSudokus(r, 4)
		}
		if err == nil {
			err = build.BuildSudoku(o)
		}
	case "maze":
		o := build.MazeOptions{Out: d, Seed: 1}
		for i := 0; i < 6 && err == nil; i++ {
			var m build.Maze
			m, err = build.GenerateMaze(r, 30, 0.1, 0)
			if i < 4 {
				o.Train = append(o.Train, m)
			} else {
				o.Test = append(o.Test, m)
			}
		}
		if err == nil {
			err = build.BuildMaze(o)
		}
	case "arc":
		prefix := filepath.Join(f.cache, "arc-json", "arc-agi")
		f.arcFiles(t, prefix, []string{"training", "evaluation"}, 3)
		_, err = build.BuildARC(build.ARCOptions{Out: d, Prefix: prefix, Subsets: []string{"training", "evaluation"}, TestSets: []string{"evaluation"}, NumAug: 1, Seed: 42})
	default:
		t.Fatalf("no fixture dataset of kind %q", kind)
	}
	if err != nil {
		t.Fatalf("fixture %s: %v", kind, err)
	}
	f.built[kind] = d
	return d
}

func genSudokus(r *data.RNG, n int) ([]build.SudokuPuzzle, error) {
	out := make([]build.SudokuPuzzle, n)
	for i := range out {
		var err error
		if out[i], err = build.GenerateSudoku(r, 3, 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// arcFiles writes <prefix>_<subset>_{challenges,solutions}.json with the
// first n tasks of the repository's copy of each subset.
func (f *fixtures) arcFiles(t *testing.T, prefix string, subsets []string, n int) {
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sub := range subsets {
		var keep []string
		for _, kind := range []string{"challenges", "solutions"} {
			src := filepath.Join(f.root, "testdata", "arc-agi", "arc-agi_"+sub+"_"+kind+".json")
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatalf("ARC fixture for subset %s: %v", sub, err)
			}
			var all map[string]json.RawMessage
			if err := json.Unmarshal(b, &all); err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			if keep == nil {
				for k := range all {
					keep = append(keep, k)
				}
				sort.Strings(keep)
				keep = keep[:min(n, len(keep))]
			}
			part := map[string]json.RawMessage{}
			for _, k := range keep {
				part[k] = all[k]
			}
			out, _ := json.Marshal(part)
			if err := os.WriteFile(prefix+"_"+sub+"_"+kind+".json", out, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// harness runs documented commands in a fresh directory of their own.
type harness struct {
	t    *testing.T
	fx   *fixtures
	dir  string // the working directory; absolute documented paths live under it
	fake string // recorders of srun, scontrol, ldconfig and the binaries
}

func newHarness(t *testing.T, fx *fixtures) *harness {
	h := &harness{t: t, fx: fx, dir: t.TempDir()}
	h.fake = filepath.Join(h.dir, ".fake")
	t.Chdir(h.dir)
	// A run in this process must not see the machine's launch environment.
	for _, k := range []string{"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
		"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "TRM_MASTER_PORT", "TRM_RDZV_SECRET",
		"TRM_METRICS_ADDR", "TRM_RENDEZVOUS_TIMEOUT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	return h
}

// absRoots are the absolute directories documented commands use (inside
// containers and on clusters); they are placed under the harness's
// directory.
var absRoots = []string{"/data", "/runs", "/shared"}

// remap moves the documented absolute paths of s under the harness's
// directory.
func (h *harness) remap(s string) string {
	for _, r := range absRoots {
		re := regexp.MustCompile(`(^|[\[,=:])` + regexp.QuoteMeta(r) + `(/|$|[\],])`)
		s = re.ReplaceAllString(s, "${1}"+h.dir+r+"${2}")
	}
	return s
}

func (h *harness) run(c docCommand) {
	t := h.t
	if c.synopsis {
		h.synopsis(c)
		return
	}
	dirs := strings.NewReplacer("@PWD@", h.dir, "@HOME@", filepath.Join(h.dir, "home"))
	w := make([]string, len(c.words))
	for i, x := range c.words {
		w[i] = dirs.Replace(x)
	}
	for k, v := range c.env {
		c.env[k] = dirs.Replace(v)
	}
	if len(w) == 0 {
		return
	}
	switch {
	case len(w) >= 2 && w[0] == "trm-train" && allowlisted["trm-train "+w[1]] != "":
		t.Logf("not run: %s", allowlisted["trm-train "+w[1]])
		return
	case w[0] == "trm-train":
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		h.trm(w[1:])
		return
	case w[0] == "deploy/multinode/trm-launch":
		env := map[string]string{"GPUS_PER_NODE": "2"}
		for k, v := range c.env {
			env[k] = v
		}
		h.launch(w[1:], env)
		return
	case w[0] == "sbatch" && w[len(w)-1] == "deploy/slurm/trm-train.sbatch":
		h.sbatch(c.env)
		return
	case len(w) >= 4 && w[0] == "kubectl" && w[1] == "apply" && w[2] == "-f" && w[3] == "deploy/kubernetes/trm-train-job.yaml":
		h.kubernetes()
		return
	case len(w) >= 2 && w[0] == "docker" && w[1] == "run":
		image := h.dockerRun(w[2:])
		if image == "trm:cuda" {
			return
		}
		if reason, ok := allowlisted["docker run "+image]; ok {
			t.Logf("not run: %s", reason)
			return
		}
		t.Errorf("%s: docker run of image %s, which this test does not know: add it to allowlisted with the reason, or use trm:cuda", c.src, image)
		return
	}
	for n := min(3, len(w)); n >= 1; n-- {
		if reason, ok := allowlisted[strings.Join(w[:n], " ")]; ok {
			t.Logf("not run: %s", reason)
			return
		}
	}
	t.Errorf("%s: documented command %q is neither run by this test nor on its allowlist (allowlisted, with the reason)", c.src, c.line)
}

// synopsis checks an inline synopsis: its command path and every flag it
// names exist; alternatives (a|b) must all be subcommands.
func (h *harness) synopsis(c docCommand) {
	t := h.t
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	sub := func(cmd *cobra.Command, name string) *cobra.Command {
		for _, s := range cmd.Commands() {
			if s.Name() == name {
				return s
			}
		}
		return nil
	}
	cmd := root
	words := c.words[1:]
	for len(words) > 0 {
		if next := sub(cmd, words[0]); next != nil {
			cmd, words = next, words[1:]
			continue
		}
		if alts := strings.Split(words[0], "|"); len(alts) > 1 {
			for _, a := range alts {
				if sub(cmd, a) == nil {
					t.Errorf("%s: %q: %s has no subcommand %q", c.src, c.line, cmd.CommandPath(), a)
				}
			}
		} else if cmd == root && !placeholder.MatchString(words[0]) {
			t.Errorf("%s: %q: unknown command %q", c.src, c.line, words[0])
		}
		break
	}
	flagName := regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	for _, w := range words {
		for _, m := range flagName.FindAllStringSubmatch(w, -1) {
			if cmd.Flags().Lookup(m[1]) == nil && cmd.InheritedFlags().Lookup(m[1]) == nil && m[1] != "help" {
				t.Errorf("%s: %q: %s has no flag --%s", c.src, c.line, cmd.CommandPath(), m[1])
			}
		}
	}
}

// trm runs one trm-train command line in this process: train and eval
// and the data builders as dry runs, the others for real.
func (h *harness) trm(args []string) {
	t := h.t
	for i := range args {
		args[i] = h.remap(args[i])
	}
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatalf("trm-train %v: %v", args, err)
	}
	help := false
	for _, a := range args {
		help = help || a == "-h" || a == "--help"
	}
	path := strings.TrimPrefix(cmd.CommandPath(), "trm-train ")
	dry := !help && (path == "train" || path == "eval" || path == "data sudoku" || path == "data maze" || path == "data arc")
	if dry && !contains(args, "--dry-run") {
		args = append(args, "--dry-run")
	}
	if !help {
		h.prepare(path, rest)
	}
	var o, e bytes.Buffer
	code := run(args, &o, &e)
	if code != 0 {
		t.Fatalf("trm-train %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, o.String(), e.String())
	}
	if dry && (path == "train" || path == "eval") && !json.Valid(o.Bytes()) {
		t.Errorf("trm-train %s --dry-run: stdout is not the JSON config:\n%s", strings.Join(args, " "), o.String())
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// flagValues returns the values of --name in args (both --name v and
// --name=v).
func flagValues(args []string, name string) []string {
	var out []string
	for i, a := range args {
		switch {
		case a == "--"+name && i+1 < len(args):
			out = append(out, args[i+1])
		case strings.HasPrefix(a, "--"+name+"="):
			out = append(out, strings.TrimPrefix(a, "--"+name+"="))
		}
	}
	return out
}

// positional returns the arguments that are neither flags nor their
// values nor key=value overrides (flags taking values are those of cmd).
func positional(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "-"):
			if !strings.Contains(a, "=") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && !isBoolFlag(a) {
				i++
			}
		case strings.Contains(a, "="):
		default:
			out = append(out, a)
		}
	}
	return out
}

func isBoolFlag(a string) bool {
	switch strings.TrimLeft(a, "-") {
	case "dry-run", "quiet", "force", "aug", "early-exit", "h", "help":
		return true
	}
	return false
}

// prepare writes the fixtures the arguments of a command refer to.
func (h *harness) prepare(path string, args []string) {
	for _, a := range args {
		for _, key := range []string{"data_paths=", "data_paths_test=", "+data_paths="} {
			if strings.HasPrefix(a, key) {
				for _, d := range strings.Split(strings.Trim(strings.TrimPrefix(a, key), "[]"), ",") {
					h.dataset(strings.Trim(d, `"' `))
				}
			}
		}
	}
	for _, d := range flagValues(args, "data") {
		h.dataset(d)
	}
	for _, flag := range []string{"checkpoint", "resume"} {
		for _, d := range flagValues(args, flag) {
			if d != trainer.ResumeAuto { // auto starts fresh in an empty --out
				h.checkpoint(d)
			}
		}
	}
	switch path {
	case "data check", "data show":
		for _, d := range positional(args) {
			h.dataset(d)
		}
	case "plot":
		for _, p := range positional(args) {
			h.checkpoint(filepath.Dir(p))
		}
	case "data sudoku", "data maze":
		for _, d := range flagValues(args, "csv-dir") {
			h.csv(strings.TrimPrefix(path, "data "), d)
		}
	case "data arc":
		subsets := []string{"training", "evaluation", "concept"}
		if v := flagValues(args, "subsets"); len(v) > 0 {
			subsets = splitList(v[0])
		}
		for _, p := range flagValues(args, "prefix") {
			h.fx.arcFiles(h.t, p, subsets, 2)
		}
	}
}

// dataset writes a small dataset at dir, its kind read from the name.
func (h *harness) dataset(dir string) {
	if data.Exists(dir, "train") {
		return
	}
	base := strings.ToLower(filepath.Base(dir))
	var kind string
	switch {
	case strings.Contains(base, "arc"):
		kind = "arc"
	case strings.Contains(base, "maze"):
		kind = "maze"
	case strings.Contains(base, "sudoku4"):
		kind = "sudoku4"
	case strings.Contains(base, "sudoku"):
		kind = "sudoku"
	default:
		h.t.Fatalf("no fixture for the documented dataset %s: name it after its kind (sudoku, sudoku4, maze, arc) or teach documented_test.go", dir)
	}
	copyDir(h.t, h.fx.dataset(h.t, kind), dir)
}

// checkpoint trains a tiny model for two steps into dir, on the dataset
// the documents pair with it: runs/NAME trains on data/NAME.
func (h *harness) checkpoint(dir string) {
	if _, err := os.Stat(dir); err == nil {
		return
	}
	ds := filepath.Join(filepath.Dir(filepath.Dir(dir)), "data", filepath.Base(dir))
	h.dataset(ds)
	for _, k := range append(rankVars, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE") {
		h.t.Setenv(k, "") // the fixture trains in this one process
	}
	var o, e bytes.Buffer
	args := []string{"train", "--quiet", "--out", dir, "data_paths=[" + ds + "]", "global_batch_size=16", "epochs=8", "eval_interval=8",
		"max_steps=2", "eval_max_batches=1", "min_eval_interval=1", "arch.hidden_size=16", "arch.num_heads=2", "arch.puzzle_emb_ndim=16", "arch.expansion=2",
		"arch.H_cycles=1", "arch.L_cycles=1", "arch.L_layers=1", "arch.halt_max_steps=2"}
	if code := run(args, &o, &e); code != 0 {
		h.t.Fatalf("fixture checkpoint %s: exit %d\n%s\n%s", dir, code, o.String(), e.String())
	}
}

// csv writes train.csv and test.csv of a few puzzles in the reference's
// CSV layout (source,question,answer,rating).
func (h *harness) csv(kind, dir string) {
	t := h.t
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := data.NewRNG(3, 1)
	for _, split := range []string{"train", "test"} {
		var b strings.Builder
		b.WriteString("source,question,answer,rating\n")
		for i := 0; i < 3; i++ {
			switch kind {
			case "sudoku":
				p, err := build.GenerateSudoku(r, 3, 0)
				if err != nil {
					t.Fatal(err)
				}
				cell := func(v byte) byte {
					if v == 0 {
						return '.'
					}
					return '0' + v
				}
				q, a := make([]byte, len(p.Question)), make([]byte, len(p.Answer))
				for j := range q {
					q[j], a[j] = cell(p.Question[j]), cell(p.Answer[j])
				}
				fmt.Fprintf(&b, "fixture,%s,%s,%d\n", q, a, p.Rating)
			case "maze":
				m, err := build.GenerateMaze(r, 30, 0.1, 0)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "fixture,%s,%s,0\n", m.Question, m.Answer)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, split+".csv"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func copyDir(t *testing.T, src, dst string) {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/usr/bin/env bash\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// recorder is a script body that writes the environment variables named
// and its arguments, NUL-separated, to a new file in dir.
func recorder(dir string, vars ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "f=$(mktemp %s/rec.XXXXXX)\n{\n", dir)
	for _, v := range vars {
		fmt.Fprintf(&b, "  printf '%%s\\0' \"%s=${%s:-}\"\n", v, v)
	}
	b.WriteString("  printf '%s\\0' --\n  printf '%s\\0' \"$@\"\n} > \"$f\"\n")
	return b.String()
}

// record is one recorded invocation.
type record struct {
	env  map[string]string
	args []string
}

func readRecords(t *testing.T, dir string) []record {
	files, _ := filepath.Glob(filepath.Join(dir, "rec.*"))
	sort.Strings(files)
	var out []record
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		r := record{env: map[string]string{}}
		for i, p := range parts {
			if p == "--" {
				r.args = parts[i+1:]
				if len(r.args) == 1 && r.args[0] == "" {
					r.args = nil
				}
				break
			}
			k, v, _ := strings.Cut(p, "=")
			r.env[k] = v
		}
		out = append(out, r)
	}
	return out
}

var rankVars = []string{"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
	"TRM_RDZV_SECRET", "TRM_RENDEZVOUS_TIMEOUT", "NCCL_DEBUG"}

// bashRun runs a script with env added to this process's and returns its
// combined output.
func (h *harness) bashRun(script string, args []string, env map[string]string) string {
	t := h.t
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+h.fake+":"+os.Getenv("PATH"), "HOME="+filepath.Join(h.dir, "home"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash %s %v: %v\n%s", script, args, err, out)
	}
	return string(out)
}

// runRanks runs each recorded trm-train invocation in this process with
// the rank's environment.
func (h *harness) runRanks(recs []record, extra map[string]string) {
	t := h.t
	if len(recs) == 0 {
		t.Fatal("the launch started no trm-train process")
	}
	for _, r := range recs {
		for k, v := range r.env {
			if v != "" {
				t.Setenv(k, v)
			}
		}
		for k, v := range extra {
			t.Setenv(k, v)
		}
		h.trm(append([]string(nil), r.args...))
	}
}

// launch runs deploy/multinode/trm-launch with trm-train replaced by a
// recorder, then each rank's command line here.
func (h *harness) launch(args []string, env map[string]string) {
	t := h.t
	rec := filepath.Join(h.dir, ".rec-launch")
	os.MkdirAll(rec, 0o755)
	bin := filepath.Join(h.fake, "trm-train-recorder")
	writeScript(t, bin, recorder(rec, rankVars...))
	env["TRM_TRAIN"] = bin
	for k, v := range env {
		env[k] = h.remap(v)
	}
	for i := range args {
		args[i] = h.remap(args[i])
	}
	h.bashRun(filepath.Join(h.fx.root, "deploy", "multinode", "trm-launch"), args, env)
	recs := readRecords(t, rec)
	secret := ""
	for _, r := range recs {
		if r.env["TRM_RDZV_SECRET"] == "" || (secret != "" && r.env["TRM_RDZV_SECRET"] != secret) {
			t.Errorf("ranks do not share one TRM_RDZV_SECRET: %q", r.env["TRM_RDZV_SECRET"])
		}
		secret = r.env["TRM_RDZV_SECRET"]
	}
	h.runRanks(recs, nil)
}

// sbatch runs the SLURM script with srun and scontrol replaced by
// recorders: the fresh start, the requeued start (which resumes), and a
// SIGTERM (forwarded to srun, then a requeue).
func (h *harness) sbatch(env map[string]string) {
	t := h.t
	rec := filepath.Join(h.dir, ".rec-srun")
	os.MkdirAll(rec, 0o755)
	requeue := filepath.Join(h.dir, ".requeued")
	writeScript(t, filepath.Join(h.fake, "srun"), recorder(rec, rankVars...)+`
if [ -n "${FAKE_SRUN_WAIT:-}" ]; then
	trap 'echo TERM > "$FAKE_SRUN_WAIT"; kill $sleeper; exit 0' TERM
	sleep 30 &
	sleeper=$!
	touch "$FAKE_SRUN_WAIT.started"
	wait
fi
`)
	writeScript(t, filepath.Join(h.fake, "scontrol"), `case "$1 $2" in
"show hostnames") printf 'node0\nnode1\n' ;;
"requeue "*) echo "$2" > `+requeue+` ;;
*) echo "scontrol $*: unexpected" >&2; exit 1 ;;
esac
`)
	script := filepath.Join(h.fx.root, "deploy", "slurm", "trm-train.sbatch")
	senv := map[string]string{"SLURM_JOB_NODELIST": "node[0-1]", "SLURM_JOB_ID": "4242"}
	for k, v := range env {
		senv[k] = h.remap(v)
	}
	slurm := map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "16", "SLURM_LOCALID": "0", "SLURM_NTASKS_PER_NODE": "8", "WORLD_SIZE": ""}
	runTasks := func() []record {
		recs := readRecords(t, rec)
		for _, r := range recs {
			i := 0
			for i < len(r.args) && r.args[i] != "trm-train" {
				i++
			}
			if i == len(r.args) {
				t.Fatalf("srun was not asked to run trm-train: %q", r.args)
			}
			r.args = r.args[i+1:]
			h.runRanks([]record{r}, slurm)
		}
		return recs
	}
	h.bashRun(script, nil, senv)
	recs := runTasks()
	if len(recs) != 1 || contains(recs[0].args, "--resume") || recs[0].env["TRM_RDZV_SECRET"] == "" || recs[0].env["MASTER_ADDR"] != "node0" {
		t.Fatalf("fresh start: srun got %+v", recs)
	}
	run := flagValues(recs[0].args, "out")
	if len(run) != 1 {
		t.Fatalf("fresh start without --out: %q", recs[0].args)
	}
	if !h.fx.once("sbatch restart") {
		return // the restart and the signal are checked once per test run
	}
	// The requeued job finds the checkpoint and resumes.
	h.checkpoint(run[0])
	os.RemoveAll(rec)
	os.MkdirAll(rec, 0o755)
	h.bashRun(script, nil, senv)
	recs = runTasks()
	if len(recs) != 1 || !contains(recs[0].args, "--resume") {
		t.Fatalf("restart over a checkpoint: srun got %+v", recs)
	}
	// SIGTERM reaches srun, then the job is requeued.
	wait := filepath.Join(h.dir, ".srun-term")
	senv["FAKE_SRUN_WAIT"] = wait
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "PATH="+h.fake+":"+os.Getenv("PATH"), "HOME="+filepath.Join(h.dir, "home"))
	for k, v := range senv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(wait + ".started"); err == nil {
			break
		}
		sleepMS(10)
	}
	if err := cmd.Process.Signal(sigterm); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the batch script after SIGTERM: %v\n%s", err, out.String())
	}
	if b, err := os.ReadFile(wait); err != nil || strings.TrimSpace(string(b)) != "TERM" {
		t.Errorf("srun did not get the SIGTERM: %v %q", err, b)
	}
	if b, err := os.ReadFile(requeue); err != nil || strings.TrimSpace(string(b)) != "4242" {
		t.Errorf("the job was not requeued after SIGTERM: %v %q", err, b)
	}
}

// kubernetes checks the Job's pod spec and runs its container: the
// command (the launcher from the ConfigMap) with its args and env.
func (h *harness) kubernetes() {
	t := h.t
	b, err := os.ReadFile(filepath.Join(h.fx.root, "deploy", "kubernetes", "trm-train-job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	type job struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Template struct {
				Metadata struct {
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"metadata"`
				Spec struct {
					TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
					SecurityContext               struct {
						FSGroup *int `yaml:"fsGroup"`
					} `yaml:"securityContext"`
					Containers []struct {
						Command []string `yaml:"command"`
						Args    []string `yaml:"args"`
						Env     []envVar `yaml:"env"`
						Ports   []struct {
							ContainerPort int    `yaml:"containerPort"`
							Name          string `yaml:"name"`
						} `yaml:"ports"`
						VolumeMounts []struct {
							Name      string `yaml:"name"`
							MountPath string `yaml:"mountPath"`
						} `yaml:"volumeMounts"`
					} `yaml:"containers"`
					Volumes []struct {
						Name      string `yaml:"name"`
						ConfigMap *struct {
							Name string `yaml:"name"`
						} `yaml:"configMap"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var j *job
	for {
		var d job
		if err := dec.Decode(&d); err != nil {
			break
		}
		if d.Kind == "Job" {
			j = &d
		}
	}
	if j == nil || len(j.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("trm-train-job.yaml: no Job with one container")
	}
	ps := j.Spec.Template.Spec
	ctr := ps.Containers[0]
	if ps.TerminationGracePeriodSeconds < 300 {
		t.Errorf("terminationGracePeriodSeconds %d: a checkpoint needs 300 (README.md)", ps.TerminationGracePeriodSeconds)
	}
	if ps.SecurityContext.FSGroup == nil {
		t.Error("no fsGroup: the trm user cannot write the volumes")
	}
	ann := j.Spec.Template.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "9400" {
		t.Errorf("scrape annotations: %v", ann)
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "0" // the completion index of pod 0
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = substitution
		default:
			env[e.Name] = e.Value
		}
	}
	if env["TRM_RDZV_SECRET"] != substitution {
		t.Error("TRM_RDZV_SECRET does not come from a Secret")
	}
	ports := map[int]string{}
	for _, p := range ctr.Ports {
		ports[p.ContainerPort] = p.Name
	}
	var gpus int
	fmt.Sscan(env["GPUS_PER_NODE"], &gpus)
	for i := 0; i < gpus; i++ {
		if ports[9400+i] == "" {
			t.Errorf("local rank %d's metrics port %d is not declared", i, 9400+i)
		}
	}
	// The command runs the launcher mounted from the ConfigMap that the
	// documented kubectl create configmap makes from the repository's file.
	if len(ctr.Command) != 2 || ctr.Command[0] != "bash" || ctr.Command[1] != "/launch/trm-launch" {
		t.Fatalf("container command %q: want bash /launch/trm-launch", ctr.Command)
	}
	mounted := false
	for _, m := range ctr.VolumeMounts {
		for _, v := range ps.Volumes {
			if m.Name == v.Name && m.MountPath == "/launch" && v.ConfigMap != nil && v.ConfigMap.Name == "trm-launch" {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Error("/launch is not the ConfigMap trm-launch")
	}
	h.launch(append([]string(nil), ctr.Args...), env)
}

// dockerRun runs the image's entrypoint as docker run would: volumes
// mapped into the harness's directory, the entrypoint choosing a build
// (libcuda.so.1 is loadable only with --gpus), then the chosen build's
// command line here. It returns the image; only trm:cuda is run.
func (h *harness) dockerRun(w []string) string {
	t := h.t
	valued := map[string]bool{"-v": true, "--volume": true, "-p": true, "--publish": true, "-e": true, "--env": true,
		"--user": true, "-u": true, "--gpus": true, "--name": true, "--network": true, "-w": true, "--workdir": true,
		"--shm-size": true, "--ipc": true, "--entrypoint": true, "--stop-timeout": true}
	type opt struct{ name, val string }
	var opts []opt
	i := 0
	for ; i < len(w) && strings.HasPrefix(w[i], "-"); i++ {
		name, val, hasVal := strings.Cut(w[i], "=")
		if valued[name] && !hasVal {
			i++
			if i < len(w) {
				val = w[i]
			}
		}
		opts = append(opts, opt{name, val})
	}
	if i == len(w) {
		t.Fatal("docker run without an image")
	}
	if w[i] != "trm:cuda" {
		return w[i]
	}
	gpus := false
	env := map[string]string{}
	for _, o := range opts {
		switch o.name {
		case "--gpus":
			gpus = true
		case "-e", "--env":
			k, v, _ := strings.Cut(o.val, "=")
			env[k] = v
		case "-v", "--volume":
			host, ctrPath, _ := strings.Cut(o.val, ":")
			ctrPath, _, _ = strings.Cut(ctrPath, ":")
			if want := h.remap(ctrPath); host != want {
				t.Errorf("volume %s: this test places %s at %s", o.val, ctrPath, want)
			}
		}
	}
	args := w[i+1:]
	bins := filepath.Join(h.dir, ".bin")
	rec := filepath.Join(h.dir, ".rec-docker")
	os.MkdirAll(rec, 0o755)
	for _, b := range []string{"cpu", "cuda"} {
		writeScript(t, filepath.Join(bins, "trm-train-"+b), "BUILD="+b+"\n"+recorder(rec, "BUILD"))
	}
	ld := ""
	if gpus {
		ld = "echo '	libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1'"
	}
	writeScript(t, filepath.Join(h.fake, "ldconfig"), ld+"\n")
	env["TRM_BIN_DIR"] = bins
	env["LD_LIBRARY_PATH"] = ""
	h.bashRun(filepath.Join(h.fx.root, "deploy", "docker", "trm-entrypoint"), args, env)
	recs := readRecords(t, rec)
	if len(recs) != 1 {
		t.Fatalf("the entrypoint ran %d binaries", len(recs))
	}
	want := "cpu"
	if gpus {
		want = "cuda"
	}
	if got := recs[0].env["BUILD"]; got != want {
		t.Errorf("the entrypoint ran the %s build; with --gpus %v the %s build must run", got, gpus, want)
	}
	for k, v := range env {
		if k != "TRM_BIN_DIR" && k != "LD_LIBRARY_PATH" {
			t.Setenv(k, v)
		}
	}
	h.trm(recs[0].args)
	return "trm:cuda"
}

func sleepMS(n int) { time.Sleep(time.Duration(n) * time.Millisecond) }

var sigterm = syscall.SIGTERM
