package engine

import "testing"

// TestPresetParamCounts pins every preset's trained-parameter count (the
// Layout of its architecture, without the dataset-sized puzzle table): the
// TRM presets are the paper's 7M (5M for mlp_t), the HRM baselines its
// 27M, with the reference's keys of config/arch/hrm.yaml.
func TestPresetParamCounts(t *testing.T) {
	want := map[string]int{} // trained parameters by preset
	for _, n := range PresetNames() {
		p, _ := LookupPreset(n)
		l, err := NewArchLayout(p.Model, p.Arch)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		want[n] = l.NumTrained
		t.Logf("%s (%s): %d trained parameters, puzzle table %d", n, p.Arch.Name, l.NumTrained, l.NumPuzzle)
	}
	for _, n := range []string{"hrm-sudoku", "hrm-maze", "hrm-arc1", "hrm-arc2"} {
		p, _ := LookupPreset(n)
		if p.Arch.Name != "hrm" || p.Model.HLayers != 4 || p.Model.LLayers != 4 || p.Model.HCycles != 2 || p.Model.LCycles != 2 || p.Model.HaltMaxSteps != 16 {
			t.Errorf("%s: not hrm.yaml's model: %+v %+v", n, p.Arch, p.Model)
		}
		if want[n] < 26_000_000 || want[n] > 28_000_000 {
			t.Errorf("%s: %d trained parameters, the paper's HRM has 27M", n, want[n])
		}
	}
	for _, n := range []string{"sudoku-att", "maze", "arc1", "arc2"} {
		if want[n] < 6_500_000 || want[n] > 7_500_000 {
			t.Errorf("%s: %d trained parameters, the paper's TRM has 7M", n, want[n])
		}
	}
	if a, b := want["hrm-arc1"], want["arc1"]; a <= 3*b {
		t.Errorf("hrm-arc1 %d should have about four times the parameters of arc1 %d (eight blocks against two)", a, b)
	}
}
