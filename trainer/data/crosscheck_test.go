package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetadataAgainstArrays edits one field of a valid dataset.json at a
// time: every inconsistency with the arrays must fail both Open (as for
// training) and Check (data check), naming the file and the field.
func TestMetadataAgainstArrays(t *testing.T) {
	// Toy dataset: 2 groups, 3 puzzles, 6 examples: mean 2, total_puzzles 3.
	cases := []struct {
		name, from, to, want string
	}{
		{"mean 1e6", `"mean_puzzle_examples": 2.0`, `"mean_puzzle_examples": 1e6`, "mean_puzzle_examples 1e+06 but the puzzle_indices files hold 6 examples in 3 puzzles"},
		{"mean off", `"mean_puzzle_examples": 2.0`, `"mean_puzzle_examples": 2.5`, "mean_puzzle_examples 2.5"},
		{"total_puzzles above", `"total_puzzles": 3`, `"total_puzzles": 4`, "total_puzzles 4 but the arrays hold 2 groups of 3 puzzles"},
		{"total_puzzles below", `"total_puzzles": 3`, `"total_puzzles": 1`, "total_puzzles 1"},
		{"total_groups", `"total_groups": 2`, `"total_groups": 1000000`, "total_groups 1000000"},
		{"seq_len", `"seq_len": 3`, `"seq_len": 4`, "want [examples, 4] (seq_len)"},
		{"seq_len bound", `"seq_len": 3`, `"seq_len": 1000000000`, "seq_len 1000000000 is more than"},
		{"vocab bound", `"vocab_size": 1000`, `"vocab_size": 1000000000`, "vocab_size 1000000000 is more than"},
		{"vocab below tokens", `"vocab_size": 1000`, `"vocab_size": 5`, "outside the vocabulary 0..4"},
		{"set not listed", `"sets": ["all"]`, `"sets": ["all"]`, `does not list set "extra"`},
		{"set listed, no files", `"sets": ["all"]`, `"sets": ["all", "more"]`, "more__inputs.npy"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		writeToy(t, dir, "train", [][]int{{2, 1}, {3}}, 4)
		meta := filepath.Join(dir, "train", "dataset.json")
		b, err := os.ReadFile(meta)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), c.from) {
			t.Fatalf("%s: %s lacks %s: %s", c.name, meta, c.from, b)
		}
		if err := os.WriteFile(meta, []byte(strings.Replace(string(b), c.from, c.to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if c.name == "set not listed" {
			in := filepath.Join(dir, "train", "all__inputs.npy")
			raw, _ := os.ReadFile(in)
			os.WriteFile(filepath.Join(dir, "train", "extra__inputs.npy"), raw, 0o644)
		}
		ds, err := Open("train", dir)
		if c.name == "vocab below tokens" {
			// Open does not read tokens; Check does.
			if err != nil {
				t.Errorf("%s: Open: %v", c.name, err)
				continue
			}
			ds.Close()
		} else if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Join(dir, "train")) {
			t.Errorf("%s: Open: err = %v, want %q and the file", c.name, err, c.want)
		}
		if _, err := Check(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Check: err = %v, want %q", c.name, err, c.want)
		}
	}
}

// TestCheckReportsMaxToken checks the largest token is reported.
func TestCheckReportsMaxToken(t *testing.T) {
	dir := t.TempDir()
	writeToy(t, dir, "train", [][]int{{2, 1}, {3}}, 4)
	rep, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Example e holds inputs [e+1, e+1, 1] and labels [e+1, 0, 2]: 6 examples.
	if rep[0].MaxToken != 6 {
		t.Errorf("MaxToken = %d, want 6", rep[0].MaxToken)
	}
}
