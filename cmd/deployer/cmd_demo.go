package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/internal/demo"
)

type demoOptions struct {
	keep    bool
	verbose bool
	fleet   int // clusters for the fleet story; 0 tells the one-host story
}

func newDemoCmd(g *globalOptions) *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Tell the whole story on throwaway local repositories (a smoke test too)",
		Long: `Create a throwaway clusterconfig remote, start a daemon on it in this process,
play an operator pushing changes, and show what the daemon did at each act.
Needs only git installed. Everything lives in a temporary directory that is
removed at the end (keep it with --keep).

Exit status: 0 every act ended as described, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			do := demo.Options{Out: cmd.OutOrStdout(), Daemon: demoDaemon, Print: demoPrinter{}, Keep: o.keep, Log: zerolog.Nop()}
			if o.fleet > 0 {
				if o.fleet < demo.MinFleetClusters {
					return usageErrorf("--fleet %d: want at least %d clusters", o.fleet, demo.MinFleetClusters)
				}
				return demo.RunFleet(cmd.Context(), do, o.fleet)
			}
			if o.verbose {
				do.Log = newLogger(LogConfig{Level: "debug", Format: "console"}, os.Stderr)
			}
			return demo.Run(cmd.Context(), do)
		},
	}
	cmd.Flags().BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	cmd.Flags().BoolVar(&o.verbose, "verbose", false, "show the daemon's log")
	cmd.Flags().IntVar(&o.fleet, "fleet", 0, "tell the fleet story instead: N clusters (30 when bare; write --fleet=N), one daemon each, one fleet deployment in waves")
	cmd.Flags().Lookup("fleet").NoOptDefVal = "30"
	return cmd
}

// demoDaemon gives the demo daemons wired as `deployer daemon` wires them.
func demoDaemon(name string, config []byte) (func(context.Context, zerolog.Logger) error, error) {
	cfg, err := parseConfig(name, config)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, log zerolog.Logger) error { return runDaemon(ctx, cfg, name, log) }, nil
}

// demoPrinter prints the demo's story as the CLI prints.
type demoPrinter struct{}

func (demoPrinter) Run(w io.Writer, r api.Run)                    { printRun(w, r, false) }
func (demoPrinter) Intervention(w io.Writer, iv api.Intervention) { printIntervention(w, iv) }
func (demoPrinter) Deployment(w io.Writer, d api.Deployment) error {
	return printDeployment(w, &globalOptions{output: "table"}, d, "")
}
func (demoPrinter) FleetStatus(w io.Writer, s fleet.Summary) error {
	return printFleetStatus(w, s, false)
}
func (demoPrinter) Triggers(ts []api.Trigger) string            { return triggerKinds(ts) }
func (demoPrinter) Instances(ins []api.InstanceOutcome) string  { return instanceSummary(ins) }
func (demoPrinter) Counts(counts map[string]int) string         { return countSummary(counts) }
func (demoPrinter) HostCounts(c map[fleet.HostState]int) string { return fleetHostSummary(c) }
func (demoPrinter) History(w io.Writer, h api.InstanceHistory)  { printHistory(w, h) }

// Plan prints `deployer plan DIR REV`.
func (demoPrinter) Plan(w io.Writer, dir, rev string) error {
	res, err := makePlan(dir, rev, &planOptions{})
	if err != nil {
		return err
	}
	printPlan(w, res)
	if len(res.Problems) > 0 {
		return fmt.Errorf("plan of %s: %s", shortID(res.Commit), problemCount(len(res.Problems)))
	}
	return nil
}

// Reproduce plays `deployer runs export RUN --instance I --step S -O FILE`
// then `deployer step run DIR --scenario FILE`: the attempt run recorded,
// run again in the checkout dir with exactly its inputs. It returns the
// local attempt's status (the step's failure is no error here).
func (demoPrinter) Reproduce(ctx context.Context, w io.Writer, run api.Run, instance, step, dir string) (string, error) {
	file := filepath.Join(dir, "..", fmt.Sprintf("run-%d-%s-%s.json", run.ID, instance, step))
	if err := runRunsExport(&runsExportOptions{step: step, instance: instance, outFile: file}, run, w); err != nil {
		return "", err
	}
	o := &stepRunOptions{dir: dir, scenario: file, notes: w, stream: w, format: outputFormat("table")}
	err := runStepRun(ctx, o, w)
	var se *statusError
	switch {
	case err == nil:
		return string(executor.StatusSucceeded), nil
	case errors.As(err, &se) && se.Code == exitError:
		return "failed", nil
	}
	return "", err
}
