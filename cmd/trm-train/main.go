// Command trm-train trains, evaluates and inspects Tiny Recursive Models.
//
// It is one binary with subcommands (params, data, train, eval, solve,
// plot, devices, version, ...) on github.com/spf13/cobra and its POSIX/GNU
// flag package github.com/spf13/pflag. The reasons for cobra: flags may
// come anywhere among the positional arguments and the reference's
// key=value overrides (Go's flag package stops at the first positional
// argument, which broke `train --preset P data_paths=[d] --out DIR`), it
// is the command-line library of Go's cluster tools (kubectl, helm,
// docker), so its help and flag conventions are the ones operators know,
// and it brings help topics and shell completion without code of our own.
//
// Each subcommand lives in its own file and registers a constructor in
// init, so adding one never touches this dispatcher. The command tree is
// built afresh for every run, so in-process tests never see flag values
// left over from an earlier call.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// builders holds the constructors of the subcommands, in registration
// order (cobra sorts them for the listing).
var builders []func() *cobra.Command

// register adds a subcommand constructor.
func register(b func() *cobra.Command) { builders = append(builders, b) }

// errUsage marks an error caused by bad arguments: the dispatcher prints the
// command's usage line after it and exits with status 2.
var errUsage = errors.New("usage")

// usageErrorf returns an error wrapping errUsage with a message.
func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// Exit statuses, documented in the root help and README.md.
const (
	exitOK    = 0 // success, including a training run stopped by SIGINT/SIGTERM after its checkpoint
	exitError = 1 // the command failed (bad data, a missing file, a failed step, ...)
	exitUsage = 2 // bad arguments: unknown command, flag or key, missing argument
	// 3 is the CUDA build's: no CUDA GPU visible at start-up (cuda/probe).
)

const rootLong = `trm-train trains, evaluates and inspects Tiny Recursive Models (TRM) in one
binary: the reference's recipes as presets, its key=value overrides, its
dataset layout and checkpoint keys.

With no arguments it trains the built-in demo (a small 4x4 Sudoku set, on
the CPU, about half a minute); arguments that start with a flag go to
train, e.g. trm-train --preset sudoku-mlp data_paths=[data/sudoku].

Flags may come anywhere among the arguments (GNU style); key=value
arguments are overrides of the training config (see trm-train train -h).

Exit status:
  0  success (a training run stopped by SIGINT/SIGTERM checkpoints and exits 0)
  1  the command failed
  2  bad arguments (unknown command, flag or key; a missing argument)
  3  the CUDA build found no CUDA GPU at start-up (TRM_CUDA_PROBE=off skips
     the check)`

// newRoot builds the command tree; output goes to stdout and stderr.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "trm-train",
		Short: "train and inspect Tiny Recursive Models",
		Long:  rootLong,
		Example: `  trm-train data sudoku --size 4 --generate 500 --generate-test 100 --out data/sudoku4
  trm-train train --preset sudoku-mlp data_paths=[data/sudoku4] --out runs/sudoku4 --dry-run
  trm-train help train`,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if strings.Contains(err.Error(), "--arch") {
			return usageErrorf("%v (the flag is now --model-config; arch=NAME is the reference's architecture group)", err)
		}
		return usageErrorf("%v", err)
	})
	for _, b := range builders {
		root.AddCommand(b())
	}
	// cobra adds these when it executes; adding them now completes the
	// tree for the tests that walk it.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return root
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultCommand is what a bare `trm-train`, or one whose first argument
// is a flag, runs: train (with no arguments at all, the demo).
const defaultCommand = "train"

// run dispatches args to a subcommand and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && !rootFlag(args[0])) {
		args = append([]string{defaultCommand}, args...)
	}
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	c, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	if c == nil {
		c = root
	}
	msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
	switch {
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "%s: %s\nusage: %s\nRun '%s --help' for more.\n", c.CommandPath(), msg, c.UseLine(), c.CommandPath())
		return exitUsage
	case strings.HasPrefix(msg, "unknown command "), strings.HasPrefix(msg, "unknown flag"), strings.HasPrefix(msg, "unknown shorthand flag"):
		// cobra's own argument errors (an unknown command is found before
		// any flag error function runs).
		fmt.Fprintf(stderr, "%s: %s\nRun '%s --help' for the commands.\n", root.Name(), msg, root.Name())
		return exitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", c.CommandPath(), err)
		return exitError
	}
}

// rootFlag reports whether a leading flag belongs to the root command
// (help and version) rather than to the default command.
func rootFlag(a string) bool {
	switch a {
	case "-h", "--help", "-v", "--version":
		return true
	}
	return false
}

// noArgs is the Args check of commands that take no positional argument.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected arguments %v", args)
	}
	return nil
}

// envHelp formats the environment variables a command reads, for the end
// of its long help: name, then meaning.
func envHelp(vars ...string) string {
	var b strings.Builder
	b.WriteString("\n\nEnvironment:")
	for _, v := range vars {
		d, ok := envDocs[v]
		if !ok {
			panic("trm-train: undocumented environment variable " + v)
		}
		fmt.Fprintf(&b, "\n  %-25s %s", v, d)
	}
	return b.String()
}

// envDocs documents every TRM_* variable the tree reads (and the launch
// variables of a multi-process job), once; commands list the ones that
// affect them. TestEnvDocumented checks the tree against this table.
var envDocs = map[string]string{
	"TRM_METRICS_ADDR":         "default of --metrics-addr; the no-argument demo reads it too",
	"TRM_CPU_GEMM":             "fp32 (default) or bf16: bf16 GEMM operands on CPUs with AVX512_BF16",
	"TRM_CPU_ACTIVATIONS":      "bf16 (the default with TRM_CPU_GEMM=bf16) or fp32: activations stored in bf16 between ops, as the reference's bf16 training, or in fp32 with bf16 GEMM operands only",
	"TRM_CUDA_GEMM":            "bf16 (default), tf32 or fp32: the CUDA GEMMs' operand precision",
	"TRM_CUDA_GRAPHS":          "0 turns off CUDA-graph replay of the training step",
	"TRM_CUDA_FATBIN":          "load the CUDA kernels from this fatbin instead of the built-in one",
	"TRM_CUDA_PROBE":           "off: the CUDA build starts without a visible GPU instead of exiting 3",
	"TRM_CUBLAS":               "path of libcublas.so.N (default: searched on LD_LIBRARY_PATH, /usr/local/cuda*)",
	"TRM_NCCL":                 "path of libnccl.so.2 (default: searched like cuBLAS)",
	"TRM_RENDEZVOUS_TIMEOUT":   "how long the ranks of a multi-process job wait for each other (default 5m)",
	"TRM_MASTER_PORT":          "rendezvous port, replacing MASTER_PORT (under torchrun, whose agent holds MASTER_PORT)",
	"TRM_RDZV_SECRET":          "random secret (at least 16 characters, same on every rank) that a multi-process job's ranks prove at the rendezvous; required unless TRM_RDZV_INSECURE=1",
	"TRM_RDZV_INSECURE":        "1: run a multi-process job without TRM_RDZV_SECRET (any process that reaches MASTER_PORT can join; trusted networks only)",
	"TRM_RDZV_BIND":            "address rank 0 listens on instead of MASTER_ADDR's (e.g. behind NAT; 0.0.0.0 = every interface)",
	"RANK, WORLD_SIZE":         "this process's rank and the job's size (torchrun style; SLURM_PROCID, SLURM_NTASKS under srun)",
	"LOCAL_RANK":               "GPU of this rank on its node (SLURM_LOCALID under srun)",
	"MASTER_ADDR, MASTER_PORT": "host and port of rank 0's rendezvous",
}

// wrapWords joins words into lines of at most width columns, each line
// starting with indent.
func wrapWords(words []string, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, w := range words {
		if len(line) > len(indent) && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}
