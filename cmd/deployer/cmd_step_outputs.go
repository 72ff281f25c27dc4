package main

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/manifest"
)

// runsScanned bounds how many of each repo's newest runs the lookup reads.
const runsScanned = 200

// recordedOutputs asks the daemon for the newest run at commit in which
// every step that step runs after succeeded for instance, and returns their
// outputs merged in the manifest's order (a later dependency's key wins, as
// in the daemon) with the run's id. It is how `step run` checks, as DESIGN
// asks, that the dependencies succeeded at this commit.
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
