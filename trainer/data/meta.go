package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// Metadata is a split's dataset.json (docs/data.md#layout). Field order and
// names follow the reference's PuzzleDatasetMetadata so the file we write
// is byte-identical to the one Python's json.dump writes.
type Metadata struct {
	PadID int `json:"pad_id"`
	// IgnoreLabelID is the label token that carries no loss; nil (JSON
	// null) means every label is supervised.
	IgnoreLabelID        *int     `json:"ignore_label_id"`
	BlankIdentifierID    int      `json:"blank_identifier_id"`
	VocabSize            int      `json:"vocab_size"`
	SeqLen               int      `json:"seq_len"`
	NumPuzzleIdentifiers int      `json:"num_puzzle_identifiers"`
	TotalGroups          int      `json:"total_groups"`
	MeanPuzzleExamples   float64  `json:"mean_puzzle_examples"`
	TotalPuzzles         int      `json:"total_puzzles"`
	Sets                 []string `json:"sets"`
}

// metadataFields lists the keys dataset.json must hold; a missing one is an
// error rather than a silent zero.
var metadataFields = []string{"pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size",
	"seq_len", "num_puzzle_identifiers", "total_groups", "mean_puzzle_examples", "total_puzzles", "sets"}

// ParseMetadata decodes and validates the bytes of a dataset.json.
func ParseMetadata(b []byte) (Metadata, error) {
	var m Metadata
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return m, fmt.Errorf("dataset.json: %w", err)
	}
	for _, k := range metadataFields {
		if _, ok := raw[k]; !ok {
			return m, fmt.Errorf("dataset.json: missing field %q", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("dataset.json: %w", err)
	}
	return m, m.Validate()
}

// Upper bounds of the size fields of dataset.json. The index arrays are
// int32, which bounds the counts; MaxSeqLen and MaxVocabSize are far
// above any puzzle dataset (ARC: 900 and 12) and keep a corrupt value from
// sizing a model or a batch.
const (
	// MaxSeqLen bounds seq_len.
	MaxSeqLen = 1 << 20
	// MaxVocabSize bounds vocab_size.
	MaxVocabSize = 1 << 24
	// maxCount bounds the counts and identifiers held in int32 arrays.
	maxCount = math.MaxInt32
)

// Validate checks the fields against each other and their bounds.
func (m Metadata) Validate() error {
	bad := func(format string, a ...any) error { return fmt.Errorf("dataset.json: "+format, a...) }
	switch {
	case m.VocabSize > MaxVocabSize:
		return bad("vocab_size %d is more than %d", m.VocabSize, MaxVocabSize)
	case m.SeqLen > MaxSeqLen:
		return bad("seq_len %d is more than %d", m.SeqLen, MaxSeqLen)
	case m.NumPuzzleIdentifiers > maxCount:
		return bad("num_puzzle_identifiers %d is more than %d (identifiers are int32)", m.NumPuzzleIdentifiers, maxCount)
	case m.TotalGroups > maxCount || m.TotalPuzzles > maxCount:
		return bad("total_groups %d or total_puzzles %d is more than %d (indices are int32)", m.TotalGroups, m.TotalPuzzles, maxCount)
	case m.MeanPuzzleExamples > maxCount:
		return bad("mean_puzzle_examples %v is more than %d (indices are int32)", m.MeanPuzzleExamples, maxCount)
	case m.VocabSize <= 0:
		return bad("vocab_size %d must be positive", m.VocabSize)
	case m.SeqLen <= 0:
		return bad("seq_len %d must be positive", m.SeqLen)
	case m.PadID < 0 || m.PadID >= m.VocabSize:
		return bad("pad_id %d outside the vocabulary 0..%d", m.PadID, m.VocabSize-1)
	case m.IgnoreLabelID != nil && (*m.IgnoreLabelID < 0 || *m.IgnoreLabelID >= m.VocabSize):
		return bad("ignore_label_id %d outside the vocabulary 0..%d", *m.IgnoreLabelID, m.VocabSize-1)
	case m.NumPuzzleIdentifiers <= 0:
		return bad("num_puzzle_identifiers %d must be positive", m.NumPuzzleIdentifiers)
	case m.BlankIdentifierID < 0 || m.BlankIdentifierID >= m.NumPuzzleIdentifiers:
		return bad("blank_identifier_id %d outside 0..%d", m.BlankIdentifierID, m.NumPuzzleIdentifiers-1)
	case m.TotalGroups < 0 || m.TotalPuzzles < 0:
		return bad("negative total_groups or total_puzzles")
	case m.MeanPuzzleExamples < 0 || math.IsNaN(m.MeanPuzzleExamples) || math.IsInf(m.MeanPuzzleExamples, 0):
		return bad("mean_puzzle_examples %v is not a non-negative number", m.MeanPuzzleExamples)
	case len(m.Sets) == 0:
		return bad("sets is empty")
	}
	seen := map[string]bool{}
	for _, s := range m.Sets {
		// Set names become file-name prefixes: keep them inside the directory.
		if s == "" || strings.ContainsAny(s, `/\`) || s == "." || s == ".." {
			return bad("set name %q is not a plain file-name prefix", s)
		}
		if seen[s] {
			return bad("set %q listed twice", s)
		}
		seen[s] = true
	}
	return nil
}

// Size bounds of the JSON files, checked before reading: dataset.json is
// a few hundred bytes; identifiers.json holds one name per puzzle
// version (about 30 MB for ARC with 1000 augmentations).
const (
	maxMetadataBytes    = 1 << 20
	maxIdentifiersBytes = 1 << 30
)

// ReadMetadata reads DIR/dataset.json; errors name the file.
func ReadMetadata(dir string) (Metadata, error) {
	path := filepath.Join(dir, "dataset.json")
	b, err := safetensors.ReadRegular(path, maxMetadataBytes)
	if err != nil {
		return Metadata{}, err
	}
	m, err := ParseMetadata(b)
	if err != nil {
		return m, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "dataset.json: "))
	}
	return m, nil
}

// MarshalPython renders m as Python's json.dump does (", " and ": "
// separators, floats with a decimal point), so a dataset we build is
// byte-identical to the reference's.
func (m Metadata) MarshalPython() []byte {
	var b bytes.Buffer
	ignore := "null"
	if m.IgnoreLabelID != nil {
		ignore = strconv.Itoa(*m.IgnoreLabelID)
	}
	fmt.Fprintf(&b, `{"pad_id": %d, "ignore_label_id": %s, "blank_identifier_id": %d, "vocab_size": %d, "seq_len": %d, "num_puzzle_identifiers": %d, "total_groups": %d, "mean_puzzle_examples": %s, "total_puzzles": %d, "sets": `,
		m.PadID, ignore, m.BlankIdentifierID, m.VocabSize, m.SeqLen, m.NumPuzzleIdentifiers, m.TotalGroups, PythonFloat(m.MeanPuzzleExamples), m.TotalPuzzles)
	b.Write(PythonStrings(m.Sets))
	b.WriteByte('}')
	return b.Bytes()
}

// PythonFloat formats f as Python's repr(float) does: the shortest
// round-trip digits, always with a '.' or an exponent, exponent form below
// 1e-4 and from 1e16.
func PythonFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	a := math.Abs(f)
	if a != 0 && (a < 1e-4 || a >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Go writes e-05 / e+16, Python e-05 / e+16: identical.
		return s
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// PythonString quotes s as Python's json.dumps does with its default
// ensure_ascii: non-ASCII as \uXXXX (surrogate pairs above the BMP), and
// unlike Go's encoder no escaping of <, > and &.
func PythonString(s string) []byte {
	b := []byte{'"'}
	for _, r := range s {
		switch {
		case r == '"':
			b = append(b, '\\', '"')
		case r == '\\':
			b = append(b, '\\', '\\')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r < 0x20 || (r >= 0x7f && r <= 0xffff):
			b = fmt.Appendf(b, `\u%04x`, r)
		case r > 0xffff:
			r -= 0x10000
			b = fmt.Appendf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			b = append(b, byte(r))
		}
	}
	return append(b, '"')
}

// PythonStrings renders a JSON list of strings as json.dump does.
func PythonStrings(list []string) []byte {
	b := []byte{'['}
	for i, s := range list {
		if i > 0 {
			b = append(b, ',', ' ')
		}
		b = append(b, PythonString(s)...)
	}
	return append(b, ']')
}

// ReadIdentifiers reads DIR/identifiers.json: puzzle names by identifier.
func ReadIdentifiers(dir string) ([]string, error) {
	path := filepath.Join(dir, "identifiers.json")
	b, err := safetensors.ReadRegular(path, maxIdentifiersBytes)
	if err != nil {
		return nil, err
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("%s: want a JSON list of names: %w", path, err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: empty list (identifier 0 must be %q)", path, "<blank>")
	}
	return ids, nil
}

// errMismatch is wrapped by merge errors so tests can tell them apart.
var errMismatch = errors.New("metadata disagree")
