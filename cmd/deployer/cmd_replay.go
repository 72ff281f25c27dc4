package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
)

func newReplayCmd(g *globalOptions) *cobra.Command {
	var req api.ReplayRequest
	cmd := &cobra.Command{
		Use:   "replay RUN [--instance I] [--from STEP]",
		Short: "Run again, on the daemon, what a recorded run did for one instance",
		Long: `Run again what run RUN did for one instance, at the daemon's current commit:
its steps from --from (default: the first) to the end of the chain, with the
outputs the earlier steps recorded. With --remote URL it runs on that host's
daemon. Prints the new run.

Exit status: 0 the replay succeeded, 1 it failed or an error, 2 usage.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return usageErrorf("run id %q: want a number (see deployer runs)", args[0])
			}
			f, c, err := g.formatClient()
			if err != nil {
				return err
			}
			req.Wait = true
			resp, err := c.Replay(cmd.Context(), id, req)
			if err != nil {
				if api.ErrorKind(err) == api.KindInvalid {
					return &statusError{Code: exitUsage, Err: err}
				}
				return err
			}
			if resp.Run == nil {
				return fmt.Errorf("replay of run %d: no run was recorded", id)
			}
			if f.structured() {
				if err := f.print(cmd.OutOrStdout(), resp.Run); err != nil {
					return err
				}
			} else {
				printRun(cmd.OutOrStdout(), *resp.Run, true)
			}
			return runExit(resp.Run.Status)
		},
	}
	cmd.Flags().StringVar(&req.Instance, "instance", "", "the instance (needed when the run ran several)")
	cmd.Flags().StringVar(&req.From, "from", "", "start from this step, with the recorded outputs of the ones before")
	return cmd
}
