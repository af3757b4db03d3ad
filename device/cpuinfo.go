package device

import (
	"bufio"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/cpu"
)

// CPUInfo describes the host CPU: what the CPU backend runs on, and what
// `trm-train devices` lists where there is no GPU.
type CPUInfo struct {
	Model   string // "model name" of /proc/cpuinfo (empty where unknown)
	Logical int    // logical CPUs this process may use (GOMAXPROCS's view)
	Sockets int    // distinct physical packages (0 where unknown)
	Cores   int    // physical cores (0 where unknown)
	// SIMD features the CPU backend's kernels care about.
	AVX2, FMA, AVX512F, AVX512BF16 bool
}

// ReadCPU reads /proc/cpuinfo (Linux) and the CPU's feature flags.
func ReadCPU() CPUInfo {
	c := CPUInfo{Logical: runtime.NumCPU(), AVX2: cpu.X86.HasAVX2, FMA: cpu.X86.HasFMA,
		AVX512F: cpu.X86.HasAVX512F, AVX512BF16: cpu.X86.HasAVX512BF16}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return c
	}
	defer f.Close()
	type core struct{ pkg, id string }
	cores := map[core]bool{}
	pkgs := map[string]bool{}
	var pkg string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "model name":
			if c.Model == "" {
				c.Model = v
			}
		case "physical id":
			pkg = v
			pkgs[v] = true
		case "core id":
			cores[core{pkg, v}] = true
		}
	}
	c.Sockets, c.Cores = len(pkgs), len(cores)
	return c
}

// Flags lists the SIMD features present, e.g. "AVX2 FMA AVX-512F".
func (c CPUInfo) Flags() string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{c.AVX2, "AVX2"}, {c.FMA, "FMA"}, {c.AVX512F, "AVX-512F"}, {c.AVX512BF16, "AVX-512-BF16"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	if len(f) == 0 {
		return "none of AVX2, FMA, AVX-512"
	}
	return strings.Join(f, " ")
}
