package trainer

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// HostMemoryAvailable returns the bytes this process can still allocate on
// the host: the smaller of the kernel's MemAvailable (/proc/meminfo) and
// the room left under the memory limit of the process's cgroup and its
// ancestors (cgroup v2 memory.max - memory.current, or v1
// memory.limit_in_bytes - memory.usage_in_bytes), which is what a
// container or a SLURM job may use. ok is false when neither can be read
// (not Linux).
func HostMemoryAvailable() (bytes int64, ok bool) { return hostMemoryAvailable("/") }

func hostMemoryAvailable(root string) (int64, bool) {
	best, ok := int64(-1), false
	take := func(v int64) {
		if v >= 0 && (!ok || v < best) {
			best, ok = v, true
		}
	}
	if v, found := memInfoAvailable(filepath.Join(root, "proc/meminfo")); found {
		take(v)
	}
	for _, room := range cgroupRooms(root) {
		take(room)
	}
	return best, ok
}

// memInfoAvailable reads MemAvailable (kB) from a meminfo file.
func memInfoAvailable(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, false
			}
			return kb * 1024, true
		}
	}
	return 0, false
}

// cgroupRooms returns limit - usage for every cgroup with a memory limit
// on the path of this process's cgroup, from its own up to the root.
func cgroupRooms(root string) []int64 {
	b, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return nil
	}
	var rooms []int64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var base, limitFile, usageFile string
		switch {
		case parts[0] == "0" && parts[1] == "": // cgroup v2
			base, limitFile, usageFile = "sys/fs/cgroup", "memory.max", "memory.current"
		case strings.Contains(","+parts[1]+",", ",memory,"): // cgroup v1
			base, limitFile, usageFile = "sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
		default:
			continue
		}
		for dir := filepath.Clean("/" + parts[2]); ; dir = filepath.Dir(dir) {
			d := filepath.Join(root, base, dir)
			limit, okL := readBytes(filepath.Join(d, limitFile))
			usage, okU := readBytes(filepath.Join(d, usageFile))
			// v1 writes an unlimited limit as a huge number; v2 as "max".
			if okL && okU && limit < 1<<60 {
				rooms = append(rooms, max(limit-usage, 0))
			}
			if dir == "/" {
				break
			}
		}
	}
	return rooms
}

func readBytes(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}
