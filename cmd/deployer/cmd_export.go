package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

// runsExportOptions are the inputs of `deployer runs export`.
type runsExportOptions struct {
	step     string
	instance string
	attempt  int
	outFile  string
	// yaml writes YAML (-o yaml, or -O FILE.yaml); else JSON.
	yaml bool
}

func newRunsExportCmd(g *globalOptions) *cobra.Command {
	o := &runsExportOptions{}
	cmd := &cobra.Command{
		Use:   "export ID --step S [--instance I] [--attempt N] [-O FILE]",
		Short: "Write a recorded step attempt as a scenario file",
		Long: `Write one recorded attempt of step S in run ID as a scenario file (JSON;
YAML with -o yaml or -O FILE.yaml),
to reproduce it with deployer step run DIR --scenario FILE, or on another
host's daemon with deployer replay --scenario FILE --remote URL: its argv,
DEPLOYER_* environment, host variable names, secret names (never values),
the outputs it received from earlier steps, the step's timeout and writes
policy, the commit and the instance file's git blob id, and the host
config's step_env and allow_step_dirs that applied. --instance is needed
when the step ran for more than one instance; --attempt defaults to the
last one. Without -O the scenario goes to standard output:

  deployer runs export RUN --step S --instance I --remote A | deployer replay --scenario - --remote B

Exit status: 0 written, 1 error, 2 usage (no such step, instance or
attempt, or the step did not run: skipped or not started).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			if o.step == "" {
				return usageErrorf("runs export needs --step")
			}
			f, err := g.format()
			if err != nil {
				return err
			}
			ext := strings.ToLower(filepath.Ext(o.outFile))
			o.yaml = f == formatYAML || (!cmd.Flags().Changed("output") && (ext == ".yaml" || ext == ".yml"))
			c, err := remoteClient(g)
			if err != nil {
				return err
			}
			run, err := c.Run(cmd.Context(), id)
			if err != nil {
				return err
			}
			return runRunsExport(o, run, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.step, "step", "", "the step to export")
	f.StringVar(&o.instance, "instance", "", "the instance whose attempt to export")
	f.IntVar(&o.attempt, "attempt", 0, "the attempt to export (default the last)")
	f.StringVarP(&o.outFile, "output-file", "O", "", "write the scenario to FILE instead of stdout")
	return cmd
}

// runRunsExport writes the chosen attempt of run as a scenario to o.outFile,
// or to out.
func runRunsExport(o *runsExportOptions, run api.Run, out io.Writer) error {
	s, err := pickAttempt(run, o)
	if err != nil {
		return err
	}
	if len(s.Argv) == 0 {
		what := s.Status
		if s.Reason != "" {
			what += " (" + s.Reason + ")"
		}
		return usageErrorf("step %s of %s in run %d was %s: it did not run, so there is no attempt to export (export the step that failed; see deployer runs show %d)",
			s.Step, s.Instance, run.ID, what, run.ID)
	}
	data, err := executor.ExportScenario(scenarioSource(run, s), executor.ExportOptions{
		Name: fmt.Sprintf("run %d: %s of %s, attempt %d, %s", run.ID, s.Step, s.Instance, s.Attempt, s.Status),
		YAML: o.yaml,
	})
	if err != nil {
		return err
	}
	if o.outFile == "" {
		_, err := out.Write(data)
		return err
	}
	if err := os.WriteFile(o.outFile, data, 0o644); err != nil {
		return fmt.Errorf("write scenario: %w", err)
	}
	fmt.Fprintf(out, "wrote %s: %s of %s, run %d attempt %d (%s)\n", o.outFile, s.Step, s.Instance, run.ID, s.Attempt, s.Status)
	return nil
}

// pickAttempt finds the attempt o names in run.
func pickAttempt(run api.Run, o *runsExportOptions) (api.StepResult, error) {
	var cands []api.StepResult
	instances := map[string]bool{}
	for _, s := range run.Steps {
		if s.Step == o.step && (o.instance == "" || s.Instance == o.instance) {
			cands = append(cands, s)
			instances[s.Instance] = true
		}
	}
	switch {
	case len(cands) == 0:
		return api.StepResult{}, usageErrorf("run %d has no attempt of step %q%s (see deployer runs show %d)", run.ID, o.step, forInstance(o.instance), run.ID)
	case len(instances) > 1:
		names := make([]string, 0, len(instances))
		for _, s := range cands {
			if s.Attempt <= 1 {
				names = append(names, s.Instance+" ("+s.Status+")")
			}
		}
		return api.StepResult{}, usageErrorf("step %s ran for %d instances in run %d: choose one with --instance (%s)", o.step, len(instances), run.ID, strings.Join(names, ", "))
	}
	best := cands[0]
	for _, s := range cands {
		if o.attempt == 0 && s.Attempt > best.Attempt || o.attempt != 0 && s.Attempt == o.attempt {
			best = s
		}
	}
	if o.attempt != 0 && best.Attempt != o.attempt {
		return api.StepResult{}, usageErrorf("step %s of %s has no attempt %d in run %d", o.step, best.Instance, o.attempt, run.ID)
	}
	return best, nil
}

func forInstance(name string) string {
	if name == "" {
		return ""
	}
	return " for instance " + name
}

// scenarioSource turns a recorded attempt into what ExportScenario reads.
// The API record has no Inputs: the instance file and commit come from the
// recorded environment (or the run), and the dependency outputs from the
// DEPLOYER_OUT_<KEY> variables the step received (keys as the step saw
// them, upper case); the step's timeout, writes policy, instance blob and
// the host config's step_env and allow_step_dirs from the record.
func scenarioSource(run api.Run, s api.StepResult) executor.StepResult {
	r := executor.StepResult{
		Instance: manifest.InstanceName(s.Instance), Step: manifest.StepName(s.Step), Attempt: s.Attempt,
		Status: executor.Status(s.Status), Reason: s.Reason, Argv: s.Argv, Dir: s.Dir,
		Env: s.Env, SecretNames: s.SecretNames, ExitCode: s.ExitCode, Signal: s.Signal,
		Started: s.Started, Ended: s.Ended, Outputs: s.Outputs,
	}
	r.Inputs.InstanceFile = s.Env[executor.EnvInstanceFile]
	if r.Inputs.InstanceFile == "" {
		for _, in := range run.Instances {
			if in.Name == s.Instance {
				r.Inputs.InstanceFile = in.File
			}
		}
	}
	r.Inputs.InstanceBlob, r.Inputs.Writes = s.InstanceBlob, s.Writes
	r.Inputs.StepEnv, r.Inputs.AllowStepDirs = s.StepEnv, s.AllowStepDirs
	if d, err := time.ParseDuration(s.Timeout); err == nil {
		r.Inputs.Timeout = d
	}
	r.Inputs.Commit = s.Env[executor.EnvCommit]
	if r.Inputs.Commit == "" {
		r.Inputs.Commit = s.Commit
	}
	if r.Inputs.Commit == "" {
		r.Inputs.Commit = run.Commit
	}
	if len(s.Argv) > 0 {
		r.Inputs.Run = s.Argv[0]
	}
	for k, v := range s.Env {
		if key, ok := strings.CutPrefix(k, "DEPLOYER_OUT_"); ok {
			if r.Inputs.DependencyOutputs == nil {
				r.Inputs.DependencyOutputs = map[string]string{}
			}
			r.Inputs.DependencyOutputs[key] = v
		}
	}
	return r
}
