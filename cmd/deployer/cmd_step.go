package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sre-tools/deployer/syncer"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

// defaultStepEnv is the daemon's step_env when the host config names none.
var defaultStepEnv = []string{"PATH", "HOME", "LANG", "TZ"}

// localRunID is DEPLOYER_RUN of a local run.
const localRunID = "local"

func newStepCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "step",
		Short: "Run or test one step locally, without a daemon",
	}
	cmd.AddCommand(newStepRunCmd(g), newStepTestCmd(g))
	return cmd
}

// stepRunOptions are the inputs of `deployer step run`.
type stepRunOptions struct {
	dir      string
	instance string
	step     string
	// outputs are the outputs of the steps the step runs after; outputsSet
	// says that --outputs was given (possibly empty).
	outputs    map[string]string
	outputsSet bool
	dryRun     bool
	scenario   string
	// stepEnv are the host variables passed through (as step_env);
	// allowStepDirs as allow_step_dirs in the host config.
	stepEnv       []string
	allowStepDirs []string
	format        outputFormat
	// stream receives the step's output as it runs; nil discards it.
	stream io.Writer
	// client reaches the daemon that recorded the dependencies' runs;
	// nil: no lookup (--outputs or a scenario is needed).
	client func() (*api.Client, error)
	// notes receives what the lookup found; nil discards.
	notes io.Writer
}

func newStepRunCmd(g *globalOptions) *cobra.Command {
	o := &stepRunOptions{}
	cmd := &cobra.Command{
		Use:   "run DIR INSTANCE STEP | run DIR --scenario FILE",
		Short: "Run one step of one instance in a local checkout, as the daemon would",
		Long: `Run one step of one instance in the checkout DIR with the argv and the
DEPLOYER_* environment the daemon would give it: DEPLOYER_HOST is this host,
DEPLOYER_REPO the base name of DIR, DEPLOYER_COMMIT DIR's HEAD ("local" when
DIR is not a git checkout), DEPLOYER_RUN "local". INSTANCE is an instance name
or its file (instances/beta.xml). Only the host variables named by --step-env
are passed through. One attempt runs: the manifest's retries are not applied.

A step that runs after other steps (after="...") needs them to have
succeeded at this commit: without --outputs, the daemon (--socket, or
--remote) is asked for the newest run of INSTANCE at DIR's HEAD in which they
all succeeded, and their recorded outputs are used; it is an error (exit 2)
if there is none. --outputs key=value,... (--outputs= when they have none)
gives the outputs instead, without asking.

With --scenario FILE, run exactly the inputs of a scenario file (as written by
deployer runs export): its arguments, environment, dependency outputs and host
variable names. Secrets it names are taken from your environment.

The step's output is streamed to the terminal (to stderr with -o json), then
its result is printed.

Exit status: 0 the step succeeded, 1 it failed, timed out or could not run,
2 usage (a dependency's outputs are missing).`,
		Args: cobra.RangeArgs(1, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			if err := o.setArgs(args); err != nil {
				return err
			}
			o.outputsSet = cmd.Flags().Changed("outputs")
			o.client = g.client
			o.notes = cmd.ErrOrStderr()
			o.format = f
			o.stream = cmd.OutOrStdout()
			if f.structured() {
				o.stream = cmd.ErrOrStderr()
			}
			return runStepRun(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringToStringVar(&o.outputs, "outputs", nil, "outputs of the steps this step runs after, key=value,...")
	f.BoolVar(&o.dryRun, "dry-run", false, "set DEPLOYER_DRY_RUN=1")
	f.StringVar(&o.scenario, "scenario", "", "run the scenario FILE instead of a manifest step")
	f.StringSliceVar(&o.stepEnv, "step-env", defaultStepEnv, "host variables passed to the step (as step_env in the config)")
	f.StringSliceVar(&o.allowStepDirs, "allow-step-dir", nil, "host directory whose commands steps may run (as allow_step_dirs in the config)")
	return cmd
}

// setArgs checks the positional arguments against --scenario.
func (o *stepRunOptions) setArgs(args []string) error {
	o.dir = args[0]
	switch {
	case o.scenario != "" && len(args) != 1:
		return usageErrorf("step run DIR --scenario FILE takes no INSTANCE or STEP")
	case o.scenario == "" && len(args) != 3:
		return usageErrorf("step run needs DIR INSTANCE STEP, or DIR --scenario FILE")
	case o.scenario == "":
		o.instance, o.step = args[1], args[2]
	}
	return nil
}

// runStepRun runs one step (or a scenario) and prints its result to out.
func runStepRun(ctx context.Context, o *stepRunOptions, out io.Writer) error {
	var r executor.StepResult
	var err error
	if o.dir, err = absCheckout(o.dir); err != nil {
		return err
	}
	if o.scenario != "" {
		r, err = runScenarioFile(ctx, o, out)
	} else {
		r, err = runManifestStep(ctx, o)
	}
	if err != nil {
		return err
	}
	if err := printStepResult(out, r, o.format); err != nil {
		return err
	}
	if r.Status != executor.StatusSucceeded {
		return &statusError{Code: exitError, Err: fmt.Errorf("step %s of %s %s", r.Step, r.Instance, stepOutcome(r))}
	}
	return nil
}

// runManifestStep runs o.step of o.instance as the daemon would.
func runManifestStep(ctx context.Context, o *stepRunOptions) (executor.StepResult, error) {
	m, err := manifest.Load(o.dir, manifest.Options{AllowStepDirs: o.allowStepDirs})
	if err != nil {
		return executor.StepResult{}, fmt.Errorf("step run: %w", err)
	}
	step, err := findStep(m, o.step)
	if err != nil {
		return executor.StepResult{}, err
	}
	inst, err := findInstance(m, o.dir, o.instance)
	if err != nil {
		return executor.StepResult{}, err
	}
	if len(step.After) > 0 && !o.outputsSet {
		if err := o.lookupOutputs(ctx, inst, step); err != nil {
			return executor.StepResult{}, err
		}
	}
	job := localJob(o, inst, step)
	e := executor.New(executor.Options{StepEnv: o.stepEnv})
	results := e.RunJob(ctx, job, nil)
	if len(results) == 0 {
		return executor.StepResult{}, fmt.Errorf("step run: %s of %s did not run", step.Name, inst.Name)
	}
	return results[len(results)-1], nil
}

// lookupOutputs sets o.outputs from the daemon's newest run at DIR's HEAD
// in which step's dependencies succeeded for inst.
func (o *stepRunOptions) lookupOutputs(ctx context.Context, inst manifest.Instance, step manifest.Step) error {
	commit := localCommit(o.dir)
	if o.client == nil || commit == localRunID {
		return missingOutputs(step)
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	outs, run, err := recordedOutputs(ctx, c, commit, string(inst.Name), step)
	var ke *api.KindError
	if errors.As(err, &ke) && ke.Kind == api.KindUnavailable {
		return usageErrorf("%v\n(the daemon was asked for the recorded outputs: %v)", missingOutputs(step), err)
	}
	if err != nil {
		return err
	}
	o.outputs = outs
	if o.notes != nil {
		fmt.Fprintf(o.notes, "dependencies of %s succeeded for %s in run %d at %s; using their %d output(s)\n", step.Name, inst.Name, run, shortID(commit), len(outs))
	}
	return nil
}

// missingOutputs is the usage error for a step whose dependencies' outputs
// were not given.
func missingOutputs(step manifest.Step) error {
	deps := make([]string, len(step.After))
	for i, d := range step.After {
		deps[i] = string(d)
	}
	return usageErrorf("step %s runs after %s: the outputs of %s are missing; give them with --outputs key=value,... (--outputs= when it has none), or run a scenario exported with deployer runs export",
		step.Name, strings.Join(deps, ", "), strings.Join(deps, ", "))
}

func findStep(m *manifest.Manifest, name string) (manifest.Step, error) {
	if s, ok := m.Step(manifest.StepName(name)); ok {
		return s, nil
	}
	names := make([]string, len(m.Steps))
	for i, s := range m.Steps {
		names[i] = string(s.Name)
	}
	return manifest.Step{}, usageErrorf("no step %q in %s (steps: %s)", name, manifest.FileName, strings.Join(names, ", "))
}

// findInstance finds an instance by file (a slash path in dir) or by name.
func findInstance(m *manifest.Manifest, dir, arg string) (manifest.Instance, error) {
	if m.MatchesInstancePath(arg) {
		inst, err := m.ReadInstance(dir, arg)
		if err != nil {
			return manifest.Instance{}, fmt.Errorf("step run: %w", err)
		}
		return inst, nil
	}
	insts, err := m.ListInstances(dir)
	for _, in := range insts {
		if string(in.Name) == arg {
			return in, nil
		}
	}
	if err != nil {
		return manifest.Instance{}, fmt.Errorf("step run: no valid instance %q: %w", arg, err)
	}
	return manifest.Instance{}, usageErrorf("no instance %q in %s (%d instances; give a name or a file like %s/NAME.xml)", arg, dir, len(insts), m.Instances.Dir)
}

// localJob is the one-step job the daemon would run, with local values.
func localJob(o *stepRunOptions, inst manifest.Instance, step manifest.Step) executor.Job {
	host, _ := os.Hostname()
	step.Retries = 0
	job := executor.Job{
		RepoRoot:      o.dir,
		AllowStepDirs: o.allowStepDirs,
		Instance:      inst,
		Steps:         []manifest.Step{step},
		Outputs:       o.outputs,
		Stream:        o.stream,
	}
	executor.StepEnv{Host: host, Repo: filepath.Base(o.dir), Commit: localCommit(o.dir), Run: localRunID, DryRun: o.dryRun}.Apply(&job)
	return job
}

// absCheckout is dir as an absolute path (the executor runs commands
// from there), checked to be a directory.
func absCheckout(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("checkout %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	if !fi.IsDir() {
		return "", usageErrorf("checkout %s is not a directory", dir)
	}
	return abs, nil
}

// localCommit is the commit DIR's HEAD names, read from .git without the git
// CLI; "local" when it cannot be read.
func localCommit(dir string) string {
	if c, err := syncer.LocalHead(dir); err == nil {
		return c
	}
	return localRunID
}

// runScenarioFile runs o.scenario in o.dir. The scenario's host variables
// are passed through besides --step-env, so that the step sees the same
// variable names as where it was recorded.
func runScenarioFile(ctx context.Context, o *stepRunOptions, out io.Writer) (executor.StepResult, error) {
	data, err := os.ReadFile(o.scenario)
	if err != nil {
		return executor.StepResult{}, fmt.Errorf("step run: %w", err)
	}
	sc, err := executor.LoadScenario(data)
	if err != nil {
		return executor.StepResult{}, fmt.Errorf("step run: %s: %w", o.scenario, err)
	}
	if o.dryRun {
		sc.DryRun = true
	}
	if o.outputsSet {
		sc.DependencyOutputs = o.outputs
	}
	stepEnv := slices.Clone(o.stepEnv)
	for _, n := range sc.HostEnv {
		if !slices.Contains(stepEnv, n) {
			stepEnv = append(stepEnv, n)
		}
		if _, ok := os.LookupEnv(n); !ok && !o.format.structured() {
			fmt.Fprintf(out, "note: %s was set where the scenario was recorded, not here\n", n)
		}
	}
	t := executor.Target{RepoRoot: o.dir, AllowStepDirs: o.allowStepDirs, Secrets: envSecrets(sc.Secrets), Stream: o.stream}
	r, err := executor.New(executor.Options{StepEnv: stepEnv}).RunScenario(ctx, t, sc)
	if errors.Is(err, executor.ErrSecretMissing) {
		return r, usageErrorf("step run: %v (export it in your environment)", err)
	}
	if err != nil {
		return r, fmt.Errorf("step run: %w", err)
	}
	return r, nil
}

// envSecrets takes the named secrets from the environment, where set.
func envSecrets(names []string) map[string]string {
	s := map[string]string{}
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok {
			s[n] = v
		}
	}
	return s
}

func stepOutcome(r executor.StepResult) string {
	if r.Reason == "" {
		return string(r.Status)
	}
	return fmt.Sprintf("%s (%s)", r.Status, r.Reason)
}

// printStepResult prints a local step result: the API's step record in JSON,
// or a few lines for humans.
func printStepResult(w io.Writer, r executor.StepResult, f outputFormat) error {
	rec := api.WireStep(r.Record(""))
	if f.structured() {
		return f.print(w, rec)
	}
	printf(w, "%s of %s: %s\n", r.Step, r.Instance, stepOutcome(r))
	printf(w, "  exit code %d", r.ExitCode)
	if r.Signal != "" {
		printf(w, ", signal %s", r.Signal)
	}
	printf(w, ", took %s\n", r.Ended.Sub(r.Started).Round(time.Millisecond))
	printf(w, "  argv   %q\n", r.Argv)
	for _, k := range slices.Sorted(maps.Keys(r.Outputs)) {
		printf(w, "  output %s=%s\n", k, r.Outputs[k])
	}
	if len(r.ChangedFiles) > 0 {
		printf(w, "  changed %s\n", strings.Join(r.ChangedFiles, ", "))
	}
	return nil
}

// stepTestOptions are the inputs of `deployer step test`.
type stepTestOptions struct {
	dir           string
	scenarios     string
	stepEnv       []string
	allowStepDirs []string
	format        outputFormat
}

func newStepTestCmd(g *globalOptions) *cobra.Command {
	o := &stepTestOptions{}
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run a checkout's scenario files and check their expected outcomes",
		Long: `Run every scenario file (*.json, *.yaml, *.yml) of the directory
DIR/scenarios (or --scenarios, relative to DIR unless absolute) against the
checkout DIR, in name order, and check each one's expected outcome (without
"expect", the step must succeed). Instance files are restored afterwards.
Only the host variables named by --step-env are passed through; secrets a
scenario names are taken from your environment.

Exit status: 0 every scenario passed, 1 one failed or could not run, or there
are none.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			o.dir, o.format = args[0], f
			return runStepTest(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.scenarios, "scenarios", "scenarios", "directory of scenario files, relative to DIR")
	f.StringSliceVar(&o.stepEnv, "step-env", defaultStepEnv, "host variables passed to the steps (as step_env in the config)")
	f.StringSliceVar(&o.allowStepDirs, "allow-step-dir", nil, "host directory whose commands steps may run (as allow_step_dirs in the config)")
	return cmd
}

// scenarioReport is one tested scenario in -o json.
type scenarioReport struct {
	File     string   `json:"file"`
	Name     string   `json:"name,omitempty"`
	Passed   bool     `json:"passed"`
	Status   string   `json:"status,omitempty"`
	ExitCode int      `json:"exit_code"`
	Problems []string `json:"problems"`
}

// runStepTest tests the scenarios and prints a table (or JSON) to out.
func runStepTest(ctx context.Context, o *stepTestOptions, out io.Writer) error {
	root, err := absCheckout(o.dir)
	if err != nil {
		return err
	}
	dir := o.scenarios
	if dir == "" {
		dir = "scenarios"
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	t := executor.Target{RepoRoot: root, AllowStepDirs: o.allowStepDirs, Secrets: environSecrets()}
	outcomes, err := executor.New(executor.Options{StepEnv: o.stepEnv}).TestScenarios(ctx, t, dir)
	if err != nil {
		return err
	}
	reports := make([]scenarioReport, len(outcomes))
	failed := 0
	for i, oc := range outcomes {
		reports[i] = reportOf(oc)
		if !oc.Passed() {
			failed++
		}
	}
	if err := printScenarioReports(out, reports, o.format); err != nil {
		return err
	}
	switch {
	case len(outcomes) == 0:
		return &statusError{Code: exitError, Err: fmt.Errorf("no scenario files (*.json, *.yaml, *.yml) in %s", dir)}
	case failed > 0:
		return &statusError{Code: exitError, Err: fmt.Errorf("%d of %d scenarios failed", failed, len(outcomes))}
	}
	return nil
}

// environSecrets is the environment as a secrets map: a scenario's step
// gets the values of the secret names it lists, and nothing else.
func environSecrets() map[string]string {
	s := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			s[k] = v
		}
	}
	return s
}

func reportOf(oc executor.ScenarioOutcome) scenarioReport {
	r := scenarioReport{File: oc.File, Name: oc.Scenario.Name, Passed: oc.Passed(), Problems: slices.Clone(oc.Mismatches)}
	if oc.Err != nil {
		r.Problems = append(r.Problems, oc.Err.Error())
		return r
	}
	r.Status, r.ExitCode = string(oc.Result.Status), oc.Result.ExitCode
	if r.Problems == nil {
		r.Problems = []string{}
	}
	return r
}

func printScenarioReports(w io.Writer, reports []scenarioReport, f outputFormat) error {
	if f.structured() {
		return f.print(w, map[string]any{"scenarios": reports})
	}
	t := newTable(w)
	fmt.Fprintln(t, "SCENARIO\tSTATUS\tPROBLEMS")
	for _, r := range reports {
		verdict := "pass"
		if !r.Passed {
			verdict = "FAIL"
		}
		if r.Status != "" {
			verdict += " (" + r.Status + ")"
		}
		problems := strings.Join(r.Problems, "; ")
		if problems == "" {
			problems = "-"
		}
		printf(t, "%s\t%s\t%s\n", filepath.Base(r.File), verdict, problems)
	}
	return t.Flush()
}
