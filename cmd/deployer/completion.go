package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/manifest"
)

// Dynamic shell completion. Repos, run ids, intervention ids, deployment
// ids, instances and steps are asked of the daemon (--socket, --remote and
// the client config, as every command) within completionTimeout; when it
// does not answer in time, nothing is offered and the shell falls back to
// nothing rather than to file names. The instances and steps of `step run`
// come from the local checkout's deployer.xml instead.

// completionTimeout bounds each question completion asks the daemon: a
// tab press must not hang on a daemon that is down or far away.
const completionTimeout = time.Second

const noFiles = cobra.ShellCompDirectiveNoFileComp

// completeWith asks the daemon through ask, with the completion timeout.
// Any error (no daemon, no token, timeout) offers nothing.
func (g *globalOptions) completeWith(cmd *cobra.Command, ask func(ctx context.Context, c *api.Client) ([]string, error)) ([]string, cobra.ShellCompDirective) {
	c, err := g.client()
	if err != nil {
		return nil, noFiles
	}
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, completionTimeout)
	defer cancel()
	out, err := ask(ctx, c)
	if err != nil {
		return nil, noFiles
	}
	return out, noFiles
}

// completionEntry is a candidate with its description, tab-separated as
// cobra wants; a value a shell could not take as it is (whitespace,
// control characters) is left out, and the description is escaped.
func completionEntry(value, desc string) (string, bool) {
	if value == "" || deployer.Escape(value) != value || strings.ContainsAny(value, " \t") {
		return "", false
	}
	if desc == "" {
		return value, true
	}
	return value + "\t" + strings.ReplaceAll(deployer.Escape(desc), `\t`, " "), true
}

func appendEntry(out []string, value, desc string) []string {
	if e, ok := completionEntry(value, desc); ok {
		out = append(out, e)
	}
	return out
}

// completeRepoArg completes the first argument with the daemon's repos.
func (g *globalOptions) completeRepoArg(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	return g.completeRepos(cmd)
}

func (g *globalOptions) completeRepos(cmd *cobra.Command) ([]string, cobra.ShellCompDirective) {
	return g.completeWith(cmd, func(ctx context.Context, c *api.Client) ([]string, error) {
		st, err := c.Status(ctx)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, r := range st.Repos {
			out = appendEntry(out, r.Name, fmt.Sprintf("%s, %s", r.Branch, r.State))
		}
		return out, nil
	})
}

// completeRunArg completes the first argument with recent run ids, newest
// first.
func (g *globalOptions) completeRunArg(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	return g.completeWith(cmd, func(ctx context.Context, c *api.Client) ([]string, error) {
		runs, err := c.Runs(ctx, "", 50)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, r := range runs {
			out = appendEntry(out, strconv.FormatUint(r.ID, 10), fmt.Sprintf("%s %s %s %s", r.Repo, triggerKinds(r.Triggers), shortID(r.Commit), r.Status))
		}
		return out, nil
	})
}

// completeInterventionArg completes the first argument with the ids of
// the interventions in one of states (every one when none is given).
func (g *globalOptions) completeInterventionArg(states ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	all := len(states) == 0 || slices.Contains(states, deployer.InterventionResolved)
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, noFiles
		}
		return g.completeWith(cmd, func(ctx context.Context, c *api.Client) ([]string, error) {
			ivs, err := c.Interventions(ctx, all)
			if err != nil {
				return nil, err
			}
			var out []string
			for _, iv := range ivs {
				if len(states) > 0 && !slices.Contains(states, iv.State) {
					continue
				}
				where := iv.Repo
				if iv.Instance != "" {
					where += "/" + iv.Instance
				}
				out = appendEntry(out, strconv.FormatUint(iv.ID, 10), fmt.Sprintf("%s %s %s", iv.Kind, where, iv.State))
			}
			return out, nil
		})
	}
}

// completeDeploymentArg completes the first argument with the ids of the
// deployments in one of states (every one when none is given), newest
// first.
func (g *globalOptions) completeDeploymentArg(states ...deployer.DeploymentState) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, noFiles
		}
		return g.completeWith(cmd, func(ctx context.Context, c *api.Client) ([]string, error) {
			ds, err := c.Deployments(ctx)
			if err != nil {
				return nil, err
			}
			var out []string
			for _, d := range ds {
				if len(states) > 0 && !slices.Contains(states, deployer.DeploymentState(d.State)) {
					continue
				}
				out = appendEntry(out, d.ID, fmt.Sprintf("%s %s %s", d.Repo, d.State, d.Request.Select))
			}
			return out, nil
		})
	}
}

// completeRunInstances completes --instance with the instances of the run
// given as the first argument.
func (g *globalOptions) completeRunInstances(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	id, ok := runIDArg(args)
	if !ok {
		return nil, noFiles
	}
	return g.completeWith(cmd, func(ctx context.Context, c *api.Client) ([]string, error) {
		run, err := c.Run(ctx, id)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, in := range run.Instances {
			out = appendEntry(out, in.Name, in.File+" "+in.Status)
		}
		return out, nil
	})
}

// completeRunSteps completes a step flag with the steps the run given as
// the first argument ran (for --instance's instance when it is given).
func (g *globalOptions) completeRunSteps(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	id, ok := runIDArg(args)
	if !ok {
		return nil, noFiles
	}
	instance := ""
	if f := cmd.Flags().Lookup("instance"); f != nil {
		instance = f.Value.String()
	}
	return g.completeWith(cmd, func(ctx context.Context, c *api.Client) ([]string, error) {
		run, err := c.Run(ctx, id)
		if err != nil {
			return nil, err
		}
		return stepEntries(run.Steps, instance), nil
	})
}

// stepRuns is how many of a repo's recent runs completion reads one by one
// for their steps (a list of runs carries none).
const stepRuns = 5

// completeRepoSteps completes deploy's --steps with the steps that the
// repo's recent runs ran: the list of runs carries no steps, so the newest
// runs that planned an instance are read one by one, a few at most.
func (g *globalOptions) completeRepoSteps(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, noFiles
	}
	return g.completeWith(cmd, func(ctx context.Context, c *api.Client) ([]string, error) {
		runs, err := c.Runs(ctx, args[0], 20)
		if err != nil {
			return nil, err
		}
		var steps []api.StepResult
		read := 0
		for _, r := range runs {
			if len(r.Steps) == 0 && len(r.Instances) > 0 && read < stepRuns {
				read++
				if full, err := c.Run(ctx, r.ID); err == nil {
					r = full
				}
			}
			steps = append(steps, r.Steps...)
		}
		return stepEntries(steps, ""), nil
	})
}

// completeRepoFlag completes a --repo flag with the daemon's repos.
func (g *globalOptions) completeRepoFlag(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	return g.completeRepos(cmd)
}

// completeInstanceArg completes the first argument with the instances the
// daemon's recent runs planned (of --repo's repo when it is given), each
// once, with its repo and file.
func (g *globalOptions) completeInstanceArg(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	repo := ""
	if f := cmd.Flags().Lookup("repo"); f != nil {
		repo = f.Value.String()
	}
	return g.completeWith(cmd, func(ctx context.Context, c *api.Client) ([]string, error) {
		runs, err := c.Runs(ctx, repo, 100)
		if err != nil {
			return nil, err
		}
		var out, seen []string
		for _, r := range runs {
			for _, in := range r.Instances {
				if slices.Contains(seen, in.Name) {
					continue
				}
				seen = append(seen, in.Name)
				out = appendEntry(out, in.Name, r.Repo+" "+in.File)
			}
		}
		return out, nil
	})
}

// completePlanArgs completes `plan [DIR [REV]]`: DIR is a directory; REV
// is left to the shell's own (nothing here: revisions are git's).
func completePlanArgs(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, cobra.ShellCompDirectiveFilterDirs
	}
	return nil, noFiles
}

// completeDirArg completes the first argument with directories.
func completeDirArg(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, cobra.ShellCompDirectiveFilterDirs
	}
	return nil, noFiles
}

// stepEntries is each step name once, in the order first seen.
func stepEntries(steps []api.StepResult, instance string) []string {
	var out, seen []string
	for _, s := range steps {
		if (instance != "" && s.Instance != instance) || slices.Contains(seen, s.Step) {
			continue
		}
		seen = append(seen, s.Step)
		out = appendEntry(out, s.Step, "")
	}
	return out
}

func runIDArg(args []string) (uint64, bool) {
	if len(args) == 0 {
		return 0, false
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	return id, err == nil
}

// completeStepRunArgs completes `step run DIR INSTANCE STEP`: DIR is a
// directory, INSTANCE and STEP come from DIR's deployer.xml (no daemon).
func completeStepRunArgs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return nil, cobra.ShellCompDirectiveFilterDirs
	case 1, 2:
		if f := cmd.Flags().Lookup("scenario"); f != nil && f.Value.String() != "" {
			return nil, noFiles
		}
	default:
		return nil, noFiles
	}
	var allow []string
	if f := cmd.Flags().Lookup("allow-step-dir"); f != nil {
		if v, err := cmd.Flags().GetStringSlice("allow-step-dir"); err == nil {
			allow = v
		}
	}
	dir := filepath.Clean(args[0])
	m, err := manifest.Load(dir, manifest.Options{AllowStepDirs: allow})
	if err != nil {
		return nil, noFiles
	}
	var out []string
	if len(args) == 1 {
		// An invalid instance file is left out; the valid ones are offered.
		ins, err := m.ListInstances(dir)
		if err != nil && !errors.As(err, new(*manifest.ProblemsError)) {
			return nil, noFiles
		}
		for _, in := range ins {
			out = appendEntry(out, string(in.Name), in.File)
		}
		return out, noFiles
	}
	for _, s := range m.Steps {
		out = appendEntry(out, string(s.Name), "")
	}
	return out, noFiles
}

// fixedCompletion offers a fixed list.
func fixedCompletion(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, noFiles
	}
}

// registerCompletions wires the completions above to the commands.
func (g *globalOptions) registerCompletions(root *cobra.Command) {
	type argFunc = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective)
	// ack takes an open, unacknowledged intervention; resolve any open
	// one; cancel a deployment that has not ended; retry one that ended
	// without succeeding.
	all := g.completeInterventionArg()
	unacked := g.completeInterventionArg(deployer.InterventionOpen)
	open := g.completeInterventionArg(deployer.InterventionOpen, deployer.InterventionAcknowledged)
	inFlight := g.completeDeploymentArg(deployer.DeploymentQueued, deployer.DeploymentRunning)
	retryable := g.completeDeploymentArg(deployer.DeploymentFailed, deployer.DeploymentCancelled, deployer.DeploymentBlocked)
	args := map[string]argFunc{
		"sync":                  g.completeRepoArg,
		"runs":                  g.completeRepoArg,
		"deploy":                g.completeRepoArg,
		"runs show":             g.completeRunArg,
		"runs export":           g.completeRunArg,
		"replay":                g.completeRunArg,
		"interventions show":    all,
		"interventions ack":     unacked,
		"interventions resolve": open,
		"deployments show":      g.completeDeploymentArg(),
		"deployments retry":     retryable,
		"deployments cancel":    inFlight,
		"step run":              completeStepRunArgs,
		"step test":             completeDirArg,
		"validate":              completeDirArg,
	}
	flags := map[string]map[string]argFunc{
		"replay":                {"instance": g.completeRunInstances, "from": g.completeRunSteps},
		"runs export":           {"instance": g.completeRunInstances, "step": g.completeRunSteps},
		"deploy":                {"steps": g.completeRepoSteps},
		"interventions resolve": {"take": fixedCompletion("ours", "theirs")},
	}
	find := func(path string) *cobra.Command {
		c, rest, err := root.Find(strings.Fields(path))
		if err != nil || len(rest) > 0 || c.CommandPath() != "deployer "+path {
			panic("completion for a command that does not exist: " + path)
		}
		return c
	}
	// history, diff and plan (issue 17's timeline commands) are wired when
	// they exist in this build, with the flags they have: `history
	// INSTANCE --repo NAME`, `diff RUN --instance I`, `plan [DIR [REV]]`.
	optional := map[string]argFunc{"history": g.completeInstanceArg, "diff": g.completeRunArg, "plan": completePlanArgs}
	optionalFlags := map[string]map[string]argFunc{
		"history": {"repo": g.completeRepoFlag},
		"diff":    {"instance": g.completeRunInstances},
	}
	for path, f := range optional {
		c, rest, err := root.Find(strings.Fields(path))
		if err != nil || len(rest) > 0 || c.CommandPath() != "deployer "+path {
			continue
		}
		args[path] = f
		for name, ff := range optionalFlags[path] {
			if c.Flags().Lookup(name) != nil {
				if flags[path] == nil {
					flags[path] = map[string]argFunc{}
				}
				flags[path][name] = ff
			}
		}
	}
	for path, f := range args {
		find(path).ValidArgsFunction = f
	}
	for path, fs := range flags {
		c := find(path)
		for name, f := range fs {
			if err := c.RegisterFlagCompletionFunc(name, f); err != nil {
				panic(err)
			}
		}
	}
	for _, path := range []string{"status", "interventions list", "deployments", "report", "bench", "daemon", "demo", "fleet deploy", "fleet status"} {
		find(path).ValidArgsFunction = cobra.NoFileCompletions
	}
	if err := root.RegisterFlagCompletionFunc("output", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		if cmd.Name() == "report" {
			return []string{"markdown", "json", "yaml", "html"}, noFiles
		}
		return []string{"table", "json", "yaml"}, noFiles
	}); err != nil {
		panic(err)
	}
}
