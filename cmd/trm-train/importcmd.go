package main

import (
	"flag"
	"fmt"
	"io"
	"sort"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/internal/torchpt"
)

func init() {
	register(&command{
		name:    "import",
		summary: "convert a reference PyTorch checkpoint (.pt) to safetensors",
		usage:   "[--arch PRESET|config.json] model.pt out.safetensors",
		run:     runImport,
	})
}

func runImport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	arch := fs.String("arch", "", "check every key and shape against this architecture (a preset or model config JSON)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: trm-train import [--arch PRESET|config.json] model.pt out.safetensors\n\n"+
			"Reads a state dict saved by the reference with torch.save (zip or legacy format;\n"+
			"keys may carry the _orig_mod.model. or model. prefix; any dtype or strides) and\n"+
			"writes float32 safetensors under the model's own keys, which `trm-train eval\n"+
			"--model` and `trm-train train --init` read.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageErrorf("want the input .pt and the output .safetensors, got %d arguments", fs.NArg())
	}
	in, out := fs.Arg(0), fs.Arg(1)
	raw, _, err := torchpt.Load(in)
	if err != nil {
		return err
	}
	ts := map[string]safetensors.Tensor{}
	for k, t := range raw {
		ck := torchpt.CanonicalKey(k)
		if _, dup := ts[ck]; dup {
			return fmt.Errorf("%s: keys %q and another both map to %q", in, k, ck)
		}
		v, err := t.Float32()
		if err != nil {
			return fmt.Errorf("%s: key %s: %v", in, k, err)
		}
		ts[ck] = safetensors.FromFloat32(t.Shape, v)
	}
	if *arch != "" {
		cfg, err := engine.ResolveConfig(*arch)
		if err != nil {
			return err
		}
		if puz, ok := ts[engine.KeyPuzzleEmb]; ok && len(puz.Shape) == 2 {
			cfg.NumPuzzleIdentifiers = puz.Shape[0] // the table's rows come from its dataset
		}
		if _, err := engine.StateFromTensors(ts, engine.NewLayout(cfg), in); err != nil {
			return err
		}
	}
	if err := safetensors.WriteFile(out, ts, map[string]string{"format": "pt", "source": in}); err != nil {
		return err
	}
	keys := make([]string, 0, len(ts))
	n := 0
	for k, t := range ts {
		keys = append(keys, k)
		n += t.NumElements()
	}
	sort.Strings(keys)
	fmt.Fprintf(stdout, "imported %d tensors (%d values) from %s into %s\n", len(keys), n, in, out)
	return nil
}
