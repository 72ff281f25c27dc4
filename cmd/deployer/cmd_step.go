package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sre-tools/deployer/store/localruns"

	"github.com/sre-tools/deployer/syncer"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

// defaultStepEnv is the daemon's step_env when the host config names none.
var defaultStepEnv = executor.DefaultStepEnv

// localRunID is DEPLOYER_RUN of a local run.
const localRunID = "local"

func newStepCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "step",
		Short: "Run or test one step locally, without a daemon",
	}
	cmd.AddCommand(newStepRunCmd(g), newStepTestCmd(g), newStepRunsCmd(g))
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
	// outputsFrom is the daemon's run whose recorded outputs are used
	// (--outputs-from); 0: none named.
	outputsFrom uint64
	dryRun      bool
	scenario    string
	// strict refuses a scenario whose instance file or commit differ from
	// the checkout's.
	strict bool
	host   hostSettings
	format outputFormat
	// stream receives the step's output as it runs; nil discards it.
	stream io.Writer
	// client reaches the daemon that recorded the dependencies' runs;
	// nil: no lookup (--outputs or a scenario is needed).
	client func() (*api.Client, error)
	// notes receives what the lookup found; nil discards.
	notes io.Writer
	// local is the local state (nil: not recorded, not looked up).
	local *localruns.Store
	// checkout is DIR's identity in the local state, set by runStepRun.
	checkout checkoutID
	// instanceEdited says that the instance file differed from its content
	// at DIR's HEAD (and from what a recorded step left) when the step
	// started; instanceFile is its path.
	instanceEdited bool
	instanceFile   string
}

func newStepRunCmd(g *globalOptions) *cobra.Command {
	o := &stepRunOptions{}
	var outputsFrom string
	cmd := &cobra.Command{
		Use:   "run DIR INSTANCE STEP | run DIR --scenario FILE",
		Short: "Run one step of one instance in a local checkout, as the daemon would",
		Long: `Run one step of one instance in the checkout DIR with the argv and the
DEPLOYER_* environment the daemon would give it: DEPLOYER_HOST is the host
config's host: with --config, else this machine's host name,
DEPLOYER_REPO the repo's name (--repo; else the repo of the host config
whose url is DIR's remote, or its only repo; else the base name of DIR's
remote URL), DEPLOYER_COMMIT DIR's HEAD ("local" when DIR is not a git
checkout), DEPLOYER_RUN "local". INSTANCE is an instance name or its file
(instances/beta.xml). Only the host variables named by step_env are passed
through. One attempt runs: the manifest's retries are not applied.

With --config FILE (or DEPLOYER_CONFIG) the host config's step_env and
allow_step_dirs apply, as on the daemon; --step-env and --allow-step-dir
override them.

Every attempt is recorded in the local state file (the user's cache
directory: deployer/local.db; list it with deployer step runs), keyed by
DIR's remote URL and commit. A step that runs after other steps
(after="...") needs them to have succeeded at this commit; their outputs
come from, in this order: --outputs key=value,... when given (--outputs=
when they have none); the daemon's run --outputs-from RUN; the local
attempts at this commit (of each, the newest of the manifest's step on the
committed instance file, which must have succeeded: attempts of a scenario
or on a hand-edited instance file are recorded as such and never count);
the daemon (--socket, or --remote) newest run of
INSTANCE at DIR's HEAD in which they all succeeded. Without any, the step is
refused (exit 2), naming the steps to run first.

With --scenario FILE ("-": standard input), run exactly the inputs of a
scenario file (as written by deployer runs export): its arguments,
DEPLOYER_* environment and dependency outputs. The host variables passed
are those of the step_env in force: --step-env, else --config's step_env,
else the scenario's recorded step_env, else PATH,HOME,LANG,TZ (printed
first; step test follows the same rule); allow_step_dirs likewise. Secrets
it names are taken from your environment. When the checkout's
commit or instance file differ from the recorded ones, a warning shows how
(the instance file's changes as XML edits); --strict refuses to run then.

The step's output is streamed to the terminal (to stderr with -o json), then
its result is printed.

Exit status: 0 the step succeeded, 1 it failed, timed out or could not run
(or --strict found a difference), 2 usage (a dependency's outputs are
missing).`,
		Args: cobra.RangeArgs(1, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			if err := o.setArgs(args); err != nil {
				return err
			}
			if outputsFrom != "" {
				if o.outputsFrom, err = strconv.ParseUint(outputsFrom, 10, 64); err != nil || o.outputsFrom == 0 {
					return usageErrorf("--outputs-from %q: want a run id (see deployer runs)", outputsFrom)
				}
			}
			if err := o.host.load(g, cmd); err != nil {
				return err
			}
			o.outputsSet = cmd.Flags().Changed("outputs")
			o.client = func() (*api.Client, error) { return remoteClient(g) }
			o.notes = cmd.ErrOrStderr()
			o.format = f
			o.stream = cmd.OutOrStdout()
			if f.structured() {
				o.stream = cmd.ErrOrStderr()
			}
			if path, err := localruns.DefaultPath(); err == nil {
				o.local = localruns.New(path)
			} else {
				fmt.Fprintf(o.notes, "warning: %v: local attempts are not recorded\n", err)
			}
			return runStepRun(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringToStringVar(&o.outputs, "outputs", nil, "outputs of the steps this step runs after, key=value,...")
	f.StringVar(&outputsFrom, "outputs-from", "", "take the dependencies' outputs from this run of the daemon (--socket or --remote)")
	f.BoolVar(&o.dryRun, "dry-run", false, "set DEPLOYER_DRY_RUN=1")
	f.StringVar(&o.scenario, "scenario", "", "run the scenario FILE (- for standard input) instead of a manifest step")
	f.BoolVar(&o.strict, "strict", false, "with --scenario: refuse when the checkout's commit or instance file differ from the recorded ones")
	o.host.flags(cmd, true)
	return cmd
}

// hostSettings are what a local command takes from the host config
// (--config or DEPLOYER_CONFIG) or its flags: step_env, allow_step_dirs
// and the repo's name.
type hostSettings struct {
	stepEnv       []string
	allowStepDirs []string
	repo          string
	// stepEnvSet and allowSet say that a flag or the host config gave them;
	// stepEnvFrom says which ("--step-env", "the host config FILE").
	stepEnvSet, allowSet bool
	stepEnvFrom          string
	cfg                  *Config
}

// scenarioHost is what a scenario run takes from this host's settings:
// its step_env and allow_step_dirs when a flag or the host config gave
// them, else nil (the scenario's recorded ones apply, then the default:
// executor.Scenario.StepEnvFor).
func (h *hostSettings) scenarioHost() (stepEnv, allow []string) {
	if h.stepEnvSet {
		stepEnv = slices.Clone(h.stepEnv)
		if stepEnv == nil {
			stepEnv = []string{}
		}
	}
	if h.allowSet {
		allow = slices.Clone(h.allowStepDirs)
		if allow == nil {
			allow = []string{}
		}
	}
	return stepEnv, allow
}

// flags adds --step-env and --allow-step-dir, and with repo --repo.
func (h *hostSettings) flags(cmd *cobra.Command, repo bool) {
	f := cmd.Flags()
	f.StringSliceVar(&h.stepEnv, "step-env", defaultStepEnv, "host variables passed to the step (default: the host config's step_env)")
	f.StringSliceVar(&h.allowStepDirs, "allow-step-dir", nil, "host directory whose commands steps may run (default: the host config's allow_step_dirs)")
	if repo {
		f.StringVar(&h.repo, "repo", "", "the repo's name, DEPLOYER_REPO (default: the host config's repo for DIR's remote)")
	}
}

// load reads the host config when one is named and fills what the flags
// did not give.
func (h *hostSettings) load(g *globalOptions, cmd *cobra.Command) error {
	h.stepEnvSet = cmd.Flags().Changed("step-env")
	h.allowSet = cmd.Flags().Changed("allow-step-dir")
	if h.stepEnvSet {
		h.stepEnvFrom = "--step-env"
	}
	if g.configPath == "" {
		return nil
	}
	cfg, err := loadConfig(g.configPath)
	if err != nil {
		return &statusError{Code: exitUsage, Err: err}
	}
	h.cfg = cfg
	if !h.stepEnvSet {
		h.stepEnv, h.stepEnvSet = cfg.StepEnv, true
		h.stepEnvFrom = "the host config " + g.configPath
		if len(h.stepEnv) == 0 {
			h.stepEnv = defaultStepEnv
			h.stepEnvFrom += " (its default)"
		}
	}
	if !h.allowSet {
		h.allowStepDirs, h.allowSet = cfg.AllowStepDirs, true
	}
	return nil
}

// hostName is DEPLOYER_HOST of a local run: the host config's host: (as
// on the daemon), else this machine's host name.
func (h *hostSettings) hostName() string {
	if h.cfg != nil && h.cfg.Host != "" {
		return h.cfg.Host
	}
	name, _ := os.Hostname()
	return name
}

// repoName is DEPLOYER_REPO for a checkout with this remote URL: --repo,
// else the host config's repo with that url (or its only repo), else the
// remote URL's base name without .git, else the checkout's base name.
func (h *hostSettings) repoName(c checkoutID) string {
	if h.repo != "" {
		return h.repo
	}
	if h.cfg != nil {
		for _, r := range h.cfg.Repos {
			if c.url != "" && sameRemote(r.URL, c.url) {
				return r.Name
			}
		}
		if len(h.cfg.Repos) == 1 {
			return h.cfg.Repos[0].Name
		}
	}
	if c.url != "" {
		base := c.url[strings.LastIndexAny(c.url, "/:")+1:]
		if base = strings.TrimSuffix(base, ".git"); base != "" {
			return base
		}
	}
	return filepath.Base(c.dir)
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

// runStepRun runs one step (or a scenario), records it in the local state
// and prints its result to out.
func runStepRun(ctx context.Context, o *stepRunOptions, out io.Writer) error {
	var r executor.StepResult
	var err error
	if o.dir, err = absCheckout(o.dir); err != nil {
		return err
	}
	if o.host.stepEnv == nil {
		o.host.stepEnv = defaultStepEnv
	}
	o.checkout = identify(o.dir)
	if o.scenario != "" {
		r, err = runScenarioFile(ctx, o, out)
	} else {
		r, err = runManifestStep(ctx, o)
	}
	if err != nil {
		return err
	}
	o.record(r)
	if err := printStepResult(out, r, o.format); err != nil {
		return err
	}
	if strings.Contains(r.Reason, executor.ErrCommandNotAllowed.Error()) && o.notes != nil {
		fmt.Fprintf(o.notes, "hint: a command outside the checkout must be under an allowed step directory: --allow-step-dir DIR, or the host config's allow_step_dirs (--config FILE)\n")
	}
	if r.Status != executor.StatusSucceeded {
		return &statusError{Code: exitError, Err: fmt.Errorf("step %s of %s %s", r.Step, r.Instance, stepOutcome(r))}
	}
	return nil
}

// record adds the attempt to the local state; a failure to is a warning.
func (o *stepRunOptions) record(r executor.StepResult) {
	if o.local == nil || r.Started.IsZero() {
		return
	}
	names := slices.Concat(slices.Collect(maps.Keys(r.Env)), r.SecretNames)
	slices.Sort(names)
	a := localruns.Attempt{
		Remote: o.checkout.key, Commit: o.checkout.commit, Dir: o.dir,
		Instance: string(r.Instance), Step: string(r.Step), Argv: r.Argv, EnvNames: slices.Compact(names),
		Outputs: r.Outputs, Status: string(r.Status), Reason: r.Reason, ExitCode: r.ExitCode,
		Started: r.Started.UTC(), DurationMS: r.Ended.Sub(r.Started).Milliseconds(),
	}
	if o.scenario != "" && o.scenario != "-" {
		a.Scenario, _ = filepath.Abs(o.scenario)
	}
	a.FromScenario, a.InstanceEdited = o.scenario != "", o.instanceEdited
	a.InstanceBefore = r.Inputs.InstanceBlob
	if o.instanceFile != "" {
		if data, err := os.ReadFile(filepath.Join(o.dir, filepath.FromSlash(o.instanceFile))); err == nil {
			a.InstanceAfter = syncer.BlobID(data)
		}
	}
	if _, err := o.local.Record(a); err != nil && o.notes != nil {
		fmt.Fprintf(o.notes, "warning: %v\n", err)
	}
}

// runManifestStep runs o.step of o.instance as the daemon would.
func runManifestStep(ctx context.Context, o *stepRunOptions) (executor.StepResult, error) {
	m, err := manifest.Load(o.dir, o.host.manifestOptions())
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
	o.checkInstanceFile(string(inst.Name), inst.File, true)
	if len(step.After) > 0 && !o.outputsSet {
		if err := o.lookupOutputs(ctx, inst, step); err != nil {
			return executor.StepResult{}, err
		}
	}
	job := localJob(o, inst, step)
	e := executor.New(executor.Options{StepEnv: o.host.stepEnv})
	results := e.RunJob(ctx, job, nil)
	if len(results) == 0 {
		return executor.StepResult{}, fmt.Errorf("step run: %s of %s did not run", step.Name, inst.Name)
	}
	return results[len(results)-1], nil
}

// manifestOptions are the manifest's options under the host settings.
func (h *hostSettings) manifestOptions() manifest.Options {
	o := manifest.Options{AllowStepDirs: h.allowStepDirs}
	if h.cfg != nil {
		o.Limits = h.cfg.ManifestLimits()
	}
	return o
}

// lookupOutputs sets o.outputs for step's dependencies: from the daemon's
// run --outputs-from, else from the local attempts at DIR's HEAD, else from
// the daemon's newest run at DIR's HEAD in which they all succeeded.
func (o *stepRunOptions) lookupOutputs(ctx context.Context, inst manifest.Instance, step manifest.Step) error {
	commit := o.checkout.commit
	if o.outputsFrom != 0 {
		return o.outputsFromRun(ctx, inst, step)
	}
	outs, missing, err := o.localOutputs(inst, step)
	var se *statusError
	if errors.As(err, &se) {
		return err // a dependency's newest local attempt failed
	}
	if err != nil && o.notes != nil {
		fmt.Fprintf(o.notes, "warning: %v\n", err)
	}
	if err == nil && len(missing) == 0 {
		o.outputs = outs
		if o.notes != nil {
			fmt.Fprintf(o.notes, "dependencies of %s succeeded for %s locally at %s; using their %d output(s) (deployer step runs)\n", step.Name, inst.Name, shortID(commit), len(outs))
		}
		return nil
	}
	if o.client == nil || commit == localRunID {
		return o.missingOutputs(inst, step, missing, "")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	outs, run, err := recordedOutputs(ctx, c, commit, string(inst.Name), step)
	var ke *api.KindError
	if errors.As(err, &ke) && ke.Kind == api.KindUnavailable {
		return o.missingOutputs(inst, step, missing, fmt.Sprintf("no daemon answered either (%v)", err))
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

// localOutputs merges the outputs of step's dependencies for inst at DIR's
// HEAD, in the manifest's order, from the newest local attempt of each
// that counts (the manifest's step on the committed instance file, or on
// the file a recorded step left: not a scenario, not a hand-edited file);
// missing are the dependencies without one. When the newest that counts
// did not succeed, the step is refused, naming it.
func (o *stepRunOptions) localOutputs(inst manifest.Instance, step manifest.Step) (map[string]string, []string, error) {
	var missing []string
	for _, d := range step.After {
		missing = append(missing, string(d))
	}
	if o.local == nil || o.checkout.commit == localRunID {
		return nil, missing, nil
	}
	outs := map[string]string{}
	missing = missing[:0]
	for _, d := range step.After {
		a, ok, ignored, err := o.local.LastCounted(o.checkout.key, o.checkout.commit, string(inst.Name), string(d))
		if err != nil {
			return nil, nil, err
		}
		if ignored > 0 && o.notes != nil {
			fmt.Fprintf(o.notes, "note: %d newer local attempt(s) of %s for %s ran a scenario or an edited instance file: not used as its run (deployer step runs %s --step %s)\n",
				ignored, d, inst.Name, o.dir, d)
		}
		if !ok {
			missing = append(missing, string(d))
			continue
		}
		if !a.Succeeded() {
			reason := a.Status
			if a.Reason != "" {
				reason += " (" + a.Reason + ")"
			}
			return nil, nil, usageErrorf("step %s runs after %s: its newest local attempt for %s at commit %s (#%d, %s) %s; its outputs are not used\nfix it and run it again: deployer step run %s %s %s\nor give the outputs with --outputs key=value,... (--outputs= when it has none)",
				step.Name, d, inst.Name, shortID(o.checkout.commit), a.Seq, a.Started.Local().Format("2006-01-02 15:04:05"), reason, o.dir, inst.Name, d)
		}
		maps.Copy(outs, a.Outputs)
	}
	return outs, missing, nil
}

// checkInstanceFile sets o.instanceEdited: the instance file differs from
// its content at DIR's HEAD and from the file a counted, succeeded local
// attempt at this commit left (a writing step run before this one). It
// warns then: the attempt will not count as the step's run.
func (o *stepRunOptions) checkInstanceFile(name, file string, warn bool) {
	o.instanceFile = file
	if o.checkout.commit == localRunID {
		return
	}
	here, err := os.ReadFile(filepath.Join(o.dir, filepath.FromSlash(file)))
	if err != nil {
		return
	}
	blob := syncer.BlobID(here)
	committed, err := syncer.LocalFileBlob(o.dir, o.checkout.commit, file)
	if err == nil && committed == blob {
		return
	}
	if o.local != nil {
		as, _ := o.local.List(localruns.Filter{Remote: o.checkout.key, Commit: o.checkout.commit, Instance: name})
		for _, a := range as {
			if a.Counts() && a.Succeeded() && a.InstanceAfter == blob {
				if warn && o.notes != nil && a.InstanceAfter != a.InstanceBefore {
					fmt.Fprintf(o.notes, "note: %s is as %s left it (local attempt #%d)\n", file, a.Step, a.Seq)
				}
				return
			}
		}
	}
	o.instanceEdited = true
	if warn && o.notes != nil {
		fmt.Fprintf(o.notes, "warning: %s differs from commit %s: this attempt is recorded as on an edited instance file, and later steps will not take its outputs (git checkout -- %s restores it)\n",
			file, shortID(o.checkout.commit), file)
	}
}

// outputsFromRun takes the outputs of step's dependencies from the
// daemon's run o.outputsFrom.
func (o *stepRunOptions) outputsFromRun(ctx context.Context, inst manifest.Instance, step manifest.Step) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	run, err := c.Run(ctx, o.outputsFrom)
	if err != nil {
		return fmt.Errorf("--outputs-from %d: %w", o.outputsFrom, err)
	}
	outs, ok := depOutputs(run, string(inst.Name), dependencyNames(step))
	if !ok {
		return usageErrorf("--outputs-from %d: run %d has no succeeded attempt of every one of %s for %s (see deployer runs show %d)",
			o.outputsFrom, o.outputsFrom, strings.Join(dependencyNames(step), ", "), inst.Name, o.outputsFrom)
	}
	if run.Commit != o.checkout.commit && o.notes != nil {
		fmt.Fprintf(o.notes, "note: run %d ran at %s, this checkout is at %s\n", run.ID, shortID(run.Commit), shortID(o.checkout.commit))
	}
	o.outputs = outs
	return nil
}

func dependencyNames(step manifest.Step) []string {
	deps := make([]string, len(step.After))
	for i, d := range step.After {
		deps[i] = string(d)
	}
	return deps
}

// missingOutputs is the usage error for a step whose dependencies have
// not succeeded here: it names them and what to run.
func (o *stepRunOptions) missingOutputs(inst manifest.Instance, step manifest.Step, missing []string, daemon string) error {
	if len(missing) == 0 {
		missing = dependencyNames(step)
	}
	where := "at commit " + shortID(o.checkout.commit) + " of this checkout"
	if o.checkout.commit == localRunID {
		where = "in this directory (not a git checkout: nothing is recorded)"
	}
	msg := fmt.Sprintf("step %s runs after %s: %s has not succeeded for %s %s",
		step.Name, strings.Join(dependencyNames(step), ", "), strings.Join(missing, ", "), inst.Name, where)
	if daemon != "" {
		msg += "; " + daemon
	}
	run := make([]string, len(missing))
	for i, d := range missing {
		run[i] = fmt.Sprintf("deployer step run %s %s %s", o.dir, inst.Name, d)
	}
	return usageErrorf("%s\nrun it first: %s\nor take the outputs of the daemon's run with --outputs-from RUN, or give them with --outputs key=value,... (--outputs= when it has none)",
		msg, strings.Join(run, "; "))
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
	host := o.host.hostName()
	step.Retries = 0
	job := executor.Job{
		RepoRoot:      o.dir,
		AllowStepDirs: o.host.allowStepDirs,
		Instance:      inst,
		Steps:         []manifest.Step{step},
		Outputs:       o.outputs,
		Stream:        o.stream,
	}
	executor.StepEnv{Host: host, Repo: o.host.repoName(o.checkout), Commit: o.checkout.commit, Run: localRunID, DryRun: o.dryRun}.Apply(&job)
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
// are passed through besides step_env, so that the step sees the same
// variable names as where it was recorded.
func runScenarioFile(ctx context.Context, o *stepRunOptions, out io.Writer) (executor.StepResult, error) {
	sc, err := readScenario(o.scenario)
	if err != nil {
		return executor.StepResult{}, err
	}
	if sc.Instance.XML == "" {
		o.checkInstanceFile(string(sc.Instance.Name), sc.Instance.File, false)
	}
	if err := o.checkRecorded(sc); err != nil {
		return executor.StepResult{}, err
	}
	if o.dryRun {
		sc.DryRun = true
	}
	if o.outputsSet {
		sc.DependencyOutputs = o.outputs
	}
	hostEnv, hostAllow := o.host.scenarioHost()
	names, from := sc.StepEnvFor(hostEnv)
	if from == executor.StepEnvFromHost {
		from = o.host.stepEnvFrom
	}
	if o.notes != nil {
		fmt.Fprintf(o.notes, "step_env %s (from %s)\n", strings.Join(names, ","), from)
		for _, n := range sc.UnpassedHostEnv(names, os.LookupEnv) {
			why := "it is not set here"
			if !slices.Contains(names, n) {
				why = "step_env here does not name it"
			}
			fmt.Fprintf(o.notes, "note: %s was set where the scenario was recorded; not passed here: %s\n", n, why)
		}
	}
	t := executor.Target{RepoRoot: o.dir, StepEnv: hostEnv, AllowStepDirs: hostAllow, Secrets: envSecrets(sc.Secrets), Stream: o.stream}
	r, err := executor.New(executor.Options{}).RunScenario(ctx, t, sc)
	if errors.Is(err, executor.ErrSecretMissing) {
		return r, usageErrorf("step run: %v (export it in your environment)", err)
	}
	if err != nil {
		return r, fmt.Errorf("step run: %w", err)
	}
	return r, nil
}

// readScenario reads and checks a scenario file ("-": standard input).
func readScenario(file string) (executor.Scenario, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return executor.Scenario{}, fmt.Errorf("scenario: %w", err)
	}
	name := file
	if file == "-" {
		name = "standard input"
	}
	sc, err := executor.LoadScenarioFile(name, data)
	if err != nil {
		return sc, usageErrorf("scenario %s: %v", name, err)
	}
	return sc, nil
}

// checkRecorded compares the checkout with where the scenario was
// recorded: its commit, and the instance file's blob (unless the scenario
// brings the file). Differences are warnings, or with --strict an error.
func (o *stepRunOptions) checkRecorded(sc executor.Scenario) error {
	rec := sc.Recorded
	if rec == nil {
		return nil
	}
	var diffs []string
	if rec.Commit != "" && o.checkout.commit != rec.Commit {
		diffs = append(diffs, fmt.Sprintf("the checkout is at commit %s; the scenario was recorded at %s", shortID(o.checkout.commit), shortID(rec.Commit)))
	}
	if rec.InstanceBlob != "" && sc.Instance.XML == "" {
		here, err := os.ReadFile(filepath.Join(o.dir, filepath.FromSlash(sc.Instance.File)))
		switch {
		case err != nil:
			diffs = append(diffs, fmt.Sprintf("%s: %v (the recorded one is blob %s)", sc.Instance.File, err, shortID(rec.InstanceBlob)))
		case syncer.BlobID(here) != rec.InstanceBlob:
			diffs = append(diffs, fmt.Sprintf("%s differs from the recorded one (blob %s here, %s recorded)%s",
				sc.Instance.File, shortID(syncer.BlobID(here)), shortID(rec.InstanceBlob), instanceDiff(o.dir, rec.InstanceBlob, here)))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	if o.strict {
		return &statusError{Code: exitError, Err: fmt.Errorf("step run --strict: %s", strings.Join(diffs, "; "))}
	}
	if o.notes != nil {
		for _, d := range diffs {
			fmt.Fprintf(o.notes, "warning: %s\n", d)
		}
	}
	return nil
}

// instanceDiff shows, as XML edits from the recorded file to this one,
// how the checkout's instance file differs; the recorded blob is read from
// the checkout's git objects.
func instanceDiff(dir, blob string, here []byte) string {
	recorded, err := syncer.LocalBlob(dir, blob)
	if err != nil {
		return fmt.Sprintf(":\n  (the recorded blob is not in this clone: %v; git fetch, or check out the recorded commit)", err)
	}
	edits, err := manifest.Diff(recorded, here, manifest.DiffOptions{})
	if err != nil {
		return fmt.Sprintf(":\n  (cannot compare: %v)", err)
	}
	var b strings.Builder
	b.WriteString(", here as edits of the recorded file:")
	for _, e := range edits {
		b.WriteString("\n  " + e.String())
	}
	return b.String()
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
	dir       string
	scenarios string
	host      hostSettings
	format    outputFormat
	// parallel is how many scenarios run at once (each in its own copy of
	// the checkout); junit, when set, is the JUnit XML report's file.
	parallel int
	junit    string
}

func newStepTestCmd(g *globalOptions) *cobra.Command {
	o := &stepTestOptions{}
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run a checkout's scenario files and check their expected outcomes",
		Long: `Run every scenario file (*.json, *.yaml, *.yml) of the directory
DIR/scenarios (or --scenarios, relative to DIR unless absolute) against the
checkout DIR and check each one's expected outcome: its "expect" (status
defaults to succeeded; every other field given is checked). Scenarios run
in parallel (--parallel), each in its own copy of the checkout, so that the
checkout itself is never changed. Each scenario's step gets the host
variables of the step_env in force, as in step run --scenario: --step-env,
else --config's step_env, else the scenario's step_env, else
PATH,HOME,LANG,TZ; secrets a scenario names are taken from your
environment.

Prints one line per scenario, the problems of those that failed, and a
summary line; --junit FILE also writes a JUnit XML report for CI.

Exit status: 0 every scenario passed, 1 one failed or could not run, or there
are none.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			if err := o.host.load(g, cmd); err != nil {
				return err
			}
			o.dir, o.format = args[0], f
			return runStepTest(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.scenarios, "scenarios", "scenarios", "directory of scenario files, relative to DIR")
	f.IntVar(&o.parallel, "parallel", runtime.NumCPU(), "scenarios run at once (1: one by one, in DIR itself)")
	f.StringVar(&o.junit, "junit", "", "write a JUnit XML report to FILE")
	o.host.flags(cmd, false)
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
	Seconds  float64  `json:"seconds"`
	// output is the step's output, for the JUnit report.
	output string
}

// runStepTest tests the scenarios and prints a summary (or JSON) to out.
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
	started := time.Now()
	hostEnv, hostAllow := o.host.scenarioHost()
	t := executor.Target{RepoRoot: root, StepEnv: hostEnv, AllowStepDirs: hostAllow, Secrets: environSecrets()}
	outcomes, err := executor.New(executor.Options{}).TestScenarios(ctx, t, dir, max(o.parallel, 1))
	if err != nil {
		return err
	}
	took := time.Since(started)
	reports := make([]scenarioReport, len(outcomes))
	failed := 0
	for i, oc := range outcomes {
		reports[i] = reportOf(oc)
		if !oc.Passed() {
			failed++
		}
	}
	if o.junit != "" {
		if err := writeJUnit(o.junit, dir, reports, took); err != nil {
			return err
		}
	}
	if err := printScenarioReports(out, reports, o.format, took); err != nil {
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
	r := scenarioReport{File: oc.File, Name: oc.Scenario.Name, Passed: oc.Passed(), Problems: slices.Clone(oc.Mismatches), Seconds: oc.Took.Seconds()}
	if oc.Err != nil {
		r.Problems = append(r.Problems, oc.Err.Error())
		return r
	}
	r.Status, r.ExitCode = string(oc.Result.Status), oc.Result.ExitCode
	r.output = oc.Result.OutputHead + oc.Result.OutputTail
	if r.Problems == nil {
		r.Problems = []string{}
	}
	return r
}

// printScenarioReports prints, like pytest, one line per scenario, then
// the problems of each failed one, then a summary line.
func printScenarioReports(w io.Writer, reports []scenarioReport, f outputFormat, took time.Duration) error {
	if f.structured() {
		return f.print(w, map[string]any{"scenarios": reports})
	}
	t := newTable(w)
	fmt.Fprintln(t, "SCENARIO\tSTATUS\tPROBLEMS")
	passed := 0
	for _, r := range reports {
		verdict := "pass"
		if r.Passed {
			passed++
		} else {
			verdict = "FAIL"
		}
		if r.Status != "" {
			verdict += " (" + r.Status + ")"
		}
		problems := strings.Join(r.Problems, "; ")
		if problems == "" {
			problems = "-"
		}
		printf(t, "%s\t%s\t%s\n", filepath.Base(r.File), verdict, oneLineText(problems))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	for _, r := range reports {
		if r.Passed {
			continue
		}
		printf(w, "\n____ %s ____\n", filepath.Base(r.File))
		if r.Name != "" {
			printf(w, "%s\n", r.Name)
		}
		for _, p := range r.Problems {
			printf(w, "  %s\n", p)
		}
		if r.output != "" {
			printf(w, "  --- output ---\n")
			for _, l := range strings.Split(strings.TrimRight(r.output, "\n"), "\n") {
				printf(w, "  | %s\n", l)
			}
		}
	}
	var parts []string
	if n := len(reports) - passed; n > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", n))
	}
	parts = append(parts, fmt.Sprintf("%d passed", passed))
	printf(w, "==== %s in %.2fs ====\n", strings.Join(parts, ", "), took.Seconds())
	return nil
}

func oneLineText(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

// junitSuites is the JUnit XML report's root: one suite, the scenario
// directory, with one test case per scenario file.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Tests   int          `xml:"tests,attr"`
	Fail    int          `xml:"failures,attr"`
	Errors  int          `xml:"errors,attr"`
	Time    string       `xml:"time,attr"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// writeJUnit writes the JUnit XML report to file.
func writeJUnit(file, dir string, reports []scenarioReport, took time.Duration) error {
	suite := junitSuite{Name: filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir), Tests: len(reports),
		Time: fmt.Sprintf("%.3f", took.Seconds()), Timestamp: time.Now().UTC().Format(time.RFC3339)}
	for _, r := range reports {
		c := junitCase{Name: filepath.Base(r.File), ClassName: suite.Name, Time: fmt.Sprintf("%.3f", r.Seconds), SystemOut: r.output}
		msg := strings.Join(r.Problems, "; ")
		switch {
		case r.Passed:
		case r.Status == "":
			suite.Errors++
			c.Error = &junitMessage{Message: msg, Type: "scenario-error", Text: strings.Join(r.Problems, "\n")}
		default:
			suite.Failures++
			c.Failure = &junitMessage{Message: msg, Type: "expectation", Text: strings.Join(r.Problems, "\n")}
		}
		suite.Cases = append(suite.Cases, c)
	}
	doc := junitSuites{Tests: suite.Tests, Fail: suite.Failures, Errors: suite.Errors, Time: suite.Time, Suites: []junitSuite{suite}}
	data, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("junit report: %w", err)
	}
	data = append([]byte(xml.Header), append(data, '\n')...)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return fmt.Errorf("junit report: %w", err)
	}
	return nil
}
