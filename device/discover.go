package device

import (
	"fmt"
	"strings"
)

// GPU is one CUDA device visible to this process.
type GPU struct {
	CUDA        int    // CUDA ordinal (what --device cuda:N means)
	NVML        int    // NVML index (nvidia-smi's numbering), -1 if unmatched
	Name        string // e.g. "NVIDIA H200"
	UUID        string // "GPU-...", from NVML
	PCIBusID    string // "0000:3b:00.0"
	MemoryTotal uint64 // bytes
	Major       int    // compute capability
	Minor       int
	// Emulated marks a device of the CPU stand-in for the CUDA driver
	// (cuda/standin): it runs the CUDA backend's code without a GPU, so
	// its timings and capacities say nothing about a real device.
	Emulated bool
}

// Link is how two GPUs are connected, in nvidia-smi topo -m's terms:
// "X" (itself), "NV<n>" (NVLink, n links), or the PCIe path: "PIX" (one
// switch), "PXB" (several switches), "PHB" (the host bridge), "NODE" (the
// same NUMA node), "SYS" (across sockets). P2P says whether CUDA
// peer-to-peer reads work between them.
type Link struct {
	Kind string
	P2P  bool
}

// Inventory is what Discover found.
type Inventory struct {
	GPUs     []GPU
	Topology [][]Link // [i][j] between GPUs[i] and GPUs[j]; nil without NVML
	Driver   string   // CUDA driver API version, e.g. "12.4"
	CUDAErr  error    // why the CUDA driver could not be asked (nil if it was)
	NVMLErr  error    // why NVML could not be asked (nil if it was)
	Visible  string   // CUDA_VISIBLE_DEVICES, or "(unset)"
	CPU      CPUInfo
}

// Count is the number of CUDA devices visible.
func (inv *Inventory) Count() int { return len(inv.GPUs) }

// normBusID makes NVML's "00000000:3B:00.0" and CUDA's "0000:3b:00.0"
// comparable: lower case, domain without leading zeros.
func normBusID(s string) string {
	s = strings.ToLower(strings.TrimRight(strings.TrimSpace(s), "\x00"))
	dom, rest, ok := strings.Cut(s, ":")
	if !ok {
		return s
	}
	dom = strings.TrimLeft(dom, "0")
	return dom + ":" + rest
}

// Describe writes the inventory for people: the GPUs with their memory and
// compute capability, the topology matrix, or, without GPUs, why and the
// CPU the CPU backend would use.
func (inv *Inventory) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CUDA_VISIBLE_DEVICES: %s\n", inv.Visible)
	if inv.CUDAErr != nil {
		fmt.Fprintf(&b, "CUDA driver: %v\n", inv.CUDAErr)
	} else {
		fmt.Fprintf(&b, "CUDA driver: API %s, %d device(s) visible\n", inv.Driver, len(inv.GPUs))
		if len(inv.GPUs) > 0 && inv.GPUs[0].Emulated {
			fmt.Fprintf(&b, "CUDA driver: emulated: the CPU stand-in for the NVIDIA libraries (cuda/standin), not a GPU\n")
		}
	}
	if inv.NVMLErr != nil {
		fmt.Fprintf(&b, "NVML: %v\n", inv.NVMLErr)
	}
	if len(inv.GPUs) == 0 {
		fmt.Fprintf(&b, "\nNo GPU found: training runs on the CPU (--device cpu).\n")
	} else {
		fmt.Fprintf(&b, "\n%-5s %-5s %-28s %10s %-4s %-14s %s\n", "cuda", "nvml", "name", "memory", "sm", "pci", "uuid")
		for _, g := range inv.GPUs {
			nv := "-"
			if g.NVML >= 0 {
				nv = fmt.Sprint(g.NVML)
			}
			name := g.Name
			if g.Emulated && !strings.Contains(name, "emulated") {
				name += " (emulated)"
			}
			fmt.Fprintf(&b, "%-5s %-5s %-28s %7.1f GiB %d%d   %-14s %s\n", fmt.Sprintf("%d", g.CUDA), nv, name,
				float64(g.MemoryTotal)/(1<<30), g.Major, g.Minor, g.PCIBusID, g.UUID)
		}
		if inv.Topology != nil && len(inv.GPUs) > 1 {
			fmt.Fprintf(&b, "\ntopology (CUDA ordinals; NV<n> = NVLink with n links, PIX/PXB/PHB/NODE/SYS = PCIe path, * = no P2P):\n")
			fmt.Fprintf(&b, "%6s", "")
			for j := range inv.GPUs {
				fmt.Fprintf(&b, " %6s", fmt.Sprintf("GPU%d", j))
			}
			b.WriteByte('\n')
			for i, row := range inv.Topology {
				fmt.Fprintf(&b, "%6s", fmt.Sprintf("GPU%d", i))
				for j, l := range row {
					k := l.Kind
					if i != j && !l.P2P {
						k += "*"
					}
					fmt.Fprintf(&b, " %6s", k)
				}
				b.WriteByte('\n')
			}
		}
	}
	c := inv.CPU
	fmt.Fprintf(&b, "\nCPU: %s\n", orUnknown(c.Model))
	cores := ""
	if c.Cores > 0 {
		cores = fmt.Sprintf(", %d physical cores in %d socket(s)", c.Cores, c.Sockets)
	}
	fmt.Fprintf(&b, "     %d logical CPUs usable%s; SIMD: %s\n", c.Logical, cores, c.Flags())
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "(model unknown)"
	}
	return s
}
