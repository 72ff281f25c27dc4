package notify

import (
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
)

// IsFleet reports whether kind is a fleet event.
func (k EventKind) IsFleet() bool {
	return k == EventFleetStarted || k == EventFleetWave || k == EventFleetEnded
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
}

// fleetTitle is a fleet event's one-line headline.
func fleetTitle(e Event) string {
	f := e.Fleet
	switch e.Kind {
	case EventFleetStarted:
		return fmt.Sprintf("Fleet deployment %s started: repo %s, %d host(s), %d wave(s)", f.ID, f.Repo, f.HostCount, f.Waves)
	case EventFleetWave:
		kind := ""
		if f.Canary {
			kind = " (canary)"
		}
		return fmt.Sprintf("Fleet deployment %s wave %d/%d%s done: %s", f.ID, f.Wave, f.Waves, kind, hostCountsText(f.Hosts))
	}
	return fmt.Sprintf("Fleet deployment %s %s: %s", f.ID, f.State, hostCountsText(f.Hosts))
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
	if e.Kind == EventFleetStarted {
		add("select", f.Select)
		add("where", f.Where)
		add("reason", f.Reason)
		add("ticket", f.Ticket)
		add("by", f.Who)
	} else {
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
