package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sre-tools/deployer/api"
)

// The fleet demo's second half: a rollout kept and driven by a daemon (the
// canary cluster's, as coordinator) to the clusters that succeeded, web
// 4.4.0 with a bake and an approval gate before its second wave; then its
// rollback, through the same waves and gates, which restores 4.3.0
// everywhere except on the instance carol pinned by hand meanwhile (a
// conflict, with both values).

const (
	fleetDemoNext   = "4.4.0"
	fleetDemoPinned = "4.4.1-carol"
)

// rolloutAct plays the rollout and its rollback, and checks both.
func (fd *fleetDemo) rolloutAct(ctx context.Context) error {
	coord := fd.clusters[0]
	var hosts []api.RolloutHost
	var healthy []*fleetCluster
	for i, c := range fd.clusters {
		if i == fd.frozen || i == fd.conflict {
			continue
		}
		healthy = append(healthy, c)
		hosts = append(hosts, api.RolloutHost{Name: c.host.Name, Datacenter: c.host.Datacenter, URL: c.host.URL})
	}
	id := "r-web-" + fleetDemoNext
	fd.say("\n== alice rolls out web %s as a rollout that %s's daemon keeps and drives: the %d healthy clusters, a bake and an approval before wave 2 ==", fleetDemoNext, coord.host.Name, len(hosts))
	fd.say("deployer fleet deploy --coordinator %s ... --set '/instance/app@version=%s' --canary %s --waves 1,100%% --bake 300ms --approve --id %s", coord.host.Name, fleetDemoNext, coord.host.Name, id)
	ro, err := coord.client.SubmitRollout(ctx, api.RolloutRequest{ID: id, Hosts: hosts, Repo: fleetDemoRepo, Canary: coord.host.Name, Waves: "1,100%",
		Bake: "300ms", Approve: true, Poll: "100ms",
		Request: api.DeployRequest{Select: "instances/*.xml", Set: []string{"/instance/app@version=" + fleetDemoNext}, Reason: "web " + fleetDemoNext, Who: "alice"}})
	if err != nil {
		return fmt.Errorf("submit rollout: %w", err)
	}
	if _, err := fd.approveWhenWaiting(ctx, coord, ro.ID, "bob", "canary dashboards green"); err != nil {
		return err
	}
	end, err := fd.waitRollout(ctx, coord, ro.ID)
	if err != nil {
		return err
	}
	fd.printRollout(end)
	if end.State != api.RolloutSucceeded {
		return fmt.Errorf("rollout %s: %s, want succeeded (%s)", end.ID, end.State, end.Stopped)
	}
	// carol pins one instance of the second cluster by hand
	pinned := healthy[1]
	pinnedIn := pinned.instances[0]
	carol, err := cloneOperator(ctx, filepath.Join(fd.dir, "carol"), pinned.remote, "carol")
	if err != nil {
		return err
	}
	file := "instances/" + pinnedIn + ".xml"
	if err := carol.replace(file, `version="`+fleetDemoNext+`"`, `version="`+fleetDemoPinned+`"`); err != nil {
		return err
	}
	if _, err := carol.commitAndPush(ctx, pinnedIn+": pin web "+fleetDemoPinned); err != nil {
		return err
	}
	if err := fd.waitFile(ctx, pinned, file, fleetDemoPinned); err != nil {
		return err
	}
	fd.say("\nMeanwhile on %s, carol pinned %s to web %s by hand.", pinned.host.Name, pinnedIn, fleetDemoPinned)
	fd.say("\n== web %s leaks memory: alice rolls it back (deployer fleet rollback %s): the same waves and gates, each host restoring its previous values from its journal ==", fleetDemoNext, id)
	rb, err := coord.client.RolloutAction(ctx, id, "rollback", api.RolloutActionRequest{Who: "alice", Reason: "web " + fleetDemoNext + " leaks memory"})
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	if _, err := fd.approveWhenWaiting(ctx, coord, rb.ID, "bob", "canary back on "+fleetDemoVersion); err != nil {
		return err
	}
	rend, err := fd.waitRollout(ctx, coord, rb.ID)
	if err != nil {
		return err
	}
	fd.printRollout(rend)
	return fd.checkRollback(rend, healthy, pinned, pinnedIn)
}

// approveWhenWaiting waits for rollout id's approve gate and approves it.
func (fd *fleetDemo) approveWhenWaiting(ctx context.Context, coord *fleetCluster, id, who, why string) (api.Rollout, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ro, err := coord.client.Rollout(ctx, id)
		if err != nil {
			return ro, err
		}
		if ro.Finished != nil {
			return ro, fmt.Errorf("rollout %s ended %s before its approval: %s", id, ro.State, ro.Stopped)
		}
		for _, w := range ro.Waves {
			for _, g := range w.Gates {
				if g.Kind == api.GateApprove && g.State == api.StepWaiting {
					fd.say("  %s: the canary is done and baked; wave %d waits for an approval. %s approves: deployer fleet approve %s --reason '%s'", id, w.Index, who, id, why)
					return coord.client.RolloutAction(ctx, id, "approve", api.RolloutActionRequest{Who: who, Reason: why})
				}
			}
		}
		select {
		case <-ctx.Done():
			return ro, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return api.Rollout{}, fmt.Errorf("rollout %s: its approve gate never waited", id)
}

// waitRollout waits for rollout id to end.
func (fd *fleetDemo) waitRollout(ctx context.Context, coord *fleetCluster, id string) (api.Rollout, error) {
	return fd.pollRollout(ctx, coord, id, nil)
}

// followRollout waits for rollout id to end and prints its events as they
// come, as fleet deploy --wait does.
func (fd *fleetDemo) followRollout(ctx context.Context, coord *fleetCluster, id string) (api.Rollout, error) {
	printed := 0
	return fd.pollRollout(ctx, coord, id, func(ro api.Rollout) {
		for ; printed < len(ro.Events); printed++ {
			e := ro.Events[printed]
			fd.say("%s %s", e.At.Local().Format("15:04:05"), e.What)
		}
	})
}

func (fd *fleetDemo) pollRollout(ctx context.Context, coord *fleetCluster, id string, each func(api.Rollout)) (api.Rollout, error) {
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		ro, err := coord.client.Rollout(ctx, id)
		if err != nil {
			return ro, err
		}
		if each != nil {
			each(ro)
		}
		if ro.Finished != nil {
			return ro, nil
		}
		select {
		case <-ctx.Done():
			return ro, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return api.Rollout{}, fmt.Errorf("rollout %s did not end within 2 minutes", id)
}

// waitFile waits until c's daemon has file with want in its checkout.
func (fd *fleetDemo) waitFile(ctx context.Context, c *fleetCluster, file, want string) error {
	path := filepath.Join(fd.dir, "state", c.host.Name, "checkouts", fleetDemoRepo, filepath.FromSlash(file))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: %s never had %q", c.host.Name, file, want)
}

// printRollout prints what `fleet show` prints first: the outcome, the
// waves with their gates and evidence, the hosts that did not succeed and
// the conflicts.
func (fd *fleetDemo) printRollout(ro api.Rollout) {
	counts := map[string]int{}
	for _, h := range ro.Hosts {
		counts[h.State]++
	}
	var parts []string
	for _, st := range []string{"succeeded", "conflict", "failed", "unreachable", "no-match", "not-started"} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	fd.say("\ndeployer fleet show %s", ro.ID)
	fd.say("rollout %s: %s; %s of %d host(s)", ro.ID, ro.State, strings.Join(parts, ", "), len(ro.Hosts))
	if ro.Stopped != "" {
		fd.say("stopped: %s", ro.Stopped)
	}
	t := newTable(fd.Out)
	fmt.Fprintln(t, "WAVE\tSTATE\tHOSTS\tGATE\tEVIDENCE")
	for _, w := range ro.Waves {
		idx := fmt.Sprintf("%d/%d", w.Index, len(ro.Waves))
		if w.Canary {
			idx += " (canary)"
		}
		if len(w.Gates) == 0 {
			fmt.Fprintf(t, "%s\t%s\t%d\t-\t-\n", idx, w.State, len(w.Hosts))
		}
		for gi, g := range w.Gates {
			if gi > 0 {
				idx = ""
			}
			fmt.Fprintf(t, "%s\t%s\t%d\t%s %s\t%s\n", idx, w.State, len(w.Hosts), g.Kind, g.State, dash(g.Evidence))
		}
	}
	_ = t.Flush()
	for _, h := range ro.Hosts {
		for _, c := range h.Conflicts {
			fd.say("conflict on %s: %s", h.Host.Name, c)
		}
	}
}

// checkRollback says what did not end as described: every healthy host
// restored, but the one carol pinned, whose instance keeps her value.
func (fd *fleetDemo) checkRollback(ro api.Rollout, healthy []*fleetCluster, pinned *fleetCluster, pinnedIn string) error {
	var problems []string
	if ro.State != api.RolloutFailed || !strings.Contains(ro.Stopped, "changed since") {
		problems = append(problems, fmt.Sprintf("rollback %s, stopped %q: want failed for one conflict", ro.State, ro.Stopped))
	}
	for _, h := range ro.Hosts {
		want := "succeeded"
		if h.Host.Name == pinned.host.Name {
			want = "conflict"
		}
		if h.State != want {
			problems = append(problems, fmt.Sprintf("%s: %s, want %s", h.Host.Name, h.State, want))
		}
	}
	for _, c := range healthy {
		for _, in := range c.instances {
			want := `version="` + fleetDemoVersion + `"`
			if c == pinned && in == pinnedIn {
				want = `version="` + fleetDemoPinned + `"`
			}
			b, err := os.ReadFile(filepath.Join(fd.dir, "state", c.host.Name, "checkouts", fleetDemoRepo, "instances", in+".xml"))
			if err != nil || !strings.Contains(string(b), want) {
				problems = append(problems, fmt.Sprintf("%s: %s lacks %s", c.host.Name, in, want))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("the rollback did not end as described:\n  %s", strings.Join(problems, "\n  "))
	}
	fd.say("\nEvery instance of the %d clusters is back on web %s, but %s on %s: carol's %s is left alone (a conflict with both values).", len(healthy), fleetDemoVersion, pinnedIn, pinned.host.Name, fleetDemoPinned)
	return nil
}
