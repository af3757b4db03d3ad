package cpu

import (
	"math"
	"testing"
)

// exp32 against float64 exp over the whole useful range, and its edges.
func TestExp32(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x < 88.5; x += 0.001953125 {
		got, want := float64(exp32(x)), math.Exp(float64(x))
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	if worst > 3e-7 {
		t.Fatalf("exp32 worst relative error %.3g", worst)
	}
	if exp32(-100) != 0 || !math.IsInf(float64(exp32(100)), 1) || exp32(0) != 1 {
		t.Fatalf("exp32 edges: %v %v %v", exp32(-100), exp32(100), exp32(0))
	}
	if v := exp32(float32(math.NaN())); v == v {
		t.Fatal("exp32(NaN) is not NaN")
	}
	if s := sigmoid32(-200); s != 0 {
		t.Fatalf("sigmoid32(-200) = %v", s)
	}
	if s := sigmoid32(200); s != 1 {
		t.Fatalf("sigmoid32(200) = %v", s)
	}
}
