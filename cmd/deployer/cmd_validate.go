package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/manifest"
)

type validateOptions struct{ allowStepDirs []string }

func newValidateCmd(g *globalOptions) *cobra.Command {
	o := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Validate a checkout's deployer.xml and instance files offline",
		Long: `Validate DIR's deployer.xml and every instance file, without a daemon.
Every problem is printed as file:line:col: message.

Exit status: 0 valid, 1 problems found.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			probs := manifest.ValidateDir(dir, manifest.Options{AllowStepDirs: o.allowStepDirs})
			f, err := g.format()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.structured() {
				if probs == nil {
					probs = []manifest.Problem{}
				}
				if err := f.print(out, map[string]any{"dir": dir, "problems": probs}); err != nil {
					return err
				}
			} else {
				for _, p := range probs {
					fmt.Fprintln(out, p.Error())
				}
			}
			if len(probs) > 0 {
				return &statusError{Code: exitError, Err: fmt.Errorf("%s: %d problems", dir, len(probs))}
			}
			if !f.structured() {
				fmt.Fprintf(out, "%s: valid\n", dir)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&o.allowStepDirs, "allow-step-dir", nil, "host directory whose commands steps may run (as allow_step_dirs in the config)")
	return cmd
}
