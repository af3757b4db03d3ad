package data

import (
	"strings"
	"testing"
)

func intp(v int) *int { return &v }

// TestMetadataPythonBytes checks the bytes against what the reference's
// json.dump(metadata.model_dump()) writes for a Sudoku and an ARC split.
func TestMetadataPythonBytes(t *testing.T) {
	sudoku := Metadata{PadID: 0, IgnoreLabelID: intp(0), BlankIdentifierID: 0, VocabSize: 11, SeqLen: 81,
		NumPuzzleIdentifiers: 1, TotalGroups: 1000, MeanPuzzleExamples: 1, TotalPuzzles: 1000, Sets: []string{"all"}}
	want := `{"pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": 0, "vocab_size": 11, "seq_len": 81, "num_puzzle_identifiers": 1, "total_groups": 1000, "mean_puzzle_examples": 1.0, "total_puzzles": 1000, "sets": ["all"]}`
	if got := string(sudoku.MarshalPython()); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	back, err := ParseMetadata([]byte(want))
	if err != nil || back.TotalGroups != 1000 || *back.IgnoreLabelID != 0 || back.Sets[0] != "all" {
		t.Errorf("parse back: %+v %v", back, err)
	}
	for f, s := range map[float64]string{3.25: "3.25", 1.0 / 3: "0.3333333333333333", 1e-5: "1e-05", 1e16: "1e+16", 123456.0: "123456.0"} {
		if got := PythonFloat(f); got != s {
			t.Errorf("PythonFloat(%v) = %s, want %s", f, got, s)
		}
	}
	if got := string(PythonStrings([]string{"<blank>", "a|||t1|||0123", "é\"\n", "\U0001F600"})); got != `["<blank>", "a|||t1|||0123", "\u00e9\"\n", "\ud83d\ude00"]` {
		t.Errorf("PythonStrings: %s", got)
	}
	null := Metadata{PadID: 0, BlankIdentifierID: 0, VocabSize: 3, SeqLen: 2, NumPuzzleIdentifiers: 1, Sets: []string{"all"}}
	if !strings.Contains(string(null.MarshalPython()), `"ignore_label_id": null`) {
		t.Error("nil ignore_label_id not written as null")
	}
}

func TestMetadataRejects(t *testing.T) {
	base := `{"pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": 0, "vocab_size": 11, "seq_len": 81, "num_puzzle_identifiers": 1, "total_groups": 1, "mean_puzzle_examples": 1.0, "total_puzzles": 1, "sets": ["all"]}`
	cases := map[string][2]string{
		"missing":    {`"seq_len": 81, `, "missing field \"seq_len\""},
		"vocab":      {`"vocab_size": 11`, "vocab_size"},
		"pad":        {`"pad_id": 0`, "pad_id"},
		"ignore":     {`"ignore_label_id": 0`, "ignore_label_id"},
		"blank":      {`"blank_identifier_id": 0`, "blank_identifier_id"},
		"sets":       {`"sets": ["all"]`, "set name"},
		"string int": {`"seq_len": 81`, "seq_len"},
	}
	repl := map[string]string{
		"missing": "", "vocab": `"vocab_size": 0`, "pad": `"pad_id": 11`, "ignore": `"ignore_label_id": 12`,
		"blank": `"blank_identifier_id": 1`, "sets": `"sets": ["../x"]`, "string int": `"seq_len": "81"`,
	}
	for name, c := range cases {
		_, err := ParseMetadata([]byte(strings.Replace(base, c[0], repl[name], 1)))
		if err == nil || !strings.Contains(err.Error(), c[1]) {
			t.Errorf("%s: got %v, want an error about %s", name, err, c[1])
		}
	}
	if _, err := ParseMetadata([]byte("[1,2]")); err == nil {
		t.Error("a list accepted as dataset.json")
	}
}

// FuzzParseMetadata: arbitrary bytes never panic the parser, and anything
// it accepts is valid and survives our Python-style rewrite unchanged.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(`{"pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": 0, "vocab_size": 11, "seq_len": 81, "num_puzzle_identifiers": 1, "total_groups": 1000, "mean_puzzle_examples": 1.0, "total_puzzles": 1000, "sets": ["all"]}`))
	f.Add([]byte(`{"pad_id": 0, "ignore_label_id": null, "blank_identifier_id": 0, "vocab_size": 12, "seq_len": 900, "num_puzzle_identifiers": 960961, "total_groups": 960, "mean_puzzle_examples": 4.1, "total_puzzles": 961000, "sets": ["all", "b"]}`))
	f.Add([]byte(`{"pad_id": -1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted invalid metadata: %v", err)
		}
		m2, err := ParseMetadata(m.MarshalPython())
		if err != nil {
			t.Fatalf("rewrite rejected: %v\n%s", err, m.MarshalPython())
		}
		if string(m2.MarshalPython()) != string(m.MarshalPython()) {
			t.Fatalf("rewrite changed:\n%s\n%s", m.MarshalPython(), m2.MarshalPython())
		}
	})
}
