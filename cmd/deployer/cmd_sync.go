package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer"
)

type syncOptions struct{ wait bool }

func newSyncCmd(g *globalOptions) *cobra.Command {
	o := &syncOptions{}
	cmd := &cobra.Command{
		Use:   "sync NAME",
		Short: "Trigger a run of repo NAME now",
		Long: `Trigger a run of repo NAME now: fetch, fast-forward and run the steps of the
instances that changed. With --wait, print the run's outcome.

Exit status: 0 queued (or, with --wait, the run succeeded), 1 error or failed
run, 3 the run was stopped by an intervention.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, c, err := g.formatClient()
			if err != nil {
				return err
			}
			resp, err := c.Sync(cmd.Context(), args[0], o.wait)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.structured() {
				if err := f.print(out, resp); err != nil {
					return err
				}
			} else if resp.Run == nil {
				fmt.Fprintf(out, "queued a run of %s\n", resp.Repo)
			} else {
				printRun(out, *resp.Run, false)
			}
			if resp.Run != nil {
				return runExit(resp.Run.Status)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait for the run and print its outcome")
	return cmd
}

// runExit maps a run status to the command's exit status.
func runExit(status string) error {
	switch deployer.RunStatus(status) {
	case deployer.RunSucceeded:
		return nil
	case deployer.RunBlocked, deployer.RunInvalid:
		return &statusError{Code: exitIntervention, Err: fmt.Errorf("run %s: see deployer runs show", status)}
	default:
		return &statusError{Code: exitError, Err: fmt.Errorf("run %s", status)}
	}
}
