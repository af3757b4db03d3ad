//go:build cgo

package device

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>

// The CUDA driver through dlopen with own prototypes: this package is in
// the default build and must run where no driver exists (and must not
// import gorgonia.org/cu, whose init exits without a GPU). Devices are
// ints, results CUresult ints.
typedef int (*trm_cuInit_t)(unsigned int);
typedef int (*trm_cuCount_t)(int *);
typedef int (*trm_cuDriverVersion_t)(int *);
typedef int (*trm_cuDeviceGet_t)(int *, int);
typedef int (*trm_cuName_t)(char *, int, int);
typedef int (*trm_cuBusId_t)(char *, int, int);
typedef int (*trm_cuTotalMem_t)(size_t *, int);
typedef int (*trm_cuAttr_t)(int *, int, int);

typedef struct {
	void *lib;
	trm_cuInit_t init;
	trm_cuCount_t count;
	trm_cuDriverVersion_t version;
	trm_cuDeviceGet_t get;
	trm_cuName_t name;
	trm_cuBusId_t busId;
	trm_cuTotalMem_t totalMem;
	trm_cuAttr_t attr;
} trm_cudrv;

// Returns 0; -1 when libcuda.so.1 cannot be opened (*err = dlerror), -2
// when a symbol is missing (*err = its name); else cuInit's CUresult.
static int trm_cudrv_open(trm_cudrv *d, const char **err) {
	d->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!d->lib) { *err = dlerror(); return -1; }
#define TRM_SYM(f, n, t) d->f = (t)dlsym(d->lib, n); if (!d->f) { *err = n; return -2; }
	TRM_SYM(init, "cuInit", trm_cuInit_t)
	TRM_SYM(count, "cuDeviceGetCount", trm_cuCount_t)
	TRM_SYM(version, "cuDriverGetVersion", trm_cuDriverVersion_t)
	TRM_SYM(get, "cuDeviceGet", trm_cuDeviceGet_t)
	TRM_SYM(name, "cuDeviceGetName", trm_cuName_t)
	TRM_SYM(busId, "cuDeviceGetPCIBusId", trm_cuBusId_t)
	TRM_SYM(totalMem, "cuDeviceTotalMem_v2", trm_cuTotalMem_t)
	TRM_SYM(attr, "cuDeviceGetAttribute", trm_cuAttr_t)
#undef TRM_SYM
	return d->init(0);
}
static int trm_cudrv_count(trm_cudrv *d, int *n) { return d->count(n); }
// trm_cudrv_emulated reports whether the driver is the CPU stand-in
// (cuda/standin), which exports a marker symbol NVIDIA's driver lacks.
static int trm_cudrv_emulated(trm_cudrv *d) { return dlsym(d->lib, "trm_standin_version") != NULL; }
static int trm_cudrv_version(trm_cudrv *d, int *v) { return d->version(v); }
// trm_cudrv_device fills what Discover reports of ordinal ord
// (attributes 75, 76: compute capability major, minor).
static int trm_cudrv_device(trm_cudrv *d, int ord, char *name, char *bus, size_t *mem, int *major, int *minor) {
	int dev, rc;
	if ((rc = d->get(&dev, ord))) return rc;
	if ((rc = d->name(name, 128, dev))) return rc;
	if ((rc = d->busId(bus, 64, dev))) return rc;
	if ((rc = d->totalMem(mem, dev))) return rc;
	if ((rc = d->attr(major, 75, dev))) return rc;
	return d->attr(minor, 76, dev);
}
*/
import "C"

import (
	"fmt"
	"os"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// cudaDevices asks the CUDA driver (which applies CUDA_VISIBLE_DEVICES)
// for the visible devices, in CUDA ordinal order.
func cudaDevices() ([]GPU, string, error) {
	var d C.trm_cudrv
	var msg *C.char
	switch rc := C.trm_cudrv_open(&d, &msg); {
	case rc == -1:
		return nil, "", fmt.Errorf("libcuda.so.1 not loadable (no NVIDIA driver): %s", C.GoString(msg))
	case rc == -2:
		return nil, "", fmt.Errorf("libcuda.so.1 lacks %s", C.GoString(msg))
	case rc == 100:
		return nil, "", fmt.Errorf("cuInit: CUDA_ERROR_NO_DEVICE (a driver, but no GPU visible to this process)")
	case rc != 0:
		return nil, "", fmt.Errorf("cuInit: CUresult %d", int(rc))
	}
	var v, n C.int
	C.trm_cudrv_version(&d, &v)
	ver := fmt.Sprintf("%d.%d", int(v)/1000, int(v)%1000/10)
	if rc := C.trm_cudrv_count(&d, &n); rc != 0 {
		return nil, ver, fmt.Errorf("cuDeviceGetCount: CUresult %d", int(rc))
	}
	emulated := C.trm_cudrv_emulated(&d) != 0
	var out []GPU
	for i := 0; i < int(n); i++ {
		var name [128]C.char
		var bus [64]C.char
		var mem C.size_t
		var major, minor C.int
		if rc := C.trm_cudrv_device(&d, C.int(i), &name[0], &bus[0], &mem, &major, &minor); rc != 0 {
			return out, ver, fmt.Errorf("CUDA device %d: CUresult %d", i, int(rc))
		}
		out = append(out, GPU{CUDA: i, NVML: -1, Name: C.GoString(&name[0]), PCIBusID: strings.ToLower(C.GoString(&bus[0])),
			MemoryTotal: uint64(mem), Major: int(major), Minor: int(minor), Emulated: emulated})
	}
	return out, ver, nil
}

// Discover asks the CUDA driver which devices this process sees and NVML
// what they are and how they are linked. Neither is required: without a
// driver the inventory has no GPUs and says why.
func Discover() *Inventory {
	inv := &Inventory{CPU: ReadCPU(), Visible: "(unset)"}
	if v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
		inv.Visible = fmt.Sprintf("%q", v)
	}
	inv.GPUs, inv.Driver, inv.CUDAErr = cudaDevices()
	h, err := OpenNVML("")
	if err != nil {
		inv.NVMLErr = err
		return inv
	}
	defer h.Close()
	// Match CUDA's devices to NVML's by PCI bus id: CUDA numbers them
	// fastest first (or by bus with CUDA_DEVICE_ORDER=PCI_BUS_ID) and
	// after CUDA_VISIBLE_DEVICES; NVML always by bus over every device.
	byBus := map[string]int{}
	for i, d := range h.devices {
		if p, ret := d.GetPciInfo(); ret == nvml.SUCCESS {
			byBus[normBusID(cstr(p.BusId[:]))] = i
		}
	}
	if inv.CUDAErr != nil {
		// No CUDA answer: fall back to NVML's list filtered as the driver
		// would filter it, so the command still shows the machine.
		inv.GPUs = nil
		filter, set := VisibleFilter()
		for i, d := range h.devices {
			uuid, _ := d.GetUUID()
			if set && !visibleIn(filter, i, uuid) {
				continue
			}
			g := GPU{CUDA: len(inv.GPUs), NVML: i, UUID: uuid}
			if p, ret := d.GetPciInfo(); ret == nvml.SUCCESS {
				g.PCIBusID = normBusID(cstr(p.BusId[:]))
			}
			inv.GPUs = append(inv.GPUs, g)
		}
	}
	devs := make([]nvml.Device, len(inv.GPUs))
	for k := range inv.GPUs {
		g := &inv.GPUs[k]
		if g.NVML < 0 {
			i, ok := byBus[normBusID(g.PCIBusID)]
			if !ok {
				continue
			}
			g.NVML = i
		}
		d := h.devices[g.NVML]
		devs[k] = d
		if g.Name == "" {
			if n, ret := d.GetName(); ret == nvml.SUCCESS {
				g.Name = n
			}
		}
		if g.UUID == "" {
			if u, ret := d.GetUUID(); ret == nvml.SUCCESS {
				g.UUID = u
			}
		}
		if g.MemoryTotal == 0 {
			if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
				g.MemoryTotal = m.Total
			}
		}
		if g.Major == 0 {
			if a, b, ret := d.GetCudaComputeCapability(); ret == nvml.SUCCESS {
				g.Major, g.Minor = a, b
			}
		}
	}
	inv.Topology = topology(devs)
	return inv
}

// topology builds the matrix of links between devices (nil entries in devs
// could not be matched to NVML and get "?").
func topology(devs []nvml.Device) [][]Link {
	n := len(devs)
	links := make([]int, n)
	for i, d := range devs {
		if d == nil {
			continue
		}
		for l := 0; l < nvml.NVLINK_MAX_LINKS; l++ {
			if st, ret := d.GetNvLinkState(l); ret == nvml.SUCCESS && st == nvml.FEATURE_ENABLED {
				links[i]++
			}
		}
	}
	m := make([][]Link, n)
	for i := range m {
		m[i] = make([]Link, n)
		for j := range m[i] {
			switch {
			case i == j:
				m[i][j] = Link{Kind: "X", P2P: true}
			case devs[i] == nil || devs[j] == nil:
				m[i][j] = Link{Kind: "?"}
			default:
				m[i][j] = pairLink(devs[i], devs[j], links[i])
			}
		}
	}
	return m
}

func pairLink(a, b nvml.Device, nvlinks int) Link {
	var l Link
	if st, ret := a.GetP2PStatus(b, nvml.P2P_CAPS_INDEX_READ); ret == nvml.SUCCESS {
		l.P2P = st == nvml.P2P_STATUS_OK
	}
	// NVLink reachability: direct links or through NVSwitch (HGX boards),
	// where every GPU reaches every other over all of its links.
	if st, ret := a.GetP2PStatus(b, nvml.P2P_CAPS_INDEX_NVLINK); ret == nvml.SUCCESS && st == nvml.P2P_STATUS_OK && nvlinks > 0 {
		l.Kind = fmt.Sprintf("NV%d", nvlinks)
		return l
	}
	lvl, ret := a.GetTopologyCommonAncestor(b)
	if ret != nvml.SUCCESS {
		l.Kind = "?"
		return l
	}
	switch lvl {
	case nvml.TOPOLOGY_INTERNAL:
		l.Kind = "X" // two halves of one board
	case nvml.TOPOLOGY_SINGLE:
		l.Kind = "PIX"
	case nvml.TOPOLOGY_MULTIPLE:
		l.Kind = "PXB"
	case nvml.TOPOLOGY_HOSTBRIDGE:
		l.Kind = "PHB"
	case nvml.TOPOLOGY_NODE:
		l.Kind = "NODE"
	default:
		l.Kind = "SYS"
	}
	return l
}

// visibleIn reports whether NVML device i (with uuid) passes a
// CUDA_VISIBLE_DEVICES filter of indices and UUID prefixes.
func visibleIn(filter []string, i int, uuid string) bool {
	for _, f := range filter {
		if f == fmt.Sprint(i) || (strings.HasPrefix(f, "GPU-") && strings.HasPrefix(uuid, f)) {
			return true
		}
	}
	return false
}

// cstr reads a NUL-terminated C char array.
func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
