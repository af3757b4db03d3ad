package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/tinyrecursive/trm/device"
	"github.com/tinyrecursive/trm/device/nccl"
	"github.com/tinyrecursive/trm/device/rendezvous"
)

func init() {
	register(&command{
		name:    "devices",
		summary: "list the GPUs (CUDA, NVML, topology), NCCL and the CPU this process can use",
		usage:   "",
		run:     runDevices,
	})
}

// runDevices prints what --device can select: the CUDA devices this
// process sees (after CUDA_VISIBLE_DEVICES) with NVML's description and
// link matrix, whether NCCL (needed for several GPUs) was found, the
// multi-process environment if one is set, and the CPU.
func runDevices(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: trm-train devices\n\nLists the GPUs this process can use (--device cuda, cuda:N, cuda:0,2),\n"+
			"how they are linked, whether NCCL was found, and the CPU.\n")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErrorf("devices takes no arguments")
	}
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
