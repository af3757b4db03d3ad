package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tinyrecursive/trm/engine"
)

// Config files are small: these bounds refuse a hostile one (a YAML alias
// bomb expands exponentially) before it costs memory or time.
const (
	maxConfigFileBytes = 1 << 20
	maxConfigNodes     = 100_000
)

// LoadConfigFile overlays the config file at path on c, by its extension:
// .json (ParseConfigJSON) or .yaml / .yml (ParseConfigYAML, with hydra
// defaults lists resolved against the file's directory, as the
// reference's config/ directory is laid out: arch/NAME.yaml beside it).
func LoadConfigFile(c *Config, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > maxConfigFileBytes {
		return fmt.Errorf("%s: %d bytes, more than a config file's limit of %d", path, st.Size(), maxConfigFileBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return ParseConfigJSON(c, b, path)
	case ".yaml", ".yml":
		root, err := parseYAML(b, path)
		if err != nil {
			return err
		}
		return applyFile(c, root, path, filepath.Dir(path))
	}
	return fmt.Errorf("%s: unknown config file type %q (want .json, .yaml or .yml)", path, filepath.Ext(path))
}

// ParseConfigYAML overlays a YAML training config on c. It reads the
// reference's formats:
//
//   - an architecture file as in its config/arch/ (top-level `name`, a
//     nested `loss` with `name` and `loss_type`, the model keys): it
//     replaces the model keys (those it omits take the trm group's values;
//     the dataset's sizes are kept);
//   - a run's all_config.yaml (the training keys, the model under `arch`
//     with its `name` and `loss`), and a config like its cfg_pretrain.yaml,
//     whose hydra `defaults` list selects the architecture group;
//   - this trainer's own keys, in the same places.
//
// `${.key}` interpolations refer to a key of the same mapping, `${..key}`
// to the parent's and `${a.b}` to the root's; puzzle_emb_ndim:
// ${.hidden_size} keeps following hidden_size through later overrides.
// Reference keys without effect here are accepted with one warning each
// (Config.Warnings). name is the file's name in error messages.
func ParseConfigYAML(c *Config, b []byte, name string) error {
	root, err := parseYAML(b, name)
	if err != nil {
		return err
	}
	return applyFile(c, root, name, "")
}

// ParseConfigJSON overlays a JSON training config (the same keys and
// forms as ParseConfigYAML, the model under "arch") on c; unknown keys are
// errors naming the file.
func ParseConfigJSON(c *Config, b []byte, name string) error {
	if len(b) > maxConfigFileBytes {
		return fmt.Errorf("%s: %d bytes, more than a config file's limit of %d", name, len(b), maxConfigFileBytes)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	root, err := jsonNode(dec, b)
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: trailing data after the config object", name)
	}
	return applyFile(c, root, name, "")
}

// parseYAML reads one YAML document into its node tree.
func parseYAML(b []byte, name string) (*yaml.Node, error) {
	if len(b) > maxConfigFileBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than a config file's limit of %d", name, len(b), maxConfigFileBytes)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind == 0 {
		return &yaml.Node{Kind: yaml.MappingNode}, nil // an empty file
	}
	return doc.Content[0], nil
}

// jsonNode reads one JSON value from dec as a YAML node tree, so JSON and
// YAML files share one interpretation. Positions become line numbers.
func jsonNode(dec *json.Decoder, src []byte) (*yaml.Node, error) {
	line := func() int { return 1 + strings.Count(string(src[:dec.InputOffset()]), "\n") }
	tok, err := dec.Token()
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, err)
		}
		if err == io.EOF {
			return nil, fmt.Errorf("invalid JSON: unexpected end of file")
		}
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	n := &yaml.Node{Line: line()}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("invalid JSON: %v", err)
				}
				k := kt.(string)
				if seen[k] {
					return nil, fmt.Errorf("line %d: key %q given twice", line(), k)
				}
				seen[k] = true
				v, err := jsonNode(dec, src)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k, Line: v.Line}, v)
			}
		case '[':
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
			for dec.More() {
				v, err := jsonNode(dec, src)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, v)
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, fmt.Errorf("invalid JSON: %v", err)
		}
	case string:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!str", t
	case json.Number:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!float", t.String()
	case bool:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", strconv.FormatBool(t)
	case nil:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
	}
	return n, nil
}

// fileReader interprets one config file's tree.
type fileReader struct {
	c      *Config
	name   string
	dir    string // where hydra groups (arch/NAME.yaml) are looked up; "" = built-in groups only
	root   *yaml.Node
	interp map[*yaml.Node]*yaml.Node // a scalar that is one interpolation -> the node it names
	nodes  int
}

func (r *fileReader) errf(n *yaml.Node, f string, a ...any) error {
	if n != nil && n.Line > 0 {
		return fmt.Errorf("%s:%d: %s", r.name, n.Line, fmt.Sprintf(f, a...))
	}
	return fmt.Errorf("%s: %s", r.name, fmt.Sprintf(f, a...))
}

// applyFile applies a parsed config file to c.
func applyFile(c *Config, root *yaml.Node, name, dir string) error {
	r := &fileReader{c: c, name: name, dir: dir, root: root, interp: map[*yaml.Node]*yaml.Node{}}
	if root.Kind != yaml.MappingNode {
		return r.errf(root, "the config must be a mapping of keys, not a %s", kindName(root))
	}
	if err := r.resolve(root, nil); err != nil {
		return err
	}
	// An architecture file (config/arch/NAME.yaml) names its model class
	// at the top and has no training keys.
	if get(root, "name") != nil && get(root, "arch") == nil {
		return r.applyArch(root, "")
	}
	self := func() error { return r.applyTraining(root) }
	defaults := get(root, "defaults")
	if defaults == nil {
		return self()
	}
	if defaults.Kind != yaml.SequenceNode {
		return r.errf(defaults, "defaults must be a list (hydra's defaults list)")
	}
	selfDone := false
	for _, item := range defaults.Content {
		item = deref(item)
		switch {
		case item.Kind == yaml.ScalarNode && item.Value == "_self_":
			if err := self(); err != nil {
				return err
			}
			selfDone = true
		case item.Kind == yaml.MappingNode && len(item.Content) == 2:
			group := strings.TrimSpace(strings.TrimPrefix(item.Content[0].Value, "override "))
			choice := deref(item.Content[1])
			if group != "arch" {
				c.warn("defaults."+group, fmt.Sprintf("%s: defaults group %q: accepted but has no effect here (only arch selects a group)", name, group))
				continue
			}
			if err := r.selectArch(choice); err != nil {
				return err
			}
		default:
			return r.errf(item, "a defaults entry must be _self_ or `GROUP: NAME`")
		}
	}
	if !selfDone { // hydra applies the file's own keys after its defaults
		return self()
	}
	return nil
}

// selectArch applies `arch: NAME` from a defaults list: the file
// arch/NAME.yaml beside the config when there is one (a copy of the
// reference's config directory), else the built-in group.
func (r *fileReader) selectArch(choice *yaml.Node) error {
	if choice.Kind != yaml.ScalarNode {
		return r.errf(choice, "arch: want a group name such as trm")
	}
	if r.dir != "" {
		p := filepath.Join(r.dir, "arch", choice.Value+".yaml")
		if _, err := os.Stat(p); err == nil {
			return LoadConfigFile(r.c, p)
		}
	}
	if err := r.c.assign("arch", value{s: choice.Value}); err != nil {
		return r.errf(choice, "%v", err)
	}
	return nil
}

// applyTraining applies the top-level keys of a training config.
func (r *fileReader) applyTraining(root *yaml.Node) error {
	var evalNull *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i].Value, deref(root.Content[i+1])
		switch {
		case k == "defaults":
			continue
		case k == "arch" && v.Kind == yaml.MappingNode:
			if err := r.applyArch(v, "arch."); err != nil {
				return err
			}
			continue
		case k == "eval_interval" && isNull(v):
			evalNull = v // one pass of all epochs, whichever order the keys come in
			continue
		}
		if _, _, ignored := ignoredKey(k); ignored || v.Kind != yaml.MappingNode {
			if err := r.set(k, v); err != nil {
				return err
			}
			continue
		}
		// A mapping under a key other than arch: its leaves, as dotted keys.
		if err := r.applyNested(k+".", v); err != nil {
			return err
		}
	}
	if evalNull != nil {
		return r.set("eval_interval", evalNull)
	}
	return nil
}

func (r *fileReader) applyNested(prefix string, m *yaml.Node) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := prefix+m.Content[i].Value, deref(m.Content[i+1])
		if v.Kind == yaml.MappingNode {
			if _, _, ignored := ignoredKey(k); !ignored {
				if err := r.applyNested(k+".", v); err != nil {
					return err
				}
				continue
			}
		}
		if err := r.set(k, v); err != nil {
			return err
		}
	}
	return nil
}

// applyArch applies an architecture mapping (an arch file's root, or the
// `arch` of a training config; prefix is "" or "arch."). With a `name` it
// is a whole architecture as the reference reads it: the model keys start
// from that group's values. Without one it overlays the keys it gives.
func (r *fileReader) applyArch(m *yaml.Node, prefix string) error {
	if n := get(m, "name"); n != nil {
		n = deref(n)
		if n.Kind != yaml.ScalarNode {
			return r.errf(n, "%sname: want the model's name, e.g. %s", prefix, "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1")
		}
		if err := r.c.assign("arch", value{s: n.Value}); err != nil {
			return r.errf(n, "%sname: %v", prefix, err)
		}
	}
	follow := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i].Value, deref(m.Content[i+1])
		switch k {
		case "name":
			continue
		case "loss":
			if v.Kind != yaml.MappingNode {
				return r.errf(v, "%sloss: want a mapping with name and loss_type", prefix)
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				lk, lv := v.Content[j].Value, deref(v.Content[j+1])
				if lk != "name" && lk != "loss_type" {
					return r.errf(v.Content[j], "unknown key \"arch.loss.%s\" (the loss head takes name and loss_type)", lk)
				}
				if err := r.set("arch.loss."+lk, lv); err != nil {
					return err
				}
			}
			continue
		case "puzzle_emb_ndim":
			// ${.hidden_size}: not a value but a rule, kept through later
			// overrides of hidden_size.
			if t := r.interp[m.Content[i+1]]; t != nil && t == get(m, "hidden_size") {
				follow = true
				continue
			}
		}
		if err := r.set("arch."+k, v); err != nil {
			return err
		}
	}
	if follow {
		r.c.Arch.PuzzleEmbNdim, r.c.res.ndimGiven = r.c.Arch.HiddenSize, false
	}
	return nil
}

// set assigns one key from a node.
func (r *fileReader) set(k string, v *yaml.Node) error {
	var val value
	switch {
	case isNull(v):
		val.null = true
	case v.Kind == yaml.ScalarNode:
		val.s = v.Value
	case v.Kind == yaml.SequenceNode:
		val.isList = true
		for _, it := range v.Content {
			it = deref(it)
			if it.Kind == yaml.ScalarNode {
				val.list = append(val.list, it.Value)
			} else if _, _, ignored := ignoredKey(k); !ignored { // evaluators is a list of mappings
				return r.errf(it, "key %s: a list of %ss is not a value of this key", k, kindName(it))
			}
		}
	default:
		if _, _, ignored := ignoredKey(k); !ignored {
			return r.errf(v, "key %s: a %s is not a value of this key", k, kindName(v))
		}
	}
	if err := r.c.assign(k, val); err != nil {
		return r.errf(v, "%v", err)
	}
	return nil
}

// resolve replaces every ${...} interpolation in the tree below n (whose
// enclosing mappings are parents, innermost last) by the value it names,
// remembering which node a whole-value interpolation named. It also bounds
// the tree's size.
func (r *fileReader) resolve(n *yaml.Node, parents []*yaml.Node) error {
	if r.nodes++; r.nodes > maxConfigNodes {
		return r.errf(n, "more than %d values: not a config file", maxConfigNodes)
	}
	switch n.Kind {
	case yaml.MappingNode:
		ps := append(parents[:len(parents):len(parents)], n)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; seen[k] {
				return r.errf(n.Content[i], "key %q given twice", k)
			} else {
				seen[k] = true
			}
		}
		for i := 1; i < len(n.Content); i += 2 {
			if err := r.resolve(n.Content[i], ps); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for _, it := range n.Content {
			if err := r.resolve(it, parents); err != nil {
				return err
			}
		}
	case yaml.AliasNode:
		return r.resolve(n.Alias, parents)
	case yaml.ScalarNode:
		return r.interpolate(n, parents, 0)
	}
	return nil
}

// interpolate resolves the interpolations of scalar n in place.
func (r *fileReader) interpolate(n *yaml.Node, parents []*yaml.Node, depth int) error {
	if !strings.Contains(n.Value, "${") {
		return nil
	}
	if depth > 32 {
		return r.errf(n, "interpolation %q refers back to itself", n.Value)
	}
	var out strings.Builder
	s := n.Value
	var whole *yaml.Node
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			out.WriteString(s)
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return r.errf(n, "unterminated interpolation in %q", n.Value)
		}
		ref := s[i+2 : i+j]
		t, tparents, err := r.lookup(ref, parents)
		if err != nil {
			return r.errf(n, "interpolation ${%s}: %v", ref, err)
		}
		if t.Kind != yaml.ScalarNode {
			return r.errf(n, "interpolation ${%s} names a %s, not a value", ref, kindName(t))
		}
		if err := r.interpolate(t, tparents, depth+1); err != nil {
			return err
		}
		if i == 0 && i+j+1 == len(n.Value) && s == n.Value {
			whole = t
		}
		out.WriteString(s[:i])
		out.WriteString(t.Value)
		s = s[i+j+1:]
	}
	n.Value = out.String()
	if whole != nil {
		n.Tag = whole.Tag
		if w := r.interp[whole]; w != nil {
			whole = w
		}
		r.interp[n] = whole
	} else {
		n.Tag = "!!str"
	}
	return nil
}

// lookup finds the node an interpolation names: `.a.b` from the innermost
// mapping, each further leading dot one mapping up, `a.b` from the root.
// It returns the node and the mappings enclosing it.
func (r *fileReader) lookup(ref string, parents []*yaml.Node) (*yaml.Node, []*yaml.Node, error) {
	if strings.Contains(ref, ":") {
		return nil, nil, fmt.Errorf("resolvers (such as oc.env) are not supported")
	}
	var cur *yaml.Node
	var path []*yaml.Node
	if strings.HasPrefix(ref, ".") {
		up := len(ref) - len(strings.TrimLeft(ref, "."))
		if up > len(parents) {
			return nil, nil, fmt.Errorf("goes above the top of the file")
		}
		path = parents[:len(parents)-up+1]
		cur = path[len(path)-1]
		ref = ref[up:]
	} else {
		cur, path = r.root, []*yaml.Node{r.root}
	}
	for _, part := range strings.Split(ref, ".") {
		if cur.Kind != yaml.MappingNode {
			return nil, nil, fmt.Errorf("%q is not inside a mapping", part)
		}
		next := get(cur, part)
		if next == nil {
			return nil, nil, fmt.Errorf("no key %q", part)
		}
		cur = deref(next)
		if cur.Kind == yaml.MappingNode {
			path = append(path[:len(path):len(path)], cur)
		}
	}
	return cur, path, nil
}

// get returns the value of key k in mapping m, or nil.
func get(m *yaml.Node, k string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || (n.Tag == "!!str" && n.Style == 0 && n.Value == "None"))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "value"
	}
	return "node"
}

// ResolveModelConfig reads a model configuration for the commands that
// take one (evaluation, import, params): a preset name; a model
// config.json (the model keys at the top, as engine.LoadConfig reads
// it); a training config JSON with the model under "arch"; or a YAML file
// of the reference (an architecture file from its config/arch/, a run's
// all_config.yaml). The model is validated; warnings about keys without
// effect are returned for the caller to show.
//
// It returns the model keys alone, so a model of another architecture
// than the TRM is an error here (its keys would build a TRM): callers
// that build such models use ResolveModelArch.
func ResolveModelConfig(arg string) (engine.Config, []string, error) {
	c, s, w, err := ResolveModelArch(arg)
	if err != nil {
		return c, w, err
	}
	if g, _ := s.Group(); g != "trm" {
		return engine.Config{}, w, fmt.Errorf("%s: a %s model; this command builds the TRM only", arg, g)
	}
	return c, w, nil
}

// ResolveModelArch is ResolveModelConfig with the model's architecture:
// a preset's, the name key of a model config.json (engine.ParseArchConfig)
// or of a reference YAML file (arch=NAME in a defaults list, the `name` of
// an architecture file), trm where none is named.
func ResolveModelArch(arg string) (engine.Config, engine.ArchSettings, []string, error) {
	if p, err := engine.LookupPreset(arg); err == nil {
		return p.Model, p.Arch, nil, nil
	}
	ext := strings.ToLower(filepath.Ext(arg))
	switch ext {
	case ".json":
		b, err := os.ReadFile(arg)
		if err != nil {
			return engine.Config{}, engine.ArchSettings{}, nil, err
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(b, &top) == nil && top["arch"] == nil {
			c, s, err := engine.ParseArchConfig(b, arg)
			return c, s, nil, err
		}
	case ".yaml", ".yml":
	default:
		_, err := engine.LookupPreset(arg)
		return engine.Config{}, engine.ArchSettings{}, nil, fmt.Errorf("%v, and not a .json, .yaml or .yml config file", err)
	}
	c := DefaultConfig()
	if err := LoadConfigFile(&c, arg); err != nil {
		return engine.Config{}, engine.ArchSettings{}, nil, err
	}
	if err := engine.ValidateArch(c.Arch, c.ArchSettings); err != nil {
		return engine.Config{}, engine.ArchSettings{}, nil, fmt.Errorf("%s: %w", arg, err)
	}
	return c.Arch, c.ArchSettings, c.Warnings(), nil
}
