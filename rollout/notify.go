package rollout

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/notify"
)

// A rollout's notifications are derived from its record: its start, each
// wave that ended (in the attempt it ended in: a retry re-sends none for
// a wave it does not run again), a pause, a resume, a retry, a failed
// gate, its outcome; each is sent once (Rollout.Notified), also across a
// restart, where one sent just before a crash may be sent again.

type notice struct {
	key  string
	kind notify.EventKind
	ev   notify.FleetEvent
}

// notifyDue sends rollout id's notifications not sent yet.
func (c *Coordinator) notifyDue(id string) {
	if c.opts.Notify == nil {
		return
	}
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	r, err := c.Get(id)
	if err != nil {
		return
	}
	var sent []string
	for _, n := range notices(r) {
		if slices.Contains(r.Notified, n.key) {
			continue
		}
		if err := c.opts.Notify(n.kind, n.ev); err != nil {
			c.log.Error().Err(err).Str("rollout", id).Str("notification", n.key).Msg("queue a rollout notification")
			break
		}
		sent = append(sent, n.key)
	}
	if len(sent) == 0 {
		return
	}
	if _, err := c.update(id, func(r *api.Rollout) error {
		r.Notified = append(r.Notified, sent...)
		return nil
	}); err != nil {
		c.log.Error().Err(err).Str("rollout", id).Msg("record the rollout's notifications")
	}
}

// notices are the notifications rollout r's record calls for.
func notices(r api.Rollout) []notice {
	base := notify.FleetEvent{
		ID: r.ID, Repo: r.Request.Repo, State: api.RolloutRunning, Waves: len(r.Waves), HostCount: len(r.Hosts),
		Select: r.Request.Request.Select, Where: r.Request.Request.Where, Reason: r.Request.Request.Reason,
		Ticket: r.Request.Request.Ticket, Who: r.Who, Follow: "deployer fleet show " + r.ID, Rollout: true,
		DryRun: r.Request.Request.DryRun,
	}
	out := []notice{{key: "started", kind: notify.EventFleetStarted, ev: base}}
	for _, w := range r.Waves {
		if w.State != api.StepDone {
			continue
		}
		ev := base
		ev.Wave, ev.Canary = w.Index, w.Canary
		var hosts []api.RolloutHostState
		for _, h := range r.Hosts {
			if h.Wave == w.Index {
				hosts = append(hosts, h)
			}
		}
		ev.Hosts, ev.Counts, ev.Lines = summarize(hosts, false)
		out = append(out, notice{key: fmt.Sprintf("wave-%d-a%d", w.Index, w.Attempt), kind: notify.EventFleetWave, ev: ev})
	}
	if r.Pauses > 0 {
		ev := base
		ev.State, ev.Detail = api.RolloutPaused, r.PauseNote
		out = append(out, notice{key: fmt.Sprintf("paused-%d", r.Pauses), kind: notify.EventFleetPaused, ev: ev})
	}
	if r.Attempt > 0 {
		ev := base
		ev.Detail = r.RetryNote
		out = append(out, notice{key: fmt.Sprintf("retried-a%d", r.Attempt), kind: notify.EventFleetRetried, ev: ev})
	}
	if r.Resumes > 0 {
		ev := base
		ev.Detail = r.ResumeNote
		out = append(out, notice{key: fmt.Sprintf("resumed-%d", r.Resumes), kind: notify.EventFleetResumed, ev: ev})
	}
	for _, w := range r.Waves {
		for _, g := range w.Gates {
			if g.State != api.StepFailed {
				continue
			}
			ev := base
			ev.Wave, ev.Detail = w.Index, fmt.Sprintf("gate %s before wave %d failed: %s", g.Kind, w.Index, g.Evidence)
			out = append(out, notice{key: fmt.Sprintf("gate-%d-%s-a%d", w.Index, g.Kind, r.Attempt), kind: notify.EventFleetGateFailed, ev: ev})
		}
	}
	if r.Finished != nil {
		ev := base
		ev.State, ev.Stopped = r.State, r.Stopped
		ev.Hosts, ev.Counts, ev.Lines = summarize(r.Hosts, true)
		out = append(out, notice{key: fmt.Sprintf("ended-%s-a%d", r.State, r.Attempt), kind: notify.EventFleetEnded, ev: ev})
	}
	return out
}

// summarize counts hosts per state and instances per status, with a line
// per host (only the hosts that did not succeed when notOK).
func summarize(hosts []api.RolloutHostState, notOK bool) (map[string]int, map[string]int, []string) {
	states, counts := map[string]int{}, map[string]int{}
	var lines []string
	for _, h := range hosts {
		states[h.State]++
		for st, n := range h.Counts {
			counts[st] += n
		}
		if notOK && h.State == string(fleet.HostSucceeded) {
			continue
		}
		line := fmt.Sprintf("%s [%s] %s", h.Host.Name, h.Host.Datacenter, h.State)
		var detail []string
		if h.Deployment != "" {
			detail = append(detail, fmt.Sprintf("deployment %s %s", h.Deployment, h.DeploymentState))
		}
		if h.Error != "" {
			detail = append(detail, firstLine(h.Error))
		}
		if len(detail) > 0 {
			line += ": " + strings.Join(detail, "; ")
		}
		lines = append(lines, line)
	}
	return states, counts, lines
}
