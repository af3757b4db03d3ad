package doccheck

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// fixture is a small package with one undocumented name of each kind the
// checker looks at, next to documented ones and names it must skip.
var fixture = map[string]string{
	"a.go": `// Package fix is a fixture.
package fix

// Documented has a comment.
func Documented() {}

func Bare() {}

// T is documented; its field Y is not.
type T struct {
	// X is documented.
	X int
	Y int
	Z int // Z has a line comment.
	w int
}

// M is documented.
func (T) M() {}

func (*T) N() {}

type hidden struct{}

func (hidden) Skipped() {}

// G is generic.
type G[E any] struct{}

func (G[E]) Get() {}

// The group's comment covers A and B.
const (
	A = 1
	B = 2
)

var V, W int

var (
	// P is documented.
	P int
	Q int
)
`,
	"b.go": `package fix

type U interface {
	// Do is documented.
	Do()
	Undo()
}
`,
	"b_test.go": `package fix

func TestOnly() {}
`,
	"other.go": `package main

func Elsewhere() {}
`,
}

// TestMissing: on the fixture, Missing names exactly the undocumented
// exported names (a function, a field, a pointer method, a generic type's
// method, two variables of one spec, a variable in a group, an interface
// and its method) and skips documented ones, unexported ones, methods of
// unexported types, test files and files of another package.
func TestMissing(t *testing.T) {
	dir := t.TempDir()
	for name, src := range fixture {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	checked, missing, err := Missing(dir, "fix")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range missing {
		if !strings.HasPrefix(m, dir) {
			t.Errorf("%q does not start with the file's path", m)
		}
		names = append(names, m[strings.LastIndex(m, " ")+1:])
	}
	want := []string{"Bare", "T.Y", "T.N", "G.Get", "V", "W", "Q", "U", "U.Undo"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("missing %v, want %v", names, want)
	}
	// The package comment, Documented, Bare, T, M, N, G, Get, A, B, V,
	// W, P, Q and U.
	if checked != 15 {
		t.Errorf("checked %d names, want 15", checked)
	}
	if _, _, err := Missing(dir, "nosuch"); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("a package with no files: error %v, want one naming %s", err, dir)
	}
}

// TestCheck: Check reports each missing comment as an error of its own,
// and fails when it finds fewer names than the caller expects.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	src := "// Package fix is a fixture.\npackage fix\n\nfunc Bare() {}\n\n// Doc is documented.\nfunc Doc() {}\n"
	if err := os.WriteFile(filepath.Join(dir, "a.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := runCheck(t, dir, 3)
	if len(rec.errors) != 1 || !strings.HasSuffix(rec.errors[0], ": Bare") || rec.fatal != "" {
		t.Errorf("errors %q, fatal %q: want one error for Bare", rec.errors, rec.fatal)
	}
	rec = runCheck(t, dir, 4)
	if !strings.Contains(rec.fatal, "only 3 exported names") {
		t.Errorf("fatal %q: want the walk reported broken below the minimum", rec.fatal)
	}
}

// runCheck runs Check on package fix in dir with a recorder, on a
// goroutine of its own, since the recorder's Fatal ends the goroutine.
func runCheck(t *testing.T, dir string, min int) *recorder {
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Check(rec, dir, "fix", min)
	}()
	<-done
	return rec
}

// recorder is a testing.TB that keeps Check's failures instead of failing
// the test that runs it.
type recorder struct {
	testing.TB
	errors []string
	fatal  string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}
