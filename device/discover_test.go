package device

import (
	"slices"
	"strings"
	"testing"
)

// TestDiscoverHere runs discovery on this machine. Without a driver (the
// CPU machines) it must say so and still list the CPU; with GPUs every
// visible device must be described.
func TestDiscoverHere(t *testing.T) {
	inv := Discover()
	s := inv.Describe()
	t.Log("\n" + s)
	if !strings.Contains(s, "CPU: ") || !strings.Contains(s, "logical CPUs usable") {
		t.Fatalf("no CPU section:\n%s", s)
	}
	if inv.Count() == 0 {
		if inv.CUDAErr == nil {
			t.Fatal("no GPU and no reason given")
		}
		if !strings.Contains(s, "No GPU found") {
			t.Fatalf("does not say there is no GPU:\n%s", s)
		}
		return
	}
	for i, g := range inv.GPUs {
		if g.CUDA != i || g.Name == "" || g.MemoryTotal == 0 {
			t.Errorf("GPU %d incompletely described: %+v", i, g)
		}
	}
}

func TestReadCPU(t *testing.T) {
	c := ReadCPU()
	if c.Logical < 1 {
		t.Fatalf("%+v", c)
	}
	if c.Flags() == "" {
		t.Fatal("empty flags")
	}
}

func TestParseCUDASpec(t *testing.T) {
	for _, c := range []struct {
		spec    string
		visible int
		want    []int
	}{
		{"cuda", 4, []int{0, 1, 2, 3}},
		{"cuda:", 2, []int{0, 1}},
		{"cuda:0,2", 4, []int{0, 2}},
		{"cuda:3", 4, []int{3}},
		{"cuda:1, 0", 2, []int{1, 0}},
		{"cuda:5", -1, []int{5}},
	} {
		got, err := ParseCUDASpec(c.spec, c.visible)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseCUDASpec(%q, %d) = %v, %v; want %v", c.spec, c.visible, got, err, c.want)
		}
	}
	t.Setenv("CUDA_VISIBLE_DEVICES", "1,3")
	for _, c := range []struct {
		spec    string
		visible int
		want    string
	}{
		{"cuda:0,0", 2, "listed twice"},
		{"cuda:2", 2, `device 2 does not exist (2 visible; CUDA_VISIBLE_DEVICES="1,3")`},
		{"cuda", 0, "no CUDA device is visible"},
		{"cuda:x", 2, `"x" is not a device index`},
		{"gpu:0", 2, "want cuda"},
		{"cudax", 2, "want cuda"},
	} {
		_, err := ParseCUDASpec(c.spec, c.visible)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseCUDASpec(%q, %d): %v, want %q", c.spec, c.visible, err, c.want)
		}
	}
}

func TestVisibleFilter(t *testing.T) {
	t.Setenv("CUDA_VISIBLE_DEVICES", "2,GPU-ab12,x,3")
	f, ok := VisibleFilter()
	if !ok || !slices.Equal(f, []string{"2", "GPU-ab12"}) {
		t.Fatalf("%v %v", f, ok)
	}
}

func TestNormBusID(t *testing.T) {
	if a, b := normBusID("00000000:3B:00.0"), normBusID("0000:3b:00.0"); a != b {
		t.Fatalf("%q != %q", a, b)
	}
}
