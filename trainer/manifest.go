package trainer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// ManifestFile lists every other file of a checkpoint with its size and
// SHA-256, written last (after every listed file is fsynced), so a
// checkpoint whose manifest verifies is complete and unaltered: a flipped
// bit, a truncated or deleted file is found before anything is loaded.
const ManifestFile = "manifest.json"

// Manifest is the content of ManifestFile.
type Manifest struct {
	Version int                      `json:"version"`
	Files   map[string]ManifestEntry `json:"files"`
}

// ManifestEntry is one file of a checkpoint.
type ManifestEntry struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// requiredFiles are the files every checkpoint has: a manifest that omits
// one of them does not describe a checkpoint.
var requiredFiles = []string{StateFile, ModelFile, MetaFile}

func hashFile(path string) (ManifestEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return ManifestEntry{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return ManifestEntry{}, fmt.Errorf("%s: %w", path, err)
	}
	return ManifestEntry{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// writeManifest hashes the named files of dir (read back from the disk, so
// the manifest describes what was stored, not what was meant to be) and
// writes ManifestFile, fsynced.
func writeManifest(dir string, names []string) error {
	m := Manifest{Version: 1, Files: map[string]ManifestEntry{}}
	for _, name := range names {
		e, err := hashFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		m.Files[name] = e
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeSynced(filepath.Join(dir, ManifestFile), b)
}

// VerifyCheckpoint checks a checkpoint directory against its manifest:
// every listed file exists with the recorded size and SHA-256, and the
// manifest lists the state, the model and trainer.json. The error names the
// first file that does not match.
func VerifyCheckpoint(dir string) error {
	mp := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(mp)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("checkpoint %s: no %s: the checkpoint is incomplete or was not written by trm-train", dir, ManifestFile)
		}
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", mp, err)
	}
	if m.Version != 1 {
		return fmt.Errorf("%s: unsupported manifest version %d", mp, m.Version)
	}
	for _, name := range requiredFiles {
		if _, ok := m.Files[name]; !ok {
			return fmt.Errorf("%s: does not list %s", mp, name)
		}
	}
	names := make([]string, 0, len(m.Files))
	for name := range m.Files {
		if name != filepath.Base(name) || name == "." || name == ".." || name == ManifestFile {
			return fmt.Errorf("%s: invalid file name %q", mp, name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := m.Files[name]
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			if os.IsNotExist(err) {
				return fmt.Errorf("checkpoint %s: %s is missing (listed in %s)", dir, name, ManifestFile)
			}
			return fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		if st.Size() != want.Size {
			return fmt.Errorf("checkpoint %s: %s has %d bytes, the manifest records %d (truncated or replaced)", dir, name, st.Size(), want.Size)
		}
		got, err := hashFile(p)
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		if got.SHA256 != want.SHA256 {
			return fmt.Errorf("checkpoint %s: %s does not match its SHA-256 in the manifest (the file is corrupted)", dir, name)
		}
	}
	return nil
}
