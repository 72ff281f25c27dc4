package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
)

func newReplayCmd(g *globalOptions) *cobra.Command {
	var req api.ReplayRequest
	var scenario, repo string
	cmd := &cobra.Command{
		Use:   "replay RUN [--instance I] [--from STEP] | replay --scenario FILE [--repo R]",
		Short: "Run again, on the daemon, what a recorded run did for one instance",
		Long: `Run again what run RUN did for one instance, at the daemon's current commit:
its steps from --from (default: the first) to the end of the chain, with the
outputs the earlier steps recorded. RUN is a run of that daemon: with
--remote URL it runs on that host's daemon and RUN is looked up there.

With --scenario FILE ("-": standard input; a regular file of at most 1 MiB)
the daemon runs a scenario file (deployer runs export writes them, on any
host) for its instance, at the daemon's current commit: the manifest's step
of the scenario's name, with the scenario's recorded arguments, dependency
outputs and dry-run setting. It runs only what the manifest there has, and
refuses anything else (exit 2, no run recorded): a step the manifest does
not have (the message names its steps), a run other than that step's run,
a timeout that is negative or more than the step's (none: the step's),
writes: instance for a step that does not write, an instance file that is
not one of the manifest's instance files. The daemon checks that the
instance exists and that the commit the scenario was recorded at is in its
repo (--repo; else the repo the scenario's DEPLOYER_REPO names; else, when
this host has no repo of that name, its only repo, which the run's trigger
detail then says), and records the run
with trigger replay and the scenario's origin (the recording host and run).
DEPLOYER_HOST, _REPO, _COMMIT and _RUN are the daemon's; host variables and
secrets come from its config and env files. The argv is the recorded one:
values templated from {host} or {commit} stay the recording host's.

The instance's open step-failed does not stop a scenario replay; it is
resolved only when the replayed step is the one that failed and the last
of the failed run's chain for the instance. Otherwise it stays open with a
note naming the steps still to run here (printed after the run); deployer
interventions resolve ID --retry runs the whole chain. To move an attempt from host A
to host B:

  deployer runs export RUN --step S --instance I --remote A | deployer replay --scenario - --remote B

Prints the new run.

Exit status: 0 the replay succeeded, 1 it failed or an error, 2 usage (also
a scenario the daemon refuses).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case scenario != "" && len(args) == 1:
				return usageErrorf("replay takes RUN or --scenario FILE, not both")
			case scenario == "" && len(args) == 0:
				return usageErrorf("replay needs RUN (a run of the daemon) or --scenario FILE")
			case scenario != "" && (req.Instance != "" || req.From != ""):
				return usageErrorf("--instance and --from are for replay RUN; a scenario names its instance and step")
			}
			f, err := g.format()
			if err != nil {
				return err
			}
			c, err := remoteClient(g)
			if err != nil {
				return err
			}
			var resp api.SyncResponse
			what := ""
			if scenario != "" {
				sc, err := readScenario(scenario)
				if err != nil {
					return err
				}
				data, err := json.Marshal(sc)
				if err != nil {
					return err
				}
				what = fmt.Sprintf("scenario %s (%s of %s)", scenario, sc.Step, sc.Instance.Name)
				resp, err = c.ReplayScenario(cmd.Context(), api.ScenarioReplayRequest{Repo: repo, Scenario: data, Wait: true})
				if err = replayError(err, ""); err != nil {
					return err
				}
			} else {
				id, err := parseRunID(args[0])
				if err != nil {
					return err
				}
				what = "run " + args[0]
				req.Wait = true
				resp, err = c.Replay(cmd.Context(), id, req)
				hint := ""
				if g.remote != "" {
					hint = fmt.Sprintf(" (run %d is looked up on %s; to replay another host's run there: deployer runs export %d --step S --instance I --remote HOST | deployer replay --scenario - --remote %s)", id, g.remote, id, g.remote)
				}
				if err = replayError(err, hint); err != nil {
					return err
				}
			}
			if resp.Run == nil {
				return fmt.Errorf("replay of %s: no run was recorded", what)
			}
			if f.structured() {
				if err := f.print(cmd.OutOrStdout(), resp.Run); err != nil {
					return err
				}
			} else {
				printRun(cmd.OutOrStdout(), *resp.Run, true)
			}
			if scenario != "" {
				notePartialReplay(cmd.Context(), c, cmd.ErrOrStderr(), *resp.Run)
			}
			return runExit(resp.Run.Status)
		},
	}
	cmd.Flags().StringVar(&req.Instance, "instance", "", "the instance (needed when the run ran several)")
	cmd.Flags().StringVar(&req.From, "from", "", "start from this step, with the recorded outputs of the ones before")
	cmd.Flags().StringVar(&scenario, "scenario", "", "run this scenario file (- for standard input) on the daemon")
	cmd.Flags().StringVar(&repo, "repo", "", "with --scenario: the daemon's repo (default the scenario's DEPLOYER_REPO)")
	return cmd
}

// notePartialReplay tells, after a scenario replay, that the instance's
// step-failed stays open because the replay did not finish its chain (the
// daemon notes it on the intervention).
func notePartialReplay(ctx context.Context, c *api.Client, w io.Writer, run api.Run) {
	ivs, err := c.Interventions(ctx, false)
	if err != nil {
		return
	}
	prefix := fmt.Sprintf("replay run %d ", run.ID)
	for _, iv := range ivs {
		if note := iv.Evidence.Extra["replayed"]; iv.Kind == "step-failed" && iv.State != "resolved" && strings.HasPrefix(note, prefix) {
			fmt.Fprintf(w, "note: step-failed #%d of %s stays open: %s; to run the whole chain: deployer interventions resolve %d --retry\n", iv.ID, iv.Instance, note, iv.ID)
		}
	}
}

// replayError makes the daemon's refusals usage errors; hint is added to a
// run that was not found.
func replayError(err error, hint string) error {
	if err == nil {
		return nil
	}
	switch api.ErrorKind(err) {
	case api.KindInvalid:
		return &statusError{Code: exitUsage, Err: err}
	case api.KindNotFound:
		return &statusError{Code: exitUsage, Err: fmt.Errorf("%w%s", err, hint)}
	}
	return err
}

// remoteClient is g.client, and also takes --remote unix:///path/to/socket
// (the form fleet host lists use), so that scenarios move between daemons
// on one machine as between hosts.
func remoteClient(g *globalOptions) (*api.Client, error) {
	if path, ok := strings.CutPrefix(g.remote, "unix://"); ok {
		if !strings.HasPrefix(path, "/") {
			return nil, usageErrorf("--remote %q: want unix:///absolute/path/to/socket (three slashes)", g.remote)
		}
		return api.NewUnixClient(path), nil
	}
	return g.client()
}
