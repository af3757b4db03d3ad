package repocheck

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// outside lists the ways a text can cite a document that is not in the
// repository. Words are joined by \s+ and literal characters are written
// as classes, so that no pattern's own source text matches any pattern:
// this file is checked like every other.
var outside = []struct {
	key  string // a lower-case word every match holds, to skip files fast
	re   *regexp.Regexp
	what string
}{
	{"spec", regexp.MustCompile(`(?i)\bspec\s+(section|§)`), "a section of a specification outside the repository"},
	{"spec", regexp.MustCompile(`(?i)\bthe\s+spec\b`), "a specification outside the repository"},
	{"spec", regexp.MustCompile(`(?i)\bspec[']s\b`), "a specification outside the repository"},
	{"spec", regexp.MustCompile(`(?i)\bspec[/][a-z]`), "a specification file outside the repository"},
	{"section", regexp.MustCompile(`(?i)\bsections?\s+[0-9]`), "a numbered section of a document (docs/ pages are cited by file and anchor)"},
	{"design", regexp.MustCompile(`\bDESIGN[.]md\b`), "a design note outside the repository"},
	{"conventions", regexp.MustCompile(`\bCONVENTIONS[.]md\b`), "a conventions note outside the repository"},
	{"shared", regexp.MustCompile(`[.][.][/]shared\b`), "a directory beside the checkout"},
	{"team", regexp.MustCompile(`[/]tmp[/]team\b`), "a directory outside the repository"},
}

// continuation is the start of a line that continues a comment or a
// paragraph: indentation and a comment marker, removed before a line is
// joined to the one above it.
var continuation = regexp.MustCompile(`^[ \t]*(//|#|\*|;|--)?[ \t]*`)

// docRef is a pointer into docs/ from any file: a page of docs/ (its
// .md file name) with an optional #anchor.
var docRef = regexp.MustCompile(`\bdocs/([A-Za-z0-9_-]+\.md)(#[A-Za-z0-9_-]+)?`)

// mdLink is a relative Markdown link to a .md file, with an optional anchor.
var mdLink = regexp.MustCompile(`\]\(([A-Za-z0-9_./-]+\.md)(#[A-Za-z0-9_-]+)?\)`)

// root finds the repository root: the nearest directory upward holding go.mod.
func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = up
	}
}

// files lists the repository's files relative to root: the tracked ones
// where git and the .git directory are available, else every file below
// root except version-control and build-output directories.
func files(t *testing.T, root string) []string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, ".git")); err == nil {
		if git, err := exec.LookPath("git"); err == nil {
			cmd := exec.Command(git, "ls-files", "-z")
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("git ls-files in %s: %v", root, err)
			}
			var list []string
			for _, p := range bytes.Split(out, []byte{0}) {
				if len(p) > 0 {
					list = append(list, string(p))
				}
			}
			return list
		}
	}
	var list []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch rel {
			case ".git", "bin", "dist":
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			list = append(list, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// readText returns a file's content, or ok false for a binary file (one
// holding a NUL byte), a directory entry git tracks as a submodule, or a
// link whose target is absent.
func readText(path string) (b []byte, ok bool, err error) {
	b, err = os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			if st, serr := os.Stat(path); serr == nil && st.IsDir() {
				return nil, false, nil
			}
			if _, lerr := os.Lstat(path); lerr == nil {
				return nil, false, nil // a dangling link: nothing to read
			}
		}
		return nil, false, err
	}
	return b, bytes.IndexByte(b, 0) < 0, nil
}

// slug is the anchor a Markdown heading gets (GitHub's rule): lower case,
// punctuation other than '-' and '_' dropped, spaces become '-'.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors lists the anchors of a Markdown file's headings (outside code
// blocks), with GitHub's -1, -2 suffixes for repeated headings.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fence := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fence = !fence
			continue
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimLeft(line, "#")
		if !strings.HasPrefix(h, " ") {
			continue
		}
		s := slug(strings.ReplaceAll(strings.ReplaceAll(h, "`", ""), "*", ""))
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// citations returns "LINE: what" for every citation of an outside document
// in text, including one broken over two lines of a comment.
func citations(text string) []string {
	var hits []int // indexes into outside of the patterns whose word text holds
	lower := strings.ToLower(text)
	for i, p := range outside {
		if strings.Contains(lower, p.key) {
			hits = append(hits, i)
		}
	}
	if len(hits) == 0 {
		return nil
	}
	var out []string
	lines := strings.Split(text, "\n")
	for n, line := range lines {
		next := ""
		if n+1 < len(lines) {
			next = continuation.ReplaceAllString(lines[n+1], "")
		}
		for _, i := range hits {
			p := outside[i]
			if m := p.re.FindString(line); m != "" {
				out = append(out, fmt.Sprintf("%d: %q cites %s; say it here or point to a page under docs/:\n\t%s", n+1, m, p.what, strings.TrimSpace(line)))
				continue
			}
			if m := p.re.FindString(line + " " + next); m != "" && !p.re.MatchString(next) {
				out = append(out, fmt.Sprintf("%d-%d: %q cites %s; say it here or point to a page under docs/:\n\t%s\n\t%s", n+1, n+2, m, p.what, strings.TrimSpace(line), strings.TrimSpace(lines[n+1])))
			}
		}
	}
	return out
}

// TestNoOutsideDocuments fails on every line of a tracked text file that
// cites a document outside the repository, printing file:line and the
// citation.
func TestNoOutsideDocuments(t *testing.T) {
	root := root(t)
	checked := 0
	for _, rel := range files(t, root) {
		b, ok, err := readText(filepath.Join(root, rel))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if !ok {
			continue
		}
		checked++
		for _, c := range citations(string(b)) {
			t.Errorf("%s:%s", rel, c)
		}
	}
	if checked < 50 {
		t.Fatalf("only %d text files found under %s: the file listing is broken", checked, root)
	}
}

// TestDocPointersResolve fails on a pointer to a docs/ page that does not
// exist or to an anchor that no heading of the page produces: every docs/
// page and #anchor cited in any tracked text file, and every relative .md
// link of a Markdown file.
func TestDocPointersResolve(t *testing.T) {
	root := root(t)
	cache := map[string]map[string]bool{} // page -> anchors, nil when absent
	target := func(page string) map[string]bool {
		if a, ok := cache[page]; ok {
			return a
		}
		b, err := os.ReadFile(filepath.Join(root, page))
		var a map[string]bool
		if err == nil {
			a = anchors(string(b))
		}
		cache[page] = a
		return a
	}
	refs := 0
	check := func(rel string, n int, page, anchor string) {
		refs++
		a := target(page)
		if a == nil {
			t.Errorf("%s:%d: points to %s, which the repository does not hold", rel, n, page)
			return
		}
		if anchor != "" && !a[strings.TrimPrefix(anchor, "#")] {
			t.Errorf("%s:%d: %s has no heading giving the anchor %s", rel, n, page, anchor)
		}
	}
	for _, rel := range files(t, root) {
		b, ok, err := readText(filepath.Join(root, rel))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if !ok {
			continue
		}
		markdown := strings.HasSuffix(rel, ".md")
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range docRef.FindAllStringSubmatch(line, -1) {
				check(rel, i+1, "docs/"+m[1], m[2])
			}
			if !markdown {
				continue
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				if strings.Contains(m[0], "://") {
					continue
				}
				page := filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(rel), m[1])))
				check(rel, i+1, page, m[2])
			}
		}
	}
	if refs == 0 {
		t.Fatal("no pointer into docs/ found: the patterns no longer match the repository's citations")
	}
}

// TestSlug pins the anchor rule on the heading forms the docs use.
func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"The ACT step and the carry":    "the-act-step-and-the-carry",
		"Puzzle embedding: sign-SGD":    "puzzle-embedding-sign-sgd",
		"pass@K":                        "passk",
		"ARC scoring: voting, pass@K":   "arc-scoring-voting-passk",
		"trm (`recursive_reasoning.x`)": "trm-recursive_reasoningx",
	} {
		if got := slug(strings.ReplaceAll(h, "`", "")); got != want {
			t.Errorf("slug(%q) = %q, want %q", h, got, want)
		}
	}
	a := anchors("# A\n```\n## Not a heading\n```\n## B\n## B\n")
	for _, k := range []string{"a", "b", "b-1"} {
		if !a[k] {
			t.Errorf("anchors: %q missing from %v", k, a)
		}
	}
	if a["not-a-heading"] {
		t.Error("anchors: a line inside a code block was taken as a heading")
	}
}

// TestOutsidePatterns checks that each pattern catches the citation it is
// for and leaves ordinary uses of the same words alone. The citations are
// assembled from pieces so that this file does not hold them.
func TestOutsidePatterns(t *testing.T) {
	cite := []string{
		"// Loss head (" + "spec" + " sect" + "ion 5): stablemax",
		"// ACT bookkeeping (spec " + "§4)",
		"// the order of " + "the" + " spec: per pass",
		"// forms the " + "spec" + "'s" + " sums",
		"// see " + "spec/" + "trm.md",
		"// as " + "Section" + " 7 says",
		"// what the library lacks (" + "DESIGN" + ".md)",
		"see " + "CONVENTIONS" + ".md",
		"cat " + "../" + "shared/golden/README.md",
		"notes in " + "/tmp/" + "team/RULES.md",
	}
	for _, line := range cite {
		hit := false
		for _, p := range outside {
			hit = hit || p.re.MatchString(line)
		}
		if !hit {
			t.Errorf("no pattern catches %q", line)
		}
	}
	split := "// the order of the\n// " + "spec" + ": per pass\n"
	if c := citations(split); len(c) != 1 || !strings.HasPrefix(c[0], "1-2: ") {
		t.Errorf("citation broken over two comment lines: got %q, want one at lines 1-2", c)
	}
	if c := citations("x := the\nspecimen := 1\n"); len(c) != 0 {
		t.Errorf("ordinary lines taken for a citation: %q", c)
	}
	plain := []string{
		"func openBackend(spec string, threads int) (engine.Backend, error) {",
		"// kubernetes checks the Job's pod spec and runs its container",
		"Spec struct {",
		"for _, spec := range strings.Split(*configs, \",\") {",
		"the special-function units",
		"the generated section's markers are missing",
		"# The data-parallel section of the GPU check",
		"see docs/model.md#loss-head and cuda/standin/README.md",
	}
	for _, line := range plain {
		for _, p := range outside {
			if m := p.re.FindString(line); m != "" {
				t.Errorf("%q: pattern %s matches %q in an ordinary line", line, p.re, m)
			}
		}
	}
}
