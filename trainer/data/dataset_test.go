package data

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// toyL and toyV size the toy datasets: example e has inputs
// [e+1, e+1, 1] and labels [e+1, 0, 2] (uint16), so a batch row tells
// which example it came from and label 0 exercises ignore_label_id.
const (
	toyL = 3
	toyV = 1000
)

// writeToy writes DIR/split for groups given as example counts per puzzle;
// puzzle p gets identifier idBase+p (kept below num_puzzle_identifiers).
func writeToy(t testing.TB, dir, split string, groups [][]int, numIDs int) {
	t.Helper()
	sd := filepath.Join(dir, split)
	if err := os.MkdirAll(sd, 0o755); err != nil {
		t.Fatal(err)
	}
	var in, lab []byte
	pidx, gidx, ids := []int32{0}, []int32{0}, []int32{}
	e := 0
	for _, g := range groups {
		for _, n := range g {
			for k := 0; k < n; k++ {
				for _, v := range []int{e + 1, e + 1, 1} {
					in = binary.LittleEndian.AppendUint16(in, uint16(v))
				}
				for _, v := range []int{e + 1, 0, 2} {
					lab = binary.LittleEndian.AppendUint16(lab, uint16(v))
				}
				e++
			}
			ids = append(ids, int32(1+len(ids)%(numIDs-1)))
			pidx = append(pidx, int32(e))
		}
		gidx = append(gidx, int32(len(ids)))
	}
	ia, _ := NewArray(Uint16, []int{e, toyL}, in)
	la, _ := NewArray(Uint16, []int{e, toyL}, lab)
	err := WriteSet(sd, "all", SetArrays{ia, la, Int32Array(ids), Int32Array(pidx), Int32Array(gidx)})
	if err != nil {
		t.Fatal(err)
	}
	m := Metadata{PadID: 0, IgnoreLabelID: intp(0), BlankIdentifierID: 0, VocabSize: toyV, SeqLen: toyL,
		NumPuzzleIdentifiers: numIDs, TotalGroups: len(groups), MeanPuzzleExamples: float64(e) / float64(len(ids)),
		TotalPuzzles: len(ids), Sets: []string{"all"}}
	if err := WriteMetadata(sd, m); err != nil {
		t.Fatal(err)
	}
	names := []string{"<blank>"}
	for i := 1; i < numIDs; i++ {
		names = append(names, "p"+string(rune('a'+i%26)))
	}
	if err := WriteIdentifiers(dir, names); err != nil {
		t.Fatal(err)
	}
}

func TestOpenAndMerge(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeToy(t, a, "train", [][]int{{2, 1}, {3}}, 4)
	writeToy(t, b, "train", [][]int{{1}, {1}, {2, 2}}, 4)
	ds, err := Open("train", a)
	if err != nil {
		t.Fatal(err)
	}
	s := ds.Sets[0]
	if s.NumExamples() != 6 || s.NumPuzzles() != 3 || s.NumGroups() != 2 || s.Name != "all" {
		t.Errorf("toy set: %d examples %d puzzles %d groups %q", s.NumExamples(), s.NumPuzzles(), s.NumGroups(), s.Name)
	}
	ds.Close()

	ds, err = Open("train", a, b)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	m := ds.Meta
	if m.NumPuzzleIdentifiers != 8 || m.TotalGroups != 5 || m.TotalPuzzles != 7 || len(ds.Sets) != 2 || ds.Sets[1].Name != "all1" {
		t.Errorf("merged: %+v, sets %d", m, len(ds.Sets))
	}
	// mean examples weighted by puzzles: (6 + 6) / 7.
	if m.MeanPuzzleExamples < 12.0/7-1e-12 || m.MeanPuzzleExamples > 12.0/7+1e-12 {
		t.Errorf("mean_puzzle_examples %v, want 12/7", m.MeanPuzzleExamples)
	}
	// The second directory's identifiers move past the first's four.
	for i, id := range ds.Sets[1].PuzzleIdentifiers {
		if id < 4 || id >= 8 {
			t.Errorf("second dir puzzle %d identifier %d not offset", i, id)
		}
	}
	if len(ds.Identifiers) != 8 || ds.Identifiers[4] != "<blank>" {
		t.Errorf("merged identifiers %v", ds.Identifiers)
	}

	c := t.TempDir()
	writeToy(t, c, "train", [][]int{{1}}, 5)
	if _, err := Open("train", a, c); !errors.Is(err, errMismatch) || !strings.Contains(err.Error(), "num_puzzle_identifiers") {
		t.Errorf("mismatched merge: %v", err)
	}
}

// TestOpenRejects corrupts one file at a time; every error names the file.
func TestOpenRejects(t *testing.T) {
	cases := []struct {
		name, file string
		corrupt    func(sd, file string)
		want       string
	}{
		{"missing", "all__labels.npy", func(sd, f string) { os.Remove(filepath.Join(sd, f)) }, "no such file"},
		{"index dtype", "all__puzzle_indices.npy", func(sd, f string) {
			a, _ := NewArray(Int64, []int{4}, make([]byte, 32))
			WriteNPYFile(filepath.Join(sd, f), a)
		}, "want a 1-D int32"},
		{"not increasing", "all__puzzle_indices.npy", func(sd, f string) {
			WriteNPYFile(filepath.Join(sd, f), Int32Array([]int32{0, 2, 2, 6}))
		}, "not increasing"},
		{"wrong end", "all__group_indices.npy", func(sd, f string) {
			WriteNPYFile(filepath.Join(sd, f), Int32Array([]int32{0, 2, 4}))
		}, "ends at 4"},
		{"identifier range", "all__puzzle_identifiers.npy", func(sd, f string) {
			WriteNPYFile(filepath.Join(sd, f), Int32Array([]int32{1, 9, 2}))
		}, "outside 0..3"},
		{"shape", "all__labels.npy", func(sd, f string) {
			a, _ := NewArray(Uint8, []int{6, 4}, make([]byte, 24))
			WriteNPYFile(filepath.Join(sd, f), a)
		}, "want [examples, 3]"},
		{"examples", "all__labels.npy", func(sd, f string) {
			a, _ := NewArray(Uint8, []int{5, 3}, make([]byte, 15))
			WriteNPYFile(filepath.Join(sd, f), a)
		}, "5 examples"},
		{"bad header", "all__inputs.npy", func(sd, f string) {
			os.WriteFile(filepath.Join(sd, f), []byte("garbage"), 0o644)
		}, "bad magic"},
		{"totals", "dataset.json", func(sd, f string) {
			b, _ := os.ReadFile(filepath.Join(sd, f))
			os.WriteFile(filepath.Join(sd, f), []byte(strings.Replace(string(b), `"total_groups": 2`, `"total_groups": 3`, 1)), 0o644)
		}, "total_groups 3"},
		{"identifiers", "identifiers.json", func(sd, f string) {
			os.WriteFile(filepath.Join(sd, "..", f), []byte(`["<blank>"]`), 0o644)
		}, "1 names"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		writeToy(t, dir, "train", [][]int{{2, 1}, {3}}, 4)
		sd := filepath.Join(dir, "train")
		c.corrupt(sd, c.file)
		_, err := Open("train", dir)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s: got %v, want an error naming %s and saying %q", c.name, err, c.file, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	writeToy(t, dir, "train", [][]int{{2, 1}, {3}}, 4)
	writeToy(t, dir, "test", [][]int{{1, 1}}, 4)
	rep, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 2 || rep[0].Examples != 6 || rep[1].Examples != 2 || rep[0].Supervised != 12 || rep[0].InputsDType != Uint16 {
		t.Errorf("report %+v", rep)
	}
	// A token outside the vocabulary deep inside the file is found.
	a, _ := NewArray(Uint16, []int{6, 3}, make([]byte, 36))
	binary.LittleEndian.PutUint16(a.Bytes()[2*(5*3+2):], toyV)
	WriteNPYFile(filepath.Join(dir, "train", "all__labels.npy"), a)
	if _, err := Check(dir); err == nil || !strings.Contains(err.Error(), "example 5 position 2: token 1000 outside") {
		t.Errorf("bad token: %v", err)
	}
	if _, err := Check(t.TempDir()); err == nil {
		t.Error("empty directory passed the check")
	}
}
