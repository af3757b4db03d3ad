package enginetest

import (
	"slices"
	"testing"

	"github.com/tinyrecursive/trm/engine"
)

// CoarseOnly returns be seen through the Backend interface alone: none of
// its optional fused ops is visible, so a model on it composes every
// fusion from the coarse ops.
func CoarseOnly(be engine.Backend) engine.Backend { return coarseOnly{be} }

// coarseOnly embeds the interface, not the backend: its method set is
// Backend's, whatever be implements beyond it.
type coarseOnly struct{ engine.Backend }

// composedAdd3 implements FusedAdd3 by the coarse composition and counts
// its calls, so a test can tell that the engine reaches the fusion point
// on a backend without the fusion too.
type composedAdd3 struct {
	engine.Backend
	calls int
}

func (c *composedAdd3) Add3(dst, a, b, x engine.Buf) {
	c.calls++
	c.Backend.Add(dst, a, b)
	c.Backend.Add(dst, dst, x)
}

// RunFusions checks the fused ops against their compositions: each fusion
// the backend implements gives the bits of the coarse ops it replaces, and
// a training step of every architecture (trm_hier6's input sums are the
// Add3 fusion points) gives the same bits whether the backend's fusions
// are visible to the engine or hidden from it.
func RunFusions(t *testing.T, f Factory) {
	if engine.Supports(f(), engine.FusionAdd3) {
		t.Run("Add3", func(t *testing.T) { testAdd3(t, newHarness(t, f)) })
	}
	cfgs, names := stepAndArchConfigs()
	for _, name := range names {
		ac := cfgs[name]
		t.Run(name, func(t *testing.T) {
			native := deterministicStep(t, f(), ac.Config, ac.Arch)
			coarse := deterministicStep(t, CoarseOnly(f()), ac.Config, ac.Arch)
			counted := &composedAdd3{Backend: f()}
			composed := deterministicStep(t, counted, ac.Config, ac.Arch)
			if ac.Arch.Name == "trm_hier6" && counted.calls == 0 {
				t.Errorf("a trm_hier6 step made no Add3 call: its input sums are not fused")
			}
			for _, other := range []struct {
				name string
				out  []float64
			}{{"coarse ops only", coarse}, {"Add3 composed", composed}} {
				if len(other.out) != len(native) {
					t.Fatalf("%s: %d outputs, want %d", other.name, len(other.out), len(native))
				}
				for i := range native {
					if native[i] != other.out[i] && !(native[i] != native[i] && other.out[i] != other.out[i]) {
						t.Fatalf("%s: output %d is %v, with the backend's fusions %v", other.name, i, other.out[i], native[i])
					}
				}
			}
		})
	}
}

// testAdd3 checks the backend's Add3 against Add then Add, bit for bit,
// on a length that is no multiple of a vector width, with dst separate
// and with dst aliasing a and b.
func testAdd3(t *testing.T, h *harness) {
	fa := h.be.(engine.FusedAdd3)
	const n = 1031
	a, b, c := h.randn(n), h.randn(n), h.randn(n)
	for i := range c {
		c[i] *= 1e3 // a spread of exponents, so that the rounding order shows
	}
	ref := h.be.Alloc(engine.F32, n)
	h.be.Add(ref, h.up(a), h.up(b))
	h.be.Add(ref, ref, h.up(c))
	want := h.down(ref)
	for _, alias := range []string{"none", "a", "b"} {
		ab, bb, cb := h.up(a), h.up(b), h.up(c)
		dst := h.be.Alloc(engine.F32, n)
		switch alias {
		case "a":
			dst = ab
		case "b":
			dst = bb
		}
		fa.Add3(dst, ab, bb, cb)
		got := h.down(dst)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("dst aliasing %s: element %d is %v, Add then Add gives %v", alias, i, got[i], want[i])
			}
		}
	}
	// A wrong length is an error from Sync, as for every op.
	fa.Add3(h.be.Alloc(engine.F32, n), h.up(a), h.up(b), h.be.Alloc(engine.F32, n-1))
	if err := h.be.Sync(); err == nil {
		t.Fatal("Add3 with a short operand reported no error")
	}
}

// stepAndArchConfigs returns the step configurations (TRM, as ArchStepConfig)
// and ArchStepConfigs together, plus extra TRM configurations, with their
// names in sorted order: the cases the whole-step comparisons run over.
func stepAndArchConfigs(extra ...map[string]engine.Config) (map[string]ArchStepConfig, []string) {
	cfgs := map[string]ArchStepConfig{}
	for _, m := range append([]map[string]engine.Config{StepConfigs()}, extra...) {
		for name, cfg := range m {
			cfgs[name] = ArchStepConfig{cfg, engine.ArchSettings{}}
		}
	}
	for name, ac := range ArchStepConfigs() {
		cfgs[name] = ac
	}
	names := make([]string, 0, len(cfgs))
	for name := range cfgs {
		names = append(names, name)
	}
	slices.Sort(names)
	return cfgs, names
}
