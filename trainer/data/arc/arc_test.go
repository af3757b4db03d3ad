package arc

import (
	"math"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/trainer/data"
)

func randomGrid(r *data.RNG, h, w int) Grid {
	g := Grid{H: h, W: w, Cells: make([]byte, h*w)}
	for i := range g.Cells {
		g.Cells[i] = byte(r.IntN(10))
	}
	return g
}

func TestDihedralMatchesNumPy(t *testing.T) {
	// [[1 2 3] [4 5 6]] under each transform, as NumPy computes them.
	g := Grid{2, 3, []byte{1, 2, 3, 4, 5, 6}}
	want := []Grid{
		{2, 3, []byte{1, 2, 3, 4, 5, 6}},
		{3, 2, []byte{3, 6, 2, 5, 1, 4}}, // np.rot90
		{2, 3, []byte{6, 5, 4, 3, 2, 1}},
		{3, 2, []byte{4, 1, 5, 2, 6, 3}}, // np.rot90(k=3)
		{2, 3, []byte{3, 2, 1, 6, 5, 4}},
		{2, 3, []byte{4, 5, 6, 1, 2, 3}},
		{3, 2, []byte{1, 4, 2, 5, 3, 6}},
		{3, 2, []byte{6, 3, 5, 2, 4, 1}}, // np.fliplr(np.rot90)
	}
	for tr, w := range want {
		if got := Dihedral(g, tr); !got.Equal(w) {
			t.Errorf("t%d: got %v, want %v", tr, got, w)
		}
	}
}

// TestAugmentRoundTrip: apply then invert is the identity for every
// transform and random colour maps, and names parse back.
func TestAugmentRoundTrip(t *testing.T) {
	r := data.NewRNG(5, 0)
	for trial := 0; trial < 200; trial++ {
		a := Aug{T: trial % 8}
		for i, c := range r.Perm(9) {
			a.Colours[i+1] = byte(c + 1)
		}
		g := randomGrid(r, 1+r.IntN(30), 1+r.IntN(30))
		if back := a.Invert(a.Apply(g)); !back.Equal(g) {
			t.Fatalf("aug %+v: invert(apply(g)) != g", a)
		}
		name, b, err := ParseName(a.Name("abc123"))
		if err != nil || name != "abc123" || b != a {
			t.Fatalf("name %q parsed as %q %+v %v", a.Name("abc123"), name, b, err)
		}
	}
	if name, a, err := ParseName("plain"); err != nil || name != "plain" || a != Identity {
		t.Errorf("plain name: %q %+v %v", name, a, err)
	}
	for _, bad := range []string{"x|||t9|||0123456789", "x|||t1|||0123", "x|||t1|||0123456788", "x|||1|||0123456789"} {
		if _, _, err := ParseName(bad); err == nil {
			t.Errorf("bad name %q accepted", bad)
		}
	}
	if got := (Aug{T: 3, Colours: [10]byte{0, 9, 8, 7, 6, 5, 4, 3, 2, 1}}).Name("id"); got != "id|||t3|||0987654321" {
		t.Errorf("name %q", got)
	}
}

// canvas encodes g at (0, 0) with markers, as the builder does.
func canvas(g Grid) []int32 {
	out := make([]int32, MaxSize*MaxSize)
	for i := 0; i < g.H; i++ {
		for j := 0; j < g.W; j++ {
			out[i*MaxSize+j] = int32(g.At(i, j)) + 2
		}
		if g.W < MaxSize {
			out[i*MaxSize+g.W] = 1
		}
	}
	if g.H < MaxSize {
		for j := 0; j < g.W; j++ {
			out[g.H*MaxSize+j] = 1
		}
	}
	return out
}

func TestCrop(t *testing.T) {
	r := data.NewRNG(1, 1)
	for _, hw := range [][2]int{{1, 1}, {3, 7}, {30, 30}, {30, 1}, {1, 30}, {12, 29}} {
		g := randomGrid(r, hw[0], hw[1])
		if got := Crop(canvas(g)); !got.Equal(g) {
			t.Errorf("%dx%d: crop gives %dx%d", hw[0], hw[1], got.H, got.W)
		}
	}
	empty := make([]int32, MaxSize*MaxSize)
	if g := Crop(empty); g.H != 0 || g.W != 0 {
		t.Errorf("all-PAD canvas crops to %dx%d", g.H, g.W)
	}
	// Rows narrowing: row 0 has 4 colours, row 1 has 2, row 2 has 2, row
	// 3 none: areas 4, 4, 6 -> 3x2. A tie (4 vs 4) keeps the first.
	c := make([]int32, MaxSize*MaxSize)
	copy(c[0:], []int32{2, 3, 4, 5})
	copy(c[30:], []int32{2, 3, 0, 5})
	copy(c[60:], []int32{2, 3, 9, 9})
	if g := Crop(c); g.H != 3 || g.W != 2 {
		t.Errorf("crop %dx%d, want 3x2", g.H, g.W)
	}
	c[60] = 1
	if g := Crop(c); g.H != 1 || g.W != 4 {
		t.Errorf("tie: crop %dx%d, want the first (1x4)", g.H, g.W)
	}
}

// TestVoting: ranking by (count, mean sigmoid q) with first-seen ties,
// pass@K, submission attempts, and both voting modes.
func TestVoting(t *testing.T) {
	in := Grid{1, 1, []byte{1}}
	A, B, C := Grid{1, 1, []byte{2}}, Grid{1, 1, []byte{3}}, Grid{1, 2, []byte{4, 4}}
	names := []string{"<blank>", "p", Aug{T: 0, Colours: [10]byte{0, 2, 1, 3, 4, 5, 6, 7, 8, 9}}.Name("p")}
	tests := []NamedTask{{Name: "p", Task: Task{Test: []Pair{{Input: in, Output: B}}}}}
	e := NewEvaluator(names, tests, 0, false)
	add := func(id int32, g Grid, q float64) {
		t.Helper()
		inp, out := in, g
		if id == 2 { // the colour-swapped version: feed it augmented grids
			_, a, _ := ParseName(names[2])
			inp, out = a.Apply(in), a.Apply(g)
		}
		if err := e.Add(id, canvas(inp), canvas(out), q); err != nil {
			t.Fatal(err)
		}
	}
	e.BeginEval()
	add(1, A, 0)
	add(2, A, 0) // through the augmentation: still a vote for A on input 1
	add(1, B, 5)
	add(0, B, 9) // padding row: ignored
	res, sub := e.Result()
	if res["ARC/pass@1"] != 0 || res["ARC/pass@2"] != 1 || res["ARC/pass@1000"] != 1 {
		t.Errorf("A has 2 votes, B 1: pass@1 %v pass@2 %v", res["ARC/pass@1"], res["ARC/pass@2"])
	}
	if s := sub.Entries["p"]; len(s) != 1 || !s[0].Attempt1.Equal(A) || !s[0].Attempt2.Equal(B) {
		t.Errorf("submission %+v", s)
	}
	// Equal counts: the higher mean q wins; equal both: first seen wins.
	e.BeginEval()
	add(1, A, -1)
	add(1, B, 1)
	if res, _ := e.Result(); res["ARC/pass@1"] != 1 {
		t.Errorf("tie on count: B (higher q) should rank first")
	}
	e.BeginEval()
	add(1, C, 0)
	add(1, B, 0)
	add(1, A, 0)
	res, sub = e.Result()
	if res["ARC/pass@1"] != 0 || res["ARC/pass@2"] != 1 || !sub.Entries["p"][0].Attempt1.Equal(C) {
		t.Errorf("full tie: first seen (C) should rank first: %v", res)
	}
	// Aggregated voting pools evaluations.
	agg := NewEvaluator(names, tests, 0, true)
	e = agg
	e.BeginEval()
	add(1, A, 0)
	e.BeginEval()
	add(1, B, 0)
	add(1, B, 0)
	if res, _ := e.Result(); res["ARC/pass@1"] != 1 || len(e.votes["p"][in.Key()]) != 3 {
		t.Errorf("aggregated: %v", res)
	}
	// A single prediction repeats as attempt 2.
	e = NewEvaluator(names, tests, 0, false)
	add(1, A, 0)
	_, sub = e.Result()
	if a := sub.Entries["p"][0]; !a.Attempt2.Equal(A) {
		t.Error("single prediction not repeated")
	}
	want := `{"p": [{"attempt_1": [[2]], "attempt_2": [[2]]}]}`
	if got := string(sub.MarshalPy()); got != want {
		t.Errorf("submission.json %s, want %s", got, want)
	}
	if q := 1 / (1 + math.Exp(-0.0)); q != 0.5 {
		t.Fatal("sigmoid")
	}
	if err := e.Add(7, canvas(in), canvas(A), 0); err == nil || !strings.Contains(err.Error(), "identifier 7") {
		t.Errorf("unknown identifier: %v", err)
	}
}
