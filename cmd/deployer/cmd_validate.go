package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

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
Every problem is printed as file:line:col: message. With --config FILE (or
DEPLOYER_CONFIG) the host config's allow_step_dirs and limits apply, as on
the daemon; --allow-step-dir overrides its allow_step_dirs.

Exit status: 0 valid, 1 problems found.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			opts := manifest.Options{AllowStepDirs: o.allowStepDirs}
			if g.configPath != "" {
				cfg, err := loadConfig(g.configPath)
				if err != nil {
					return &statusError{Code: exitUsage, Err: err}
				}
				opts.Limits = cfg.ManifestLimits()
				if !cmd.Flags().Changed("allow-step-dir") {
					opts.AllowStepDirs = cfg.AllowStepDirs
				}
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				why := "not a directory"
				switch {
				case errors.Is(err, fs.ErrNotExist):
					why = "no such directory"
				case err != nil:
					why = err.Error()
				}
				return fmt.Errorf("%s: %s (give the checkout of a clusterconfig repository)", dir, why)
			}
			probs := manifest.ValidateDir(dir, opts)
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
				return &statusError{Code: exitError, Err: fmt.Errorf("%s: %s", dir, problemCount(len(probs)))}
			}
			if !f.structured() {
				fmt.Fprintf(out, "%s: valid\n", dir)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&o.allowStepDirs, "allow-step-dir", nil, "host directory whose commands steps may run (default: the host config's allow_step_dirs)")
	return cmd
}
