package engine

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tinyrecursive/trm/internal/safetensors"
)

// LoadState reads a model state saved with the reference keys (F32, or
// BF16/F16 widened exactly to float32, F64 narrowed) into a new Params of
// layout l. A missing, unknown or mis-shaped key is an error naming it and
// the file.
func LoadState(path string, l *Layout) (*Params, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return StateFromTensors(f.Tensors, l, path)
}

// StateFromTensors builds Params from named tensors (a decoded safetensors
// file or an imported PyTorch state dict); name is used in error messages.
func StateFromTensors(ts map[string]safetensors.Tensor, l *Layout, name string) (*Params, error) {
	p := NewParams(l)
	var problems []string
	for _, e := range l.Entries {
		t, ok := ts[e.Key]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing key %s (shape %v)", e.Key, e.Shape))
			continue
		}
		if !slices.Equal(t.Shape, e.Shape) {
			problems = append(problems, fmt.Sprintf("key %s has shape %v, the config needs %v", e.Key, t.Shape, e.Shape))
			continue
		}
		v, err := t.Float32()
		if err != nil {
			problems = append(problems, fmt.Sprintf("key %s: %v", e.Key, err))
			continue
		}
		copy(p.view(e), v)
	}
	var unknown []string
	for k := range ts {
		if _, ok := l.Lookup(k); !ok {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		problems = append(problems, fmt.Sprintf("unknown key %s (not in this config's model)", k))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s: %s", name, strings.Join(problems, "; "))
	}
	return p, nil
}

// Tensors returns the state as F32 tensors under the reference keys.
func (p *Params) Tensors() map[string]safetensors.Tensor {
	out := make(map[string]safetensors.Tensor, len(p.Layout.Entries))
	for _, e := range p.Layout.Entries {
		out[e.Key] = safetensors.FromFloat32(e.Shape, slices.Clone(p.view(e)))
	}
	return out
}

// SaveState writes the state as F32 safetensors with the reference keys,
// atomically (an existing file is replaced only by a complete one).
func SaveState(path string, p *Params, metadata map[string]string) error {
	return safetensors.WriteFile(path, p.Tensors(), metadata)
}
