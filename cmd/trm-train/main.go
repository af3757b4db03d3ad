// Command trm-train trains, evaluates and inspects Tiny Recursive Models.
//
// It is one binary with subcommands (params, data, train, eval, solve,
// plot, devices, ...). Each subcommand lives in its own file and registers
// itself in init, so adding one never touches this dispatcher.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand of trm-train.
type command struct {
	name    string
	summary string // one line for the usage listing
	usage   string // argument synopsis, e.g. "<preset|config.json>"
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]*command{}

// register adds a subcommand; it panics on a duplicate name because that is
// a programming error caught by every test run.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("trm-train: duplicate command " + c.name)
	}
	commands[c.name] = c
}

// errUsage marks an error caused by bad arguments: the dispatcher prints the
// command's usage after it and exits with status 2.
var errUsage = errors.New("usage")

// usageErrorf returns an error wrapping errUsage with a message.
func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultCommand is what a bare `trm-train` (or one starting with a flag)
// runs; the training issue makes it `train`.
const defaultCommand = "train"

// run dispatches args to a subcommand and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	name := defaultCommand
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if name == "help" || (len(args) > 0 && (args[0] == "-h" || args[0] == "--help") && name == defaultCommand && commands[name] == nil) {
		printUsage(stdout)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "trm-train: unknown command %q\n\n", name)
		printUsage(stderr)
		return 2
	}
	err := c.run(args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "trm-train %s: %v\nusage: trm-train %s %s\n", name, strings.TrimPrefix(err.Error(), errUsage.Error()+": "), name, c.usage)
		return 2
	default:
		fmt.Fprintf(stderr, "trm-train %s: %v\n", name, err)
		return 1
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "trm-train: train and inspect Tiny Recursive Models")
	fmt.Fprintln(w, "\nusage: trm-train <command> [arguments]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		fmt.Fprintf(w, "  %-10s %s\n", n, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'trm-train <command> -h' for a command's flags.")
}
