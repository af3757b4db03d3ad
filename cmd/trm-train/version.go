package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version and revision are stamped by the build, e.g.
//
//	go build -ldflags "-X main.version=v0.3.0 -X main.revision=$(git rev-parse HEAD)"
//
// (make build and Dockerfile.cuda do). Without a stamp, the module version
// and the VCS revision that go build records (runtime/debug) are used;
// both are absent where the source has no .git (a Docker build context),
// hence the stamp.
var (
	version  = ""
	revision = ""
)

// kernelFatbin returns the CUDA kernels this binary would load and where
// they come from; set by the cuda build (version_cuda.go), nil otherwise.
var kernelFatbin func() ([]byte, string, error)

func init() { register(newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version, VCS revision, Go version, backends and CUDA kernel targets",
		Long: `Prints the module version, the VCS revision the binary was built from, the Go
version, whether the CUDA backend is built in (go build -tags cuda) and the
GPU targets of its kernels. trm-train --version prints the same.` + envHelp("TRM_CUDA_FATBIN"),
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			fmt.Fprintln(c.OutOrStdout(), versionString())
			return nil
		},
	}
}

// versionString describes this binary, one fact per line.
func versionString() string {
	v, rev := version, revision
	modified := false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if rev == "" {
		rev = "unknown (built without VCS information; make build stamps it)"
	} else if modified {
		rev += " (with local modifications)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trm-train %s\n", v)
	fmt.Fprintf(&b, "revision: %s\n", rev)
	fmt.Fprintf(&b, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if cudaBackend == nil {
		b.WriteString("backends: cpu (the CUDA backend is not built in: make cuda builds it)\n")
		b.WriteString("kernels: none")
		return b.String()
	}
	b.WriteString("backends: cpu, cuda\n")
	fb, src, err := kernelFatbin()
	if err != nil {
		fmt.Fprintf(&b, "kernels: %v", err)
		return b.String()
	}
	targets, err := fatbinTargets(fb)
	if err != nil {
		fmt.Fprintf(&b, "kernels: %s: %v", src, err)
		return b.String()
	}
	fmt.Fprintf(&b, "kernels: %s (%s)", strings.Join(targets, ", "), src)
	return b.String()
}

// fatbinTargets lists the GPU targets of a CUDA fatbin (nvcc -fatbin):
// sm_XY for each cubin, compute_XY (PTX) for each PTX entry, in file
// order. The layout is the fatbin container's: a 16-byte header (magic
// 0xBA55ED50, version, header size, size of the entries), then entries
// each starting with kind (1 PTX, 2 ELF cubin) at offset 0, the entry
// header's size at 4, the payload's size at 8 and the target (major*10 +
// minor) at 28. Containers may be concatenated.
func fatbinTargets(b []byte) ([]string, error) {
	const magic = 0xBA55ED50
	var out []string
	le := binary.LittleEndian
	for off := 0; off < len(b); {
		if len(b)-off < 16 || le.Uint32(b[off:]) != magic {
			return nil, fmt.Errorf("not a CUDA fatbin at byte %d", off)
		}
		hsize := int(le.Uint16(b[off+6:]))
		size := int(le.Uint64(b[off+8:]))
		start, end := off+hsize, off+hsize+size
		if hsize < 16 || size < 0 || end > len(b) || end < start {
			return nil, fmt.Errorf("fatbin container at byte %d runs past the end (%d bytes)", off, len(b))
		}
		for e := start; e < end; {
			if end-e < 32 {
				return nil, fmt.Errorf("fatbin entry at byte %d is truncated", e)
			}
			kind := le.Uint16(b[e:])
			ehsize := int(le.Uint32(b[e+4:]))
			payload := int(le.Uint64(b[e+8:]))
			arch := le.Uint32(b[e+28:])
			if ehsize < 32 || payload < 0 || e+ehsize+payload > end {
				return nil, fmt.Errorf("fatbin entry at byte %d runs past its container", e)
			}
			switch kind {
			case 1:
				out = append(out, fmt.Sprintf("compute_%d (PTX)", arch))
			case 2:
				out = append(out, fmt.Sprintf("sm_%d", arch))
			default:
				out = append(out, fmt.Sprintf("unknown entry kind %d for %d", kind, arch))
			}
			e += ehsize + payload
		}
		off = end
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty fatbin")
	}
	return out, nil
}

// readFatbinEnv reads the file TRM_CUDA_FATBIN names, if any.
func readFatbinEnv() ([]byte, string, bool, error) {
	p := os.Getenv("TRM_CUDA_FATBIN")
	if p == "" {
		return nil, "", false, nil
	}
	b, err := os.ReadFile(p)
	return b, "TRM_CUDA_FATBIN=" + p, true, err
}
