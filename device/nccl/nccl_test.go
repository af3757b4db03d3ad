//go:build cgo

package nccl

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOpenAbsent checks the error where NCCL is not installed (this
// machine: Debian's CUDA toolkit has no NCCL). On a machine that has it,
// the library must load and report a 2.x version instead.
func TestOpenAbsent(t *testing.T) {
	l, err := Open()
	if err == nil {
		if l.Version < 20000 && l.Version/1000 != 2 {
			t.Fatalf("NCCL at %s reports version %d, not 2.x", l.Path, l.Version)
		}
		t.Logf("NCCL %s found at %s: the absent-library error cannot be checked here", l.VersionString(), l.Path)
		return
	}
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("error does not wrap ErrNotFound: %v", err)
	}
	for _, want := range []string{Soname, "TRM_NCCL", "tried:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	// Open caches its answer: the same error again, no second search.
	if _, err2 := Open(); err2 != err {
		t.Errorf("second Open returned a different error: %v", err2)
	}
}

// TestOpenMissingFile names the file that failed.
func TestOpenMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "libnccl.so.2")
	_, err := OpenPath(p)
	if err == nil || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), p) {
		t.Fatalf("OpenPath(%s) = %v, want ErrNotFound naming the path", p, err)
	}
}

// TestOpenNotNCCL loads a real shared library that is not NCCL: the error
// must name the first missing entry point, proving symbols are checked at
// load rather than at first call.
func TestOpenNotNCCL(t *testing.T) {
	_, err := OpenPath("libdl.so.2")
	if err == nil {
		t.Fatal("libdl.so.2 loaded as NCCL")
	}
	if !strings.Contains(err.Error(), "has no ncclGetVersion") {
		t.Fatalf("want the missing symbol named, got: %v", err)
	}
}

// TestCandidates checks the search order over a fake file system: the
// explicit file, LD_LIBRARY_PATH, the CUDA folder, then the wheels (the
// virtual environment's first, newer Python before older), then the soname.
func TestCandidates(t *testing.T) {
	root := t.TempDir()
	ld := filepath.Join(root, "ld")
	touch := func(dir string) string {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, Soname)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pLD := touch(ld)
	pCUDA := touch(filepath.Join(root, "usr/local/cuda/lib64"))
	p310 := touch(filepath.Join(root, "usr/local/lib/python3.10/site-packages/nvidia/nccl/lib"))
	p312 := touch(filepath.Join(root, "usr/local/lib/python3.12/site-packages/nvidia/nccl/lib"))
	venv := filepath.Join(root, "venv")
	pVenv := touch(filepath.Join(venv, "lib/python3.11/site-packages/nvidia/nccl/lib"))
	_ = touch(filepath.Join(root, "elsewhere")) // not searched
	got := candidates("/x/libnccl.so.2", ld+"::"+filepath.Join(root, "empty"), venv, "", root)
	want := []string{"/x/libnccl.so.2", pLD, pCUDA, pVenv, p312, p310, Soname}
	if !slices.Equal(got, want) {
		t.Fatalf("candidates:\n got %q\nwant %q", got, want)
	}
}

func TestVersionString(t *testing.T) {
	for v, want := range map[int]string{22105: "2.21.5", 21803: "2.18.3", 2804: "2.8.4"} {
		if got := (&Lib{Version: v}).VersionString(); got != want {
			t.Errorf("VersionString(%d) = %s, want %s", v, got, want)
		}
	}
	if got := (&Lib{Version: 22105, Emulated: true}).VersionString(); got != "2.21.5 (CPU stand-in, emulated)" {
		t.Errorf("the stand-in's VersionString = %s, want it labelled", got)
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Call: "ncclAllReduce", Code: RemoteError, Msg: "remote process exited or there was a network error", Detail: "socket closed"}
	s := e.Error()
	for _, want := range []string{"ncclAllReduce", "ncclResult_t 6", "socket closed"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
}
