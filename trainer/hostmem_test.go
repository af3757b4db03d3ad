package trainer

import (
	"os"
	"path/filepath"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, s := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostMemoryAvailable: the smaller of MemAvailable and the room under
// the tightest cgroup limit on the process's path, for cgroup v2 and v1.
func TestHostMemoryAvailable(t *testing.T) {
	meminfo := "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n"
	v2 := t.TempDir()
	writeFiles(t, v2, map[string]string{
		"proc/meminfo":                          meminfo,
		"proc/self/cgroup":                      "0::/job/step\n",
		"sys/fs/cgroup/job/step/memory.max":     "max\n",
		"sys/fs/cgroup/job/step/memory.current": "100\n",
		"sys/fs/cgroup/job/memory.max":          "4000000000\n",
		"sys/fs/cgroup/job/memory.current":      "1000000000\n",
	})
	if got, ok := hostMemoryAvailable(v2); !ok || got != 3000000000 {
		t.Fatalf("cgroup v2: %d %v, want the job's 3000000000 left", got, ok)
	}
	v1 := t.TempDir()
	writeFiles(t, v1, map[string]string{
		"proc/meminfo":     meminfo,
		"proc/self/cgroup": "12:cpu,cpuacct:/x\n11:memory:/slurm/job_7\n",
		"sys/fs/cgroup/memory/slurm/job_7/memory.limit_in_bytes": "9223372036854771712\n",
		"sys/fs/cgroup/memory/slurm/job_7/memory.usage_in_bytes": "5\n",
	})
	if got, ok := hostMemoryAvailable(v1); !ok || got != 8000000*1024 {
		t.Fatalf("cgroup v1 without a limit: %d %v, want MemAvailable", got, ok)
	}
	if _, ok := hostMemoryAvailable(t.TempDir()); ok {
		t.Fatal("memory reported with nothing to read")
	}
	if got, ok := HostMemoryAvailable(); ok && got <= 0 {
		t.Fatalf("this machine: %d bytes available", got)
	}
}
