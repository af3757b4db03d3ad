package data

import (
	"fmt"
	"os"
	"path/filepath"
)

// SetArrays holds the five arrays of one set, for writing.
type SetArrays struct {
	Inputs, Labels    *Array // [examples, seq_len]
	PuzzleIdentifiers *Array // [puzzles] int32
	PuzzleIndices     *Array // [puzzles+1] int32
	GroupIndices      *Array // [groups+1] int32
}

// WriteSet writes splitDir/name__{field}.npy for the five fields.
func WriteSet(splitDir, name string, a SetArrays) error {
	for _, f := range []struct {
		field string
		arr   *Array
	}{{"inputs", a.Inputs}, {"labels", a.Labels}, {"puzzle_identifiers", a.PuzzleIdentifiers},
		{"puzzle_indices", a.PuzzleIndices}, {"group_indices", a.GroupIndices}} {
		if f.arr == nil {
			return fmt.Errorf("data: set %s lacks %s", name, f.field)
		}
		if err := WriteNPYFile(filepath.Join(splitDir, name+"__"+f.field+".npy"), f.arr); err != nil {
			return err
		}
	}
	return nil
}

// WriteMetadata writes splitDir/dataset.json as the reference does.
func WriteMetadata(splitDir string, m Metadata) error {
	if err := m.Validate(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(splitDir, "dataset.json"), m.MarshalPython(), 0o644)
}

// WriteIdentifiers writes dir/identifiers.json as the reference does.
func WriteIdentifiers(dir string, names []string) error {
	return os.WriteFile(filepath.Join(dir, "identifiers.json"), PythonStrings(names), 0o644)
}
