package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/store/localruns"
	"github.com/sre-tools/deployer/syncer"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/manifest"
)

// runsScanned bounds how many of each repo's newest runs the lookup reads.
const runsScanned = 200

// recordedOutputs asks the daemon for the newest run at commit in which
// every step that step runs after succeeded for instance, and returns their
// outputs merged in the manifest's order (a later dependency's key wins, as
// in the daemon) with the run's id. It is how `step run` checks that the
// dependencies succeeded at this commit.
func recordedOutputs(ctx context.Context, c *api.Client, commit, instance string, step manifest.Step) (map[string]string, uint64, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, 0, err
	}
	deps := make([]string, len(step.After))
	for i, d := range step.After {
		deps[i] = string(d)
	}
	var ranHere []uint64
	for _, repo := range st.Repos {
		runs, err := c.Runs(ctx, repo.Name, runsScanned)
		if err != nil {
			return nil, 0, err
		}
		for _, r := range runs { // newest first
			if !runHasInstance(r, instance, commit) {
				continue
			}
			full, err := c.Run(ctx, r.ID)
			if err != nil {
				return nil, 0, err
			}
			ranHere = append(ranHere, r.ID)
			if out, ok := depOutputs(full, instance, deps); ok {
				return out, r.ID, nil
			}
		}
	}
	if len(ranHere) == 0 {
		return nil, 0, usageErrorf("step %s runs after %s: the daemon (%s) has no run of %s at commit %s; run the dependencies first (deployer sync), give their outputs with --outputs key=value,... (--outputs= when they have none), or run a scenario exported with deployer runs export",
			step.Name, strings.Join(deps, ", "), st.Host, instance, shortID(commit))
	}
	return nil, 0, usageErrorf("step %s runs after %s: no run of %s at commit %s (runs %s) has them all succeeded; fix and retry them on the daemon, or give their outputs with --outputs key=value,...",
		step.Name, strings.Join(deps, ", "), instance, shortID(commit), joinIDs(ranHere))
}

// runHasInstance reports whether run r ran instance at commit (the
// instance's own commit when the run records one: a deployment's instance
// runs at the commit of its edit).
func runHasInstance(r api.Run, instance, commit string) bool {
	for _, in := range r.Instances {
		if in.Name == instance {
			at := r.Commit
			if in.Commit != "" {
				at = in.Commit
			}
			return at == commit
		}
	}
	return false
}

// depOutputs merges the outputs of deps' succeeded attempts for instance in
// run r; ok is false when one of them has no succeeded attempt.
func depOutputs(r api.Run, instance string, deps []string) (map[string]string, bool) {
	out := map[string]string{}
	for _, d := range deps {
		var found *api.StepResult
		for i := range r.Steps {
			s := &r.Steps[i]
			if s.Instance == instance && s.Step == d && s.Status == string(deployer.StepSucceeded) {
				found = s
			}
		}
		if found == nil {
			return nil, false
		}
		maps.Copy(out, found.Outputs)
	}
	return out, true
}

func joinIDs(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}

// checkoutID is what the local state knows a checkout by: its remote URL
// (credentials removed; "file://" and its path when it has no remote) and
// its HEAD commit ("local" when it is not a git checkout).
type checkoutID struct {
	dir    string
	url    string // the remote's URL, "" when none
	key    string
	commit string
}

// identify reads DIR's remote (origin, else the first) and HEAD, without
// the git CLI.
func identify(dir string) checkoutID {
	c := checkoutID{dir: dir, commit: localCommit(dir), key: "file://" + filepath.ToSlash(dir)}
	if u, err := syncer.LocalRemote(dir); err == nil && u != "" {
		c.url, c.key = u, u
	}
	return c
}

// sameRemote reports whether two remote URLs name the same repository
// (ignoring credentials, a trailing slash and .git).
func sameRemote(a, b string) bool {
	norm := func(u string) string {
		u = strings.TrimSuffix(strings.TrimSuffix(syncer.RedactURL(u), "/"), ".git")
		return strings.TrimPrefix(u, "file://")
	}
	return norm(a) == norm(b)
}

// stepRunsOptions are the inputs of `deployer step runs`.
type stepRunsOptions struct {
	instance, step string
	limit          int
	allCommits     bool
}

func newStepRunsCmd(g *globalOptions) *cobra.Command {
	o := &stepRunsOptions{}
	cmd := &cobra.Command{
		Use:   "runs [DIR]",
		Short: "List the local attempts of deployer step run",
		Long: `List, newest first, the attempts deployer step run recorded in the local
state file (the user's cache directory: deployer/local.db): their commit,
instance, step, status, exit code, duration and outputs. With DIR, only the
attempts of its repository (by remote URL) at its HEAD (--all-commits: at
any commit).

Exit status: 0 listed (possibly none), 1 error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			path, err := localruns.DefaultPath()
			if err != nil {
				return err
			}
			filter := localruns.Filter{Instance: o.instance, Step: o.step, Limit: o.limit}
			if len(args) == 1 {
				dir, err := absCheckout(args[0])
				if err != nil {
					return err
				}
				c := identify(dir)
				filter.Remote = c.key
				if !o.allCommits {
					filter.Commit = c.commit
				}
			}
			store := localruns.New(path)
			as, err := store.List(filter)
			if err != nil {
				return err
			}
			if len(as) == 0 && filter.Commit != "" && !f.structured() {
				other := filter
				other.Commit, other.Limit = "", 0
				if all, err := store.List(other); err == nil && len(all) > 0 {
					commits := map[string]bool{}
					for _, a := range all {
						commits[a.Commit] = true
					}
					printf(cmd.OutOrStdout(), "no local attempts at %s (this checkout's HEAD); %d at %d other commit(s) of this repository: deployer step runs %s --all-commits\n",
						shortID(filter.Commit), len(all), len(commits), args[0])
					return nil
				}
			}
			return printLocalAttempts(cmd.OutOrStdout(), as, f, path)
		},
	}
	cmd.Flags().StringVar(&o.instance, "instance", "", "only this instance's attempts")
	cmd.Flags().StringVar(&o.step, "step", "", "only this step's attempts")
	cmd.Flags().IntVar(&o.limit, "limit", 50, "show at most this many (0: all)")
	cmd.Flags().BoolVar(&o.allCommits, "all-commits", false, "with DIR: attempts at every commit, not only its HEAD")
	return cmd
}

func printLocalAttempts(w io.Writer, as []localruns.Attempt, f outputFormat, path string) error {
	if f.structured() {
		if as == nil {
			as = []localruns.Attempt{}
		}
		return f.print(w, map[string]any{"file": path, "attempts": as})
	}
	if len(as) == 0 {
		printf(w, "no local attempts recorded (%s)\n", path)
		return nil
	}
	t := newTable(w)
	fmt.Fprintln(t, "#\tSTARTED\tCOMMIT\tINSTANCE\tSTEP\tSTATUS\tEXIT\tTOOK\tOUTPUTS")
	for _, a := range as {
		outs := make([]string, 0, len(a.Outputs))
		for _, k := range slices.Sorted(maps.Keys(a.Outputs)) {
			outs = append(outs, k+"="+a.Outputs[k])
		}
		o := strings.Join(outs, ",")
		if o == "" {
			o = "-"
		}
		status := a.Status
		switch {
		case a.FromScenario || a.Scenario != "":
			status += " (scenario)"
		case a.InstanceEdited:
			status += " (edited file)"
		}
		printf(t, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.Seq, a.Started.Local().Format("2006-01-02 15:04:05"), shortID(a.Commit),
			a.Instance, a.Step, status, a.ExitCode, (time.Duration(a.DurationMS) * time.Millisecond).String(), oneLineText(o))
	}
	return t.Flush()
}
