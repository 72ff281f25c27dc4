package notify

import (
	"context"
	"fmt"
	"strings"
)

// Fleet event kinds: a fleet deployment's start, the end of each of its
// waves and its final outcome, sent by `deployer fleet deploy` (the CLI,
// not a daemon) to the Slack and webhook channels of the host config.
// Jira channels take none: a fleet's Jira issues are its tickets.
const (
	EventFleetStarted EventKind = "fleet-started"
	EventFleetWave    EventKind = "fleet-wave"
	EventFleetEnded   EventKind = "fleet-ended"
	// A coordinator's rollout also tells its pause, its resume and a gate
	// that failed (Detail: who and why; the gate's evidence).
	EventFleetPaused     EventKind = "fleet-paused"
	EventFleetResumed    EventKind = "fleet-resumed"
	EventFleetGateFailed EventKind = "fleet-gate-failed"
	// A retried rollout ('fleet retry --failed') tells what runs again
	// (Detail), once per retry.
	EventFleetRetried EventKind = "fleet-retried"
)

// IsFleet reports whether kind is a fleet event.
func (k EventKind) IsFleet() bool {
	switch k {
	case EventFleetStarted, EventFleetWave, EventFleetEnded, EventFleetPaused, EventFleetResumed, EventFleetGateFailed, EventFleetRetried:
		return true
	}
	return false
}

// FleetEvent is what a fleet notification says.
type FleetEvent struct {
	ID string `json:"id"`
	// Repo is the repo on every host, with {host} and {dc} as typed.
	Repo string `json:"repo"`
	// State is running (start and waves), or the outcome: succeeded,
	// failed, no-match or interrupted.
	State  string `json:"state"`
	Wave   int    `json:"wave,omitempty"` // the wave that ended
	Waves  int    `json:"waves"`          // waves planned
	Canary bool   `json:"canary,omitempty"`
	// Hosts counts hosts per state (succeeded, failed, ...): the wave's
	// for a wave, the fleet's otherwise; HostCount is how many hosts the
	// fleet has.
	Hosts     map[string]int `json:"hosts,omitempty"`
	HostCount int            `json:"host_count"`
	// Counts counts instances per status, as Hosts.
	Counts map[string]int `json:"counts,omitempty"`
	// Lines are one line per host of the wave, or per host that did not
	// succeed at the end: "fra-dep01 [fra] failed: deployment d…2 failed (1 failed)".
	Lines   []string `json:"lines,omitempty"`
	Stopped string   `json:"stopped,omitempty"` // why waves were left out
	Select  string   `json:"select,omitempty"`
	Where   string   `json:"where,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Ticket  string   `json:"ticket,omitempty"`
	Who     string   `json:"who,omitempty"`
	// Follow is the command that shows the fleet deployment:
	// deployer fleet status ID --fleet ...
	Follow string `json:"follow"`
	// Detail is a pause's, a resume's or a retry's who and why (and what
	// a retry runs again), a failed gate's kind and evidence.
	Detail string `json:"detail,omitempty"`
	// Rollout says a coordinator sent it (a rollout, not `fleet deploy`):
	// a Jira channel comments it on the rollout's issue (Ticket, else one
	// it files, labelled deployer-rollout-ID).
	Rollout bool `json:"rollout,omitempty"`
	// DryRun says the fleet deployment is a dry run (no host changed
	// anything): its titles say "(dry run)".
	DryRun bool `json:"dry_run,omitempty"`
}

// fleetTitle is a fleet event's one-line headline, "Fleet deployment ID
// ..." for every fleet event (a coordinator's rollout's too), with "(dry
// run)" after what happened for a dry run.
func fleetTitle(e Event) string {
	f := e.Fleet
	dry := ""
	if f.DryRun {
		dry = " (dry run)"
	}
	switch e.Kind {
	case EventFleetStarted:
		return fmt.Sprintf("Fleet deployment %s started%s: repo %s, %d host(s), %d wave(s)", f.ID, dry, f.Repo, f.HostCount, f.Waves)
	case EventFleetWave:
		kind := ""
		if f.Canary {
			kind = " (canary)"
		}
		return fmt.Sprintf("Fleet deployment %s wave %d/%d%s done%s: %s", f.ID, f.Wave, f.Waves, kind, dry, hostCountsText(f.Hosts))
	case EventFleetPaused:
		return fmt.Sprintf("Fleet deployment %s paused%s: no new wave starts until it is resumed", f.ID, dry)
	case EventFleetResumed:
		return fmt.Sprintf("Fleet deployment %s resumed%s", f.ID, dry)
	case EventFleetRetried:
		return fmt.Sprintf("Fleet deployment %s retried%s", f.ID, dry)
	case EventFleetGateFailed:
		return fmt.Sprintf("Fleet deployment %s%s: a gate before wave %d/%d failed", f.ID, dry, f.Wave, f.Waves)
	}
	return fmt.Sprintf("Fleet deployment %s %s%s: %s", f.ID, f.State, dry, hostCountsText(f.Hosts))
}

// fleetText is the body of a fleet message: the request on start, the
// hosts and instances after, and the command that follows it.
func fleetText(e Event) string {
	f := e.Fleet
	var lines []string
	add := func(k, v string) {
		if v != "" {
			lines = append(lines, k+": "+v)
		}
	}
	switch e.Kind {
	case EventFleetPaused, EventFleetResumed, EventFleetGateFailed, EventFleetRetried:
		lines = append(lines, f.Detail)
	case EventFleetStarted:
		add("select", f.Select)
		add("where", f.Where)
		add("reason", f.Reason)
		add("ticket", f.Ticket)
		add("by", f.Who)
	default:
		lines = append(lines, "instances: "+countsText(f.Counts))
		add("stopped", f.Stopped)
		lines = append(lines, f.Lines...)
	}
	lines = append(lines, "follow: "+f.Follow)
	return strings.Join(lines, "\n")
}

// hostCountsText renders host counts as "2 succeeded, 1 failed of 3 host(s)".
func hostCountsText(counts map[string]int) string {
	total := 0
	for _, n := range counts {
		total += n
	}
	return fmt.Sprintf("%s of %d host(s)", countsText(counts), total)
}

// RolloutLabel labels the Jira issue a coordinator files for rollout id
// when the rollout names no ticket.
func RolloutLabel(id string) string { return labelSafe("deployer-rollout-" + id) }

// deliverRollout comments a coordinator's rollout event on the rollout's
// Jira issue: its --ticket, else the issue filed at its first event
// (labelled RolloutLabel, closed when the rollout succeeded), whose key
// the receipt gives back to be kept on the rollout's record and comes
// again in m.IssueKey; until then the channel remembers it. A comment
// carries the delivery id, so a retried delivery does not post it twice.
func (j *Jira) deliverRollout(ctx context.Context, m Message) (Receipt, error) {
	f := m.Event.Fleet
	key := f.Ticket
	if key == "" {
		key = m.IssueKey // kept on the rollout's record (a restart between messages)
	}
	if key == "" {
		if k, ok := j.rollouts.Load(f.ID); ok {
			key = k.(string)
		}
	}
	if key == "" {
		var err error
		key, _, err = j.FindOrCreate(ctx, Ticket{
			Summary:     truncate(fmt.Sprintf("Rollout %s: repo %s, %d host(s)", f.ID, f.Repo, f.HostCount), 250),
			Description: fmt.Sprintf("Fleet rollout %s, kept and driven by its coordinator.\nfollow: %s", f.ID, f.Follow),
			Vars:        map[string]string{"fleet": f.ID, "repo": f.Repo, "outcome": f.State},
			DedupeLabel: RolloutLabel(f.ID),
		})
		if err != nil {
			return Receipt{}, fmt.Errorf("jira %s: %w", m.DeliveryID, err)
		}
	}
	if f.Ticket == "" {
		j.rollouts.Store(f.ID, key)
	}
	text := "*" + wiki(fleetTitle(m.Event)) + "*\n{noformat}\n" + noformat(fleetText(m.Event)) + "\n{noformat}"
	if err := j.comment(ctx, key, m, text); err != nil {
		return Receipt{}, fmt.Errorf("jira %s: %w", m.DeliveryID, err)
	}
	if m.Event.Kind == EventFleetEnded && f.Ticket == "" {
		vars := map[string]string{"fleet": f.ID, "repo": f.Repo, "outcome": f.State}
		if err := j.SetFields(ctx, key, vars, "outcome"); err != nil {
			j.http.log.Warn().Err(err).Str("issue", key).Msg("jira: could not set the rollout issue's outcome fields; comment posted")
		}
	}
	if m.Event.Kind == EventFleetEnded && f.State == "succeeded" && f.Ticket == "" {
		if err := j.Close(ctx, key); err != nil {
			j.http.log.Warn().Err(err).Str("issue", key).Msg("jira: could not transition the rollout's issue to done; comment posted")
		}
	}
	if f.Ticket != "" {
		return Receipt{}, nil
	}
	return Receipt{IssueKey: key}, nil
}
