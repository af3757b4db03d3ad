package device

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ParseCUDASpec resolves a --device value naming GPUs: "cuda" (every
// visible device), "cuda:N" or "cuda:0,2". Indices are CUDA ordinals as
// this process sees them, that is after CUDA_VISIBLE_DEVICES renumbered
// the visible devices from 0 (the driver does that; NVML does not).
// visible is the number of CUDA devices visible (see Discover); a negative
// value skips the range check (no driver to ask).
func ParseCUDASpec(spec string, visible int) ([]int, error) {
	rest, ok := strings.CutPrefix(spec, "cuda")
	if !ok || (rest != "" && rest[0] != ':') {
		return nil, fmt.Errorf("--device %q: want cuda, cuda:N or cuda:N,M,...", spec)
	}
	rest = strings.TrimPrefix(rest, ":")
	if rest == "" {
		if visible == 0 {
			return nil, fmt.Errorf("--device %s: no CUDA device is visible%s", spec, visibleNote())
		}
		if visible < 0 {
			return []int{0}, nil
		}
		out := make([]int, visible)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	var out []int
	seen := map[int]bool{}
	for _, f := range strings.Split(rest, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--device %s: %q is not a device index", spec, f)
		}
		if seen[n] {
			// NCCL refuses two ranks on one GPU, and two replicas would
			// only share its memory and compute.
			return nil, fmt.Errorf("--device %s: device %d is listed twice (one replica per GPU)", spec, n)
		}
		if visible >= 0 && n >= visible {
			return nil, fmt.Errorf("--device %s: device %d does not exist (%d visible%s)", spec, n, visible, visibleNote())
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

// visibleNote mentions CUDA_VISIBLE_DEVICES when it is set, since it is
// the usual reason a device "disappears".
func visibleNote() string {
	if v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
		return fmt.Sprintf("; CUDA_VISIBLE_DEVICES=%q", v)
	}
	return ""
}

// VisibleFilter returns the entries of CUDA_VISIBLE_DEVICES (indices into
// NVML's list, or GPU UUIDs or UUID prefixes) and whether it is set. The
// driver stops at the first invalid entry; so does this.
func VisibleFilter() ([]string, bool) {
	v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES")
	if !ok {
		return nil, false
	}
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			break
		}
		if _, err := strconv.Atoi(f); err != nil && !strings.HasPrefix(f, "GPU-") && !strings.HasPrefix(f, "MIG-") {
			break
		}
		out = append(out, f)
	}
	return out, true
}
