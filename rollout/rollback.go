package rollout

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
)

// A rollback is a new rollout over the same hosts, waves and gates whose
// host deployments restore what the rolled back rollout's deployment
// changed on each host (DeployRequest.Restore): the host daemon reads the
// previous values from its write-back journal and puts each back only
// where the value is still what the rollout set. An instance someone
// changed since is a conflict on its host; a host whose deployment
// restored everything else and has only such conflicts is "conflict" in
// the rollback: it does not stop the rollback (it is not failed), and the
// rollback ends failed, naming them.

// HostConflict is a rollback's host whose deployment restored what it
// could and left instances someone changed since (conflicts).
const HostConflict = "conflict"

// rollbackID is the id of rollout id's rollback.
func rollbackID(id string) string {
	if len(id)+len("-rollback") <= 64 {
		return id + "-rollback"
	}
	return ""
}

// rollback submits the rollback of ended rollout id; asked again, it
// answers the rollback already submitted.
func (c *Coordinator) rollback(ctx context.Context, id string, req api.RolloutActionRequest) (api.Rollout, error) {
	orig, err := c.Get(id)
	if err != nil {
		return api.Rollout{}, err
	}
	switch {
	case orig.Request.RollbackOf != "":
		return api.Rollout{}, invalid("rollout %s is a rollback of %s: roll it forward with a new rollout instead", id, orig.Request.RollbackOf)
	case orig.RolledBackBy != "":
		return c.Get(orig.RolledBackBy)
	case orig.Finished == nil:
		return api.Rollout{}, invalid("rollout %s is %s; cancel it first ('fleet cancel %s'), then roll it back", id, orig.State, id)
	}
	rr := orig.Request
	rr.Hosts, rr.Canary, rr.CanaryDC = reached(orig)
	if len(rr.Hosts) == 0 {
		return api.Rollout{}, invalid("rollout %s got no deployment on any host: nothing to roll back", id)
	}
	var leftOut []string
	for _, h := range orig.Hosts {
		if !slices.ContainsFunc(rr.Hosts, func(x api.RolloutHost) bool { return x.Name == h.Host.Name }) {
			leftOut = append(leftOut, h.Host.Name)
		}
	}
	rr.ID = rollbackID(id)
	rr.RollbackOf = id
	rr.Request.Set, rr.Request.Text = nil, nil
	rr.Request.Restore = id
	rr.Request.Fleet = ""
	rr.Request.Who = whoOr(req.Who)
	rr.Request.Reason = "rollback of " + id
	if req.Reason != "" {
		rr.Request.Reason += ": " + req.Reason
	}
	rb, err := c.Submit(ctx, rr)
	if err != nil {
		return api.Rollout{}, err
	}
	if rb.New && len(leftOut) > 0 {
		if rb, err = c.update(rb.ID, func(r *api.Rollout) error {
			c.event(r, "left out %d host(s) that %s never deployed (no deployment there: nothing to restore): %s", len(leftOut), id, strings.Join(leftOut, ", "))
			return nil
		}); err != nil {
			return api.Rollout{}, err
		}
		rb.New = true // the answer to the submission that created it
	}
	if _, err := c.update(id, func(r *api.Rollout) error {
		if r.RolledBackBy == "" {
			r.RolledBackBy = rb.ID
			c.event(r, "rollback %s submitted by %s%s", rb.ID, whoOr(req.Who), reasonOf(req.Reason))
		}
		return nil
	}); err != nil {
		return api.Rollout{}, err
	}
	return rb, nil
}

// reached are the hosts of rollout r that got a deployment (the ones a
// rollback restores), with r's canary and canary datacenter when they are
// among them.
func reached(r api.Rollout) (hosts []api.RolloutHost, canary, canaryDC string) {
	var canaries []string
	for _, h := range r.Hosts {
		if h.Deployment == "" {
			continue
		}
		hosts = append(hosts, h.Host)
		if slices.Contains(fleet.CanaryHosts(r.Request.Canary), h.Host.Name) {
			canaries = append(canaries, h.Host.Name)
		}
		if h.Host.Datacenter == r.Request.CanaryDC {
			canaryDC = r.Request.CanaryDC
		}
	}
	return hosts, strings.Join(canaries, ","), canaryDC
}

func reasonOf(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

// restoreConflicts are d's instances in conflict, each "NAME: why".
func restoreConflicts(d api.Deployment) []string {
	var out []string
	for _, in := range d.Instances {
		if in.Status == "conflict" {
			out = append(out, in.Name+": "+firstLine(in.Reason))
		}
	}
	return out
}

// onlyConflicts says whether d's instances are all succeeded or conflict.
func onlyConflicts(d api.Deployment) bool {
	n := 0
	for _, in := range d.Instances {
		switch in.Status {
		case "succeeded":
		case "conflict":
			n++
		default:
			return false
		}
	}
	return n > 0
}

// conflictsWhy is why a rollback ended failed: its hosts in conflict.
func conflictsWhy(r api.Rollout) string {
	var hosts []string
	n := 0
	for _, h := range r.Hosts {
		if h.State == HostConflict {
			hosts = append(hosts, h.Host.Name)
			n += len(h.Conflicts)
		}
	}
	if len(hosts) == 0 {
		return ""
	}
	return fmt.Sprintf("%d instance(s) on %s changed since %s: not restored (conflict; see the hosts' conflicts)", n, strings.Join(hosts, ", "), r.Request.RollbackOf)
}
