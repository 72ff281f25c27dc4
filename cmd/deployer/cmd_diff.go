package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
)

func newDiffCmd(g *globalOptions) *cobra.Command {
	var instance string
	cmd := &cobra.Command{
		Use:   "diff RUN",
		Short: "Show what a run wrote back to git: each instance file's edits, one line each",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.RunDiff(cmd.Context(), id, instance)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.structured() {
				return f.print(out, d)
			}
			printRunDiff(out, d)
			return nil
		},
	}
	cmd.Flags().StringVar(&instance, "instance", "", "only this instance's write-backs")
	return cmd
}

func printRunDiff(w io.Writer, d api.RunDiff) {
	if len(d.WriteBacks) == 0 {
		printf(w, "run #%d of %s wrote nothing back\n", d.Run, d.Repo)
		return
	}
	for _, wb := range d.WriteBacks {
		printf(w, "--- %s (%s) by %s: %s %s\n", wb.File, wb.Instance, wb.Reason, wb.State, shortID(wb.Commit))
		for _, l := range wb.Diff {
			printf(w, "    %s\n", l)
		}
	}
}
