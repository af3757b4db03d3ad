//go:build cuda

package cuda

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"unsafe"

	"github.com/tinyrecursive/trm/engine"
	"gorgonia.org/cu"
)

// The tests of the CPU stand-in's guards (cuda/standin): they need the
// stand-in, whose behaviour on a fault or a leak a GPU does not have.

func needStandin(t *testing.T) {
	t.Helper()
	if !Emulated() {
		t.Skip("needs the CPU stand-in for the NVIDIA libraries (make test-cuda-standin)")
	}
}

func standinBackend(t *testing.T) *Backend {
	t.Helper()
	b, err := NewWithOptions(0, Options{Gemm: GemmFP32})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStandinExportsEverySymbol: the stand-in's libcuda.so.1 exports every
// cu* symbol this binary imports, so the dynamic loader never fails on a
// symbol the stand-in lacks (cuda/standin/gen-symbols.sh regenerates its
// list when gorgonia.org/cu changes).
func TestStandinExportsEverySymbol(t *testing.T) {
	needStandin(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	imported, err := f.ImportedSymbols()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	lib := standinPath(t)
	g, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	syms, err := g.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			exported[s.Name] = true
		}
	}
	var want, missing []string
	for _, s := range imported {
		if len(s.Name) > 2 && strings.HasPrefix(s.Name, "cu") && s.Name[2] >= 'A' && s.Name[2] <= 'Z' {
			want = append(want, s.Name)
			if !exported[s.Name] {
				missing = append(missing, s.Name)
			}
		}
	}
	sort.Strings(missing)
	if len(want) < 20 {
		t.Fatalf("only %d cu* symbols imported by %s: is it linked against libcuda?", len(want), exe)
	}
	if len(missing) > 0 {
		t.Fatalf("%s lacks %d of the %d cu* symbols %s imports (run cuda/standin/gen-symbols.sh on the binary and rebuild): %v",
			lib, len(missing), len(want), exe, missing)
	}
	t.Logf("%s exports all %d cu* symbols %s imports", lib, len(want), exe)
}

// standinPath finds the file the stand-in was loaded from.
func standinPath(t *testing.T) string {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if i := strings.Index(line, "/"); i >= 0 && strings.HasSuffix(line, "libtrmstandin.so") {
			return line[i:]
		}
	}
	t.Fatal("the stand-in's library is not mapped in this process")
	return ""
}

// TestStandinFaultNamesBuffer: a kernel writing past the end of a buffer
// faults at once, and Sync's error names the kernel and the buffer (the
// call site that allocated it).
func TestStandinFaultNamesBuffer(t *testing.T) {
	needStandin(t)
	b := standinBackend(t)
	defer b.Close()
	x := b.Alloc(engine.F32, 100).(*buf)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	// A fill of 5000 elements into a buffer of 100: the overrun crosses
	// the guard page after the buffer.
	b.kernel("overrun", "trm_fill_f32", dims3{1, 1, 1}, dims3{256, 1, 1}, ptr(x), f64arg(1), i64arg(5000))
	err := b.Sync()
	if err == nil {
		t.Fatal("an out-of-bounds write went unnoticed")
	}
	for _, want := range []string{"trm_fill_f32", "invalid write", "past the end", "Alloc(f32, 100)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the fault's error lacks %q: %v", want, err)
		}
	}
	t.Log(err)
}

// TestStandinLeakReported: a device buffer left allocated when the last
// backend on the device closes is reported with its name, and so is a
// stream left undestroyed.
func TestStandinLeakReported(t *testing.T) {
	needStandin(t)
	b := standinBackend(t)
	var p cu.DevicePtr
	err := b.dev.do(func() error {
		var err error
		p, err = cu.MemAlloc(4096)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	nameBuffer(uintptr(p), "the buffer this test leaks")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	rep := StandinLeaks(0)
	if !strings.Contains(rep, "the buffer this test leaks") || !strings.Contains(rep, "4096 bytes") {
		t.Fatalf("leak report %q does not name the leaked buffer", rep)
	}
	// A backend that frees what it allocated leaves nothing behind.
	b = standinBackend(t)
	b.Alloc(engine.F32, 1000)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := StandinLeaks(0); rep != "" {
		t.Fatalf("a backend closed normally leaked: %s", rep)
	}
	// A stream left undestroyed is counted while the backend lives and
	// reported when the context goes.
	b = standinBackend(t)
	if err := b.dev.do(func() error { _, err := cu.MakeStream(cu.NonBlocking); return err }); err != nil {
		t.Fatal(err)
	}
	if s, _ := StandinHandles(0); s != 2 {
		t.Errorf("a backend's stream and one more: the stand-in counts %d streams", s)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := StandinLeaks(0); !strings.Contains(rep, "1 streams not destroyed") {
		t.Fatalf("leak report %q does not name the undestroyed stream", rep)
	}
}

// TestStandinOutOfMemory: TRM_STANDIN_MEM sizes the device, so the
// out-of-memory path runs: the error says what was asked and what is free.
func TestStandinOutOfMemory(t *testing.T) {
	needStandin(t)
	t.Setenv("TRM_STANDIN_MEM", "256M")
	b := standinBackend(t)
	defer b.Close()
	b.Alloc(engine.F32, 100<<20)
	err := b.Sync()
	if err == nil || !strings.Contains(err.Error(), "out of device memory") || !strings.Contains(err.Error(), "of 256.0 MiB") {
		t.Fatalf("an allocation of 400 MiB on a 256 MiB device: error %v", err)
	}
	t.Log(err)
}

// TestCloseRunsRecordedOps: in graph mode ops wait for Sync; Close runs
// them rather than dropping them, and returns their errors.
func TestCloseRunsRecordedOps(t *testing.T) {
	b, err := NewWithOptions(0, Options{Gemm: GemmFP32, Graphs: true})
	if err != nil {
		t.Fatal(err)
	}
	if b.rec == nil {
		t.Fatal("graph mode is off")
	}
	lb := engine.LossBufs{Logits: b.Alloc(engine.F32, 6), Labels: b.Alloc(engine.I32, 2), Q: b.Alloc(engine.F32, 2), Steps: b.Alloc(engine.I32, 1),
		Preds: b.Alloc(engine.I32, 2), LMLoss: b.Alloc(engine.F64, 1), QHaltLoss: b.Alloc(engine.F64, 1), QContLoss: b.Alloc(engine.F64, 1),
		QTarget: b.Alloc(engine.F32, 1), NValid: b.Alloc(engine.I32, 1), NCorrect: b.Alloc(engine.I32, 1), SeqCorrect: b.Alloc(engine.I32, 1)}
	b.Upload(lb.Labels, []int32{1, 7})
	b.LossHead(lb, engine.LossDims{B: 1, L: 2, V: 3, HaltMaxSteps: 2, GradScale: 1})
	if len(b.rec.ops) == 0 {
		t.Fatal("nothing was recorded before Sync")
	}
	if err := b.Close(); err == nil || !strings.Contains(err.Error(), "label 7") {
		t.Fatalf("Close with a recorded LossHead of label 7 of 3: error %v", err)
	}
}

// TestUseAfterClose: ops on a closed backend fail with an error instead
// of sending work to a device worker that may be gone.
func TestUseAfterClose(t *testing.T) {
	for _, graphs := range []bool{false, true} {
		b, err := NewWithOptions(0, Options{Gemm: GemmFP32, Graphs: graphs})
		if err != nil {
			t.Fatal(err)
		}
		x := b.Alloc(engine.F32, 4)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b.Upload(x, []float32{1, 2, 3, 4})
		b.Fill(x, 1)
		b.Alloc(engine.F32, 8)
		b.Download(make([]float32, 4), x)
		if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "after Close") {
			t.Fatalf("graphs %v: Sync after Close: error %v", graphs, err)
		}
	}
}

// TestProbeRunsFirst: without a usable GPU the cuda binary stops with the
// probe's explanation and exit status 3, not with gorgonia.org/cu's bare
// init failure: package cuda/probe's init runs before cu's (Go initialises
// packages in import-path order among those ready, see cuda/probe). A
// rename of either package that changed the order fails here.
func TestProbeRunsFirst(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	// No GPU: CUDA_VISIBLE_DEVICES hides NVIDIA's; the stand-in refuses
	// without TRM_STANDIN=1.
	cmd.Env = append(os.Environ(), "CUDA_VISIBLE_DEVICES=", "TRM_STANDIN=0", "TRM_CUDA_PROBE=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("the test binary without a GPU: %v (want exit status 3); output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "no CUDA GPU is visible") || strings.Contains(string(out), "Error in initialization") {
		t.Fatalf("the probe did not speak first; output:\n%s", out)
	}
}

// TestGraphNeverStale: a replayed graph is only ever the one captured for
// the same ops on the same buffers and sizes: the same sequence on another
// buffer, or on a slice of another length, computes on what it was given.
func TestGraphNeverStale(t *testing.T) {
	for _, verify := range []bool{false, true} {
		t.Run(fmt.Sprintf("verify=%v", verify), func(t *testing.T) { graphNeverStale(t, verify) })
	}
}

func graphNeverStale(t *testing.T, verify bool) {
	b, err := NewWithOptions(0, Options{Gemm: GemmFP32, Graphs: true, VerifyGraphs: verify})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	x1, x2, y := b.Alloc(engine.F32, 4), b.Alloc(engine.F32, 4), b.Alloc(engine.F32, 4)
	b.Upload(x1, []float32{1, 2, 3, 4})
	b.Upload(x2, []float32{10, 20, 30, 40})
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	step := func(x, dst engine.Buf, want []float32) {
		t.Helper()
		b.Fill(dst, -1)
		b.Add(dst, x, x)
		got := make([]float32, dst.Len())
		b.Download(got, dst)
		if err := b.Sync(); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("got %v, want %v (a stale graph?)", got, want)
			}
		}
	}
	for range 3 { // seen, captured, replayed
		step(x1, y, []float32{2, 4, 6, 8})
	}
	if s := b.Stats(); s.GraphLaunches == 0 {
		t.Fatalf("the repeated sequence was never replayed from a graph: %+v", s)
	}
	step(x2, y, []float32{20, 40, 60, 80})
	step(b.Slice(x2, 0, 2), b.Slice(y, 0, 2), []float32{20, 40})
	step(b.Slice(x1, 2, 2), b.Slice(y, 0, 2), []float32{6, 8})
}

// TestRelease: buffers allocated in a scope (BeginScope, that is Mark and
// Release) are freed at its end (the
// device's count of live buffers and the backend's bytes in use return to
// what they were), internal buffers and graphs made since are dropped, and
// the backend keeps working, in both graph modes.
func TestRelease(t *testing.T) {
	for _, graphs := range []bool{false, true} {
		b, err := NewWithOptions(0, Options{Gemm: GemmFP32, Graphs: graphs})
		if err != nil {
			t.Fatal(err)
		}
		keep := b.Alloc(engine.F32, 3)
		b.Upload(keep, []float32{1, 2, 3})
		if err := b.Sync(); err != nil {
			t.Fatal(err)
		}
		buffers, _ := StandinLive(0)
		inUse, _ := b.DeviceMemory()
		var be engine.Backend = b
		end := be.(interface{ BeginScope() func() error }).BeginScope()
		for range 3 {
			x := b.Alloc(engine.F32, 5000)
			b.Fill(x, 2)
			b.SumSquares(b.Alloc(engine.F64, 1), x) // makes an internal buffer after the mark
			if err := b.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		if err := end(); err != nil {
			t.Fatal(err)
		}
		if n, _ := StandinLive(0); Emulated() && n != buffers {
			t.Errorf("graphs %v: %d live device buffers after Release, %d before the mark", graphs, n, buffers)
		}
		if u, _ := b.DeviceMemory(); u != inUse {
			t.Errorf("graphs %v: %d bytes in use after Release, %d at the mark", graphs, u, inUse)
		}
		// The backend goes on: the internal buffer is made again.
		x, s := b.Alloc(engine.F32, 4), b.Alloc(engine.F64, 1)
		b.Fill(x, 3)
		b.SumSquares(s, x)
		got := make([]float64, 1)
		b.Download(got, s)
		kept := make([]float32, 3)
		b.Download(kept, keep)
		if err := b.Sync(); err != nil {
			t.Fatal(err)
		}
		if got[0] != 36 || kept[2] != 3 {
			t.Fatalf("graphs %v: after Release: sum of squares %v (want 36), kept buffer %v", graphs, got[0], kept)
		}
		if err := b.Release(Mark{chunks: 1 << 20}); err == nil {
			t.Fatalf("a mark past the current point was accepted")
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStandinLeavesGoFaultsToGo: the stand-in's fault handler sits in
// front of the Go runtime's; a nil dereference in Go code must still be
// the ordinary, recoverable run-time panic.
func TestStandinLeavesGoFaultsToGo(t *testing.T) {
	needStandin(t)
	b := standinBackend(t) // the handler is installed by then
	defer b.Close()
	var p *[4]int
	got := func() (r any) {
		defer func() { r = recover() }()
		return p[2]
	}()
	err, ok := got.(error)
	if !ok || !strings.Contains(err.Error(), "nil pointer dereference") {
		t.Fatalf("a nil dereference under the stand-in gave %v, want the run-time panic", got)
	}
}

// TestVerifyGraphsCatchesIncompleteKey: an op whose key leaves out a
// value its launch bakes in is replayed stale from its graph; verify mode
// catches it by comparing with the eager run.
func TestVerifyGraphsCatchesIncompleteKey(t *testing.T) {
	b, err := NewWithOptions(0, Options{Gemm: GemmFP32, Graphs: true, VerifyGraphs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	x := b.Alloc(engine.F32, 4).(*buf)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	fn := b.dev.fns["trm_fill_f32"]
	fill := func(v float64) error {
		args := []uint64{ptr(x), f64arg(v), i64arg(4)}
		// A hand-built key that leaves the value out, as postArgs makes
		// impossible for the backend's own ops.
		b.postOp(&op{name: "fill with the value left out of its key", key: []uint64{'f', uint64(x.ptr)}, run: func(*execCtx) error {
			params := make([]unsafe.Pointer, len(args))
			for i := range args {
				params[i] = unsafe.Pointer(&args[i])
			}
			return fn.Launch(1, 1, 1, 32, 1, 1, 0, b.stream, params)
		}})
		return b.Sync()
	}
	for range 3 { // seen, captured, replayed: the same value, no difference
		if err := fill(1); err != nil {
			t.Fatal(err)
		}
	}
	err = fill(2)
	if err == nil || !strings.Contains(err.Error(), "TRM_CUDA_GRAPHS=verify") {
		t.Fatalf("a replay that baked in a stale value: error %v", err)
	}
	t.Log(err)
}

// TestStandinUseAfterFree: freed device memory is poisoned: a kernel that
// writes into a freed buffer faults naming it, and a copy into it is
// refused naming it.
func TestStandinUseAfterFree(t *testing.T) {
	needStandin(t)
	b := standinBackend(t)
	defer b.Close()
	var p cu.DevicePtr
	err := b.dev.do(func() error {
		var err error
		if p, err = cu.MemAlloc(1024); err != nil {
			return err
		}
		nameBuffer(uintptr(p), "the buffer this test frees")
		return cu.MemFree(p)
	})
	if err != nil {
		t.Fatal(err)
	}
	freed := &buf{dt: engine.F32, ptr: p, n: 256}
	b.Upload(freed, make([]float32, 256))
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "InvalidValue") || !strings.Contains(err.Error(), "the buffer this test frees") {
		t.Fatalf("an upload into freed memory: error %v", err)
	}
	b.kernel("fill after free", "trm_fill_f32", dims3{1, 1, 1}, dims3{32, 1, 1}, uint64(p), f64arg(1), i64arg(256))
	err = b.Sync()
	if err == nil || !strings.Contains(err.Error(), "the buffer this test frees") || !strings.Contains(err.Error(), "use after free") {
		t.Fatalf("a kernel writing into freed memory: error %v", err)
	}
	t.Log(err)
}

// TestFailedNewLeavesNothing: a New that fails after it made its stream,
// its cuBLAS handle and its first buffers (here: the device is too small
// for cuBLAS's workspace) destroys all of them: the stand-in counts no
// stream, handle or buffer left, and reports no leak when the context
// goes.
func TestFailedNewLeavesNothing(t *testing.T) {
	needStandin(t)
	t.Setenv("TRM_STANDIN_MEM", "16M")
	b, err := NewWithOptions(0, Options{Gemm: GemmFP32, Graphs: true})
	if err == nil {
		b.Close()
		t.Fatal("New on a 16 MiB device (smaller than the 32 MiB cuBLAS workspace) succeeded")
	}
	if !strings.Contains(err.Error(), "out of device memory") {
		t.Fatalf("New on a 16 MiB device: error %v, want out of device memory", err)
	}
	if n, bytes := StandinLive(0); n != 0 {
		t.Errorf("after the failed New: %d device buffers (%d bytes) still allocated", n, bytes)
	}
	if s, h := StandinHandles(0); s != 0 || h != 0 {
		t.Errorf("after the failed New: %d streams and %d cuBLAS handles not destroyed", s, h)
	}
	if l := StandinLeaks(0); l != "" {
		t.Errorf("the stand-in reported a leak when the failed New released the context: %s", l)
	}
}

// TestArgKeyCoversEveryField: an op's graph key changes with every field
// of its argument struct (so none can be left out of it), differs between
// op types with equal fields, and refuses a pointer, whose target a key
// could not see change.
func TestArgKeyCoversEveryField(t *testing.T) {
	base := gemmArgs{M: 2, N: 3, K: 4, Alpha: 1, A: 0x1000, Lda: 4, B: 0x2000, Ldb: 3, C: 0x3000, Ldc: 3, Batch: 1}
	want := argKey(base)
	v := reflect.ValueOf(&base).Elem()
	for i := 0; i < v.NumField(); i++ {
		changed := base
		f := reflect.ValueOf(&changed).Elem().Field(i)
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(!f.Bool())
		case reflect.Int:
			f.SetInt(f.Int() + 1)
		case reflect.Uintptr:
			f.SetUint(f.Uint() + 256)
		case reflect.Float32:
			f.SetFloat(f.Float() + 0.5)
		default:
			t.Fatalf("field %s: kind %s not exercised", v.Type().Field(i).Name, f.Kind())
		}
		if slices.Equal(argKey(changed), want) {
			t.Errorf("changing %s leaves the key unchanged", v.Type().Field(i).Name)
		}
	}
	if slices.Equal(argKey(copyArgs{1, 2, 3}), argKey(memsetArgs{1, 2})) || slices.Equal(argKey(memsetArgs{1, 2}), argKey(uploadArgs{1, 2})) {
		t.Error("op types with equal fields share a key")
	}
	k1 := argKey(kernelArgs{"trm_fill_f32", dims3{1, 1, 1}, dims3{32, 1, 1}, []uint64{1, 2}})
	k2 := argKey(kernelArgs{"trm_fill_f32", dims3{1, 1, 1}, dims3{32, 1, 1}, []uint64{1, 2, 0}})
	if slices.Equal(k1, k2) {
		t.Error("a kernel launch with one more argument has the same key")
	}
	defer func() {
		if recover() == nil {
			t.Error("a pointer argument was accepted into a key")
		}
	}()
	argKey(struct{ P *int }{new(int)})
}
