// Package nccl binds NVIDIA's collective communication library (NCCL) at
// run time: libnccl.so.2 is opened with dlopen and called through our own
// prototypes of its stable C API, so this package compiles and links in
// the default build without CUDA or NCCL anywhere on the machine. Where
// the library is absent, Open returns an error wrapping ErrNotFound that
// lists every place searched.
//
// Why dlopen: the GPU machines ship NCCL inside PyTorch's pip wheel
// (site-packages/nvidia/nccl/lib), not in the system's library path, and
// the toolkit here (Debian's CUDA 11.8) has no NCCL at all. Linking would
// tie the binary to one install; dlopen finds whichever is there.
//
// Device memory and streams cross this API as uintptr (CUdeviceptr and
// CUstream values): the package never dereferences them and must not
// import the CUDA bindings (gorgonia.org/cu exits in its init without a
// GPU). The cuda-tagged package device/gpucomm adapts a Comm to the
// engine's collective interface over the CUDA backend's buffers.
package nccl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Soname is the library Open looks for: NCCL 2's ABI, stable since 2.0.
const Soname = "libnccl.so.2"

// ErrNotFound is wrapped by Open's error when no candidate file loaded
// with every entry point.
var ErrNotFound = errors.New("NCCL library not found")

// DataType is NCCL's ncclDataType_t.
type DataType int

// The element types used here (values from nccl.h, stable across 2.x).
const (
	Int32   DataType = 2
	Float32 DataType = 7
	Float64 DataType = 8
)

func (d DataType) String() string {
	switch d {
	case Int32:
		return "int32"
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	}
	return fmt.Sprintf("ncclDataType_t(%d)", int(d))
}

// redSum is ncclSum (ncclRedOp_t 0).
const redSum = 0

// Result codes of ncclResult_t that callers may want to tell apart.
const (
	Success            = 0
	UnhandledCudaError = 1
	SystemError        = 2
	InternalError      = 3
	InvalidArgument    = 4
	InvalidUsage       = 5
	RemoteError        = 6
	InProgress         = 7
)

// Error is a failed NCCL call: the entry point, its ncclResult_t and
// NCCL's own description (plus its last-error detail where it has one).
type Error struct {
	Call   string
	Code   int
	Msg    string
	Detail string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s (ncclResult_t %d)", e.Call, e.Msg, e.Code)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// VersionString formats Version as major.minor.patch, labelled when the
// library is the CPU stand-in (cuda/standin), so logs never pass it off as
// NVIDIA's.
func (l *Lib) VersionString() string {
	v := l.Version
	var s string
	if v >= 10000 { // 2.9 and later: major*10000 + minor*100 + patch
		s = fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
	} else {
		s = fmt.Sprintf("%d.%d.%d", v/1000, v/100%10, v%100)
	}
	if l.Emulated {
		s += " (CPU stand-in, emulated)"
	}
	return s
}

// Candidates lists where NCCL is looked for, in order: the file named by
// TRM_NCCL, every LD_LIBRARY_PATH folder, the CUDA install folders,
// Debian's multiarch folder, the Python wheels' site-packages/nvidia/nccl/lib
// under the usual prefixes (system, /usr/local, /opt virtual environments,
// conda, ~/.local, $VIRTUAL_ENV; newest Python first), and finally the bare
// soname for the dynamic loader's own search (ld.so.cache).
func Candidates() []string {
	return candidates(os.Getenv("TRM_NCCL"), os.Getenv("LD_LIBRARY_PATH"), os.Getenv("VIRTUAL_ENV"), os.Getenv("HOME"), "/")
}

// candidates is Candidates with its inputs explicit, and every absolute
// search folder under root (tests point it at a temporary tree).
func candidates(explicit, ldPath, venv, home, root string) []string {
	var dirs []string
	for _, d := range strings.Split(ldPath, ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	under := func(p string) string { return filepath.Join(root, p) }
	dirs = append(dirs, under("/usr/local/cuda/lib64"), under("/usr/local/cuda/targets/x86_64-linux/lib"), under("/usr/lib/x86_64-linux-gnu"))
	pats := []string{
		"/usr/lib/python3*/site-packages", "/usr/lib/python3/dist-packages", "/usr/local/lib/python3*/site-packages",
		"/usr/local/lib/python3*/dist-packages", "/opt/*/.venv/lib/python3*/site-packages", "/opt/*/lib/python3*/site-packages",
		"/opt/conda/lib/python3*/site-packages", "/root/.local/lib/python3*/site-packages",
	}
	for i := range pats {
		pats[i] = under(pats[i])
	}
	if home != "" {
		pats = append(pats, filepath.Join(home, ".local/lib/python3*/site-packages"))
	}
	var wheels []string
	for _, pat := range pats {
		m, _ := filepath.Glob(filepath.Join(pat, "nvidia", "nccl", "lib"))
		wheels = append(wheels, m...)
	}
	// Lexical reverse order puts python3.12 before python3.10; good
	// enough to prefer the newer interpreter's wheels.
	sort.Stable(sort.Reverse(sort.StringSlice(wheels)))
	if venv != "" {
		m, _ := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages", "nvidia", "nccl", "lib"))
		wheels = append(m, wheels...)
	}
	dirs = append(dirs, wheels...)
	var out []string
	if explicit != "" {
		out = append(out, explicit)
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		p := filepath.Join(d, Soname)
		if seen[p] {
			continue
		}
		seen[p] = true
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return append(out, Soname)
}

// UniqueID is ncclUniqueId: the opaque 128 bytes rank 0 creates and every
// other rank must receive (out of band, e.g. over the rendezvous) before
// joining the communicator.
type UniqueID [128]byte
