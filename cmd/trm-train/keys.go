package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/trainer"
)

func init() { register(newKeysCmd) }

func newKeysCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "keys [--json]",
		Short: "list every training key (default, unit, upper limit, meaning) and the presets",
		Long: `Lists every key that train and eval accept as key=value or in a --config
file: its default, its unit, its upper limit (sizes past it are refused
before anything is allocated) and what it means; then the presets
(--preset NAME) with what each one trains. The reference's forms (arch=NAME,
checkpoint_path) are listed beside the keys, and its keys that have no
effect here (accepted with a warning) with the reason.

--json prints the same as one JSON object {"keys": [...], "presets": [...]}
for scripts.`,
		Example: `  trm-train keys
  trm-train keys --json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runKeys(c.OutOrStdout(), asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of tables")
	return c
}

// keyJSON and presetJSON are the --json forms of a key and a preset.
type keyJSON struct {
	Key     string `json:"key"`
	Default string `json:"default"`
	Unit    string `json:"unit,omitempty"`
	Max     string `json:"max,omitempty"`
	Meaning string `json:"meaning"`
}

type presetJSON struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

func runKeys(w io.Writer, asJSON bool) error {
	docs := trainer.KeyDocs()
	presets := trainer.Presets()
	if asJSON {
		var out struct {
			Keys    []keyJSON    `json:"keys"`
			Presets []presetJSON `json:"presets"`
		}
		for _, d := range docs {
			out.Keys = append(out.Keys, keyJSON(d))
		}
		for _, p := range presets {
			out.Presets = append(out.Presets, presetJSON(p))
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tDEFAULT\tUNIT\tMAX\tMEANING")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, d := range docs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Key, dash(d.Default), dash(d.Unit), dash(d.Max), d.Meaning)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nPresets (--preset NAME):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range presets {
		fmt.Fprintf(tw, "  %s\t%s\n", p.Name, p.Description)
	}
	return tw.Flush()
}
