package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/internal/safetensors"
	"github.com/tinyrecursive/trm/internal/torchpt"
)

func init() { register(newImportCmd) }

// importFlags are the flags of import.
type importFlags struct {
	modelConfig, maxMemory string
	expandedViews          bool
}

func newImportCmd() *cobra.Command {
	var f importFlags
	c := &cobra.Command{
		Use:   "import [--model-config PRESET|FILE] [--max-memory SIZE] MODEL.pt OUT.safetensors",
		Short: "convert a reference PyTorch checkpoint (.pt) to safetensors",
		Long: `Reads a state dict saved by the reference with torch.save (zip or legacy format;
keys may carry the _orig_mod.model. or model. prefix; any dtype or strides) and
writes float32 safetensors under the model's own keys, which trm-train eval
--model and trm-train train --init read. With --model-config every key and
shape is checked against that architecture. (train's load_checkpoint=FILE.pt
imports the same way on the fly.)

Every size the file declares is checked against --max-memory and the file's
own size before anything is allocated, so a damaged or hostile file fails
with an error instead of exhausting memory. SIGINT or SIGTERM stops the
import within seconds, removes its temporary file, leaves an existing
OUT.safetensors as it was, and exits 1.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runImport(c.Context(), c.OutOrStdout(), c.ErrOrStderr(), &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.modelConfig, "model-config", "", "check every key and shape against this architecture (a preset, a model config JSON or a reference YAML)")
	fl.StringVar(&f.maxMemory, "max-memory", "", "most memory the load may allocate for tensor data, e.g. 32GiB (default 16GiB: twice the largest reference checkpoints)")
	fl.BoolVar(&f.expandedViews, "allow-expanded-views", false, "accept tensors that repeat their storage (zero strides, torch.expand): they can be any number of times larger than the file")
	return c
}

// torchOptions turns the import flags into the loader's bounds.
func (f *importFlags) torchOptions() (torchpt.Options, error) {
	o := torchpt.Options{AllowExpandedViews: f.expandedViews}
	if f.maxMemory != "" {
		n, err := parseBytes(f.maxMemory)
		if err != nil {
			return o, usageErrorf("--max-memory: %v", err)
		}
		o.MaxBytes = n
	}
	return o, nil
}

// parseBytes reads a size: a number of bytes, optionally with a unit
// K, M, G or T (powers of 1024, written K, KB, KiB alike).
func parseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if i := strings.IndexAny(t, "KMGT"); i >= 0 && i == len(t)-1 {
		mult = int64(1) << (10 * (1 + strings.IndexByte("KMGT", t[i])))
		t = t[:i]
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || n <= 0 || n*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("%q is not a size (want e.g. 32GiB, 512M or a number of bytes)", s)
	}
	return int64(n * float64(mult)), nil
}

func runImport(ctx context.Context, stdout, stderr io.Writer, f *importFlags, args []string) error {
	if len(args) != 2 {
		return usageErrorf("want the input .pt and the output .safetensors, got %d arguments", len(args))
	}
	o, err := f.torchOptions()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	in, out := args[0], args[1]
	ts, err := importTorch(ctx, in, o)
	if err != nil {
		return err
	}
	if f.modelConfig != "" {
		cfg, arch, err := resolveModelConfig(f.modelConfig, stderr)
		if err != nil {
			return err
		}
		if puz, ok := ts[engine.KeyPuzzleEmb]; ok && len(puz.Shape) == 2 {
			cfg.NumPuzzleIdentifiers = puz.Shape[0] // the table's rows come from its dataset
		}
		l, err := engine.NewArchLayout(cfg, arch)
		if err != nil {
			return err
		}
		if _, err := engine.StateFromTensors(ts, l, in); err != nil {
			return err
		}
	}
	if err := safetensors.WriteFileContext(ctx, out, ts, map[string]string{"format": "pt", "source": in}); err != nil {
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

// importTorch reads a reference state dict (.pt) as float32 tensors under
// the model's own keys: the one path of import and of train's
// load_checkpoint. It stops, with an error wrapping ctx.Err(), when ctx
// ends.
func importTorch(ctx context.Context, in string, o torchpt.Options) (map[string]safetensors.Tensor, error) {
	raw, _, err := torchpt.LoadContext(ctx, in, o)
	if err != nil {
		return nil, err
	}
	ts := map[string]safetensors.Tensor{}
	for k, t := range raw {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: converting to float32 interrupted: %w", in, err)
		}
		ck := torchpt.CanonicalKey(k)
		if _, dup := ts[ck]; dup {
			return nil, fmt.Errorf("%s: keys %q and another both map to %q", in, k, ck)
		}
		v, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("%s: key %s: %v", in, k, err)
		}
		ts[ck] = safetensors.FromFloat32(t.Shape, v)
	}
	return ts, nil
}
