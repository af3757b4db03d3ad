package main

import (
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/internal/torchpt"
)

func init() { register(newImportCmd) }

func newImportCmd() *cobra.Command {
	var modelConfig string
	c := &cobra.Command{
		Use:   "import [--model-config PRESET|FILE] MODEL.pt OUT.safetensors",
		Short: "convert a reference PyTorch checkpoint (.pt) to safetensors",
		Long: `Reads a state dict saved by the reference with torch.save (zip or legacy format;
keys may carry the _orig_mod.model. or model. prefix; any dtype or strides) and
writes float32 safetensors under the model's own keys, which trm-train eval
--model and trm-train train --init read. With --model-config every key and
shape is checked against that architecture.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runImport(c.OutOrStdout(), c.ErrOrStderr(), modelConfig, args)
		},
	}
	c.Flags().StringVar(&modelConfig, "model-config", "", "check every key and shape against this architecture (a preset, a model config JSON or a reference YAML)")
	return c
}

func runImport(stdout, stderr io.Writer, modelConfig string, args []string) error {
	if len(args) != 2 {
		return usageErrorf("want the input .pt and the output .safetensors, got %d arguments", len(args))
	}
	in, out := args[0], args[1]
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
	if modelConfig != "" {
		cfg, err := resolveModelConfig(modelConfig, stderr)
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
