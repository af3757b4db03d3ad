package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/device"
	"github.com/tinyrecursive/trm/device/nccl"
	"github.com/tinyrecursive/trm/device/rendezvous"
)

func init() { register(newDevicesCmd) }

func newDevicesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "devices",
		Short: "list the GPUs (CUDA, NVML, topology), NCCL and the CPU this process can use",
		Long: `Lists the GPUs this process can use (--device cuda, cuda:N, cuda:0,2), how they
are linked, whether NCCL was found, the multi-process environment if one is
set, and the CPU.` + envHelp("TRM_NCCL", "RANK, WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR, MASTER_PORT", "TRM_MASTER_PORT"),
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runDevices(c.OutOrStdout())
		},
	}
}

// runDevices prints what --device can select: the CUDA devices this
// process sees (after CUDA_VISIBLE_DEVICES) with NVML's description and
// link matrix, whether NCCL (needed for several GPUs) was found, the
// multi-process environment if one is set, and the CPU.
func runDevices(stdout io.Writer) error {
	inv := device.Discover()
	fmt.Fprint(stdout, inv.Describe())
	if l, err := nccl.Open(); err != nil {
		fmt.Fprintf(stdout, "\nNCCL: not found (only needed for several GPUs)\n")
	} else {
		fmt.Fprintf(stdout, "\nNCCL: %s at %s\n", l.VersionString(), l.Path)
	}
	switch env, ok, err := rendezvous.FromEnv(); {
	case err != nil:
		fmt.Fprintf(stdout, "multi-process launch: %v\n", err)
	case ok:
		fmt.Fprintf(stdout, "multi-process launch: %s\n", env)
	}
	return nil
}
