package engine

import "testing"

// TestArchMatmulFLOPs: for the TRM it is MatmulFLOPs; for the HRM it
// counts H_cycles x L_cycles L-level calls and H_cycles H-level calls of
// four blocks each, the last pair differentiated, and the second forward
// of the q_continue target, written out by hand from the shapes.
func TestArchMatmulFLOPs(t *testing.T) {
	c := DefaultConfig()
	c.SeqLen, c.VocabSize, c.HiddenSize, c.NumHeads, c.BatchSize = 81, 11, 64, 4, 3
	for _, bwd := range []bool{false, true} {
		got, err := ArchMatmulFLOPs(c, ArchSettings{}, bwd)
		if err != nil || got != MatmulFLOPs(c, bwd) {
			t.Fatalf("trm backward=%v: %v, %v, want %v", bwd, got, err, MatmulFLOPs(c, bwd))
		}
	}
	h, s, err := ResolveArchConfig("hrm-sudoku")
	if err != nil {
		t.Fatal(err)
	}
	h.BatchSize = 2
	B, S, H, L, V := 2.0, float64(h.SeqTotal()), 512.0, 81.0, 11.0
	I := float64(h.Inter(h.HiddenSize))
	block := 2*B*S*H*2*I + 2*B*S*I*H + 2*B*S*H*3*H + 2*B*S*H*H + 4*B*S*S*H
	heads := 2*B*L*H*V + 2*B*H*2
	fwd := float64(h.HCycles*(h.LCycles+1))*4*block + heads
	gradBlock := 2*(block-4*B*S*S*H) + 2*4*B*S*S*H
	want := fwd + 2*4*gradBlock + 2*heads + fwd
	got, err := ArchMatmulFLOPs(h, s, true)
	if err != nil || got != want {
		t.Fatalf("hrm-sudoku: %v, %v, want %v", got, err, want)
	}
	if _, err := ArchMatmulFLOPs(c, ArchSettings{Name: "nope"}, true); err == nil {
		t.Fatal("an unknown architecture gave no error")
	}
}
