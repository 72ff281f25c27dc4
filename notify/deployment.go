package notify

import (
	"fmt"
	"sort"
	"strings"
)

// Deployment event kinds: a deployment's start, the end of each of its
// waves (buckets) and its final outcome. Each is enqueued once per
// deployment attempt (a retry is a new attempt), on the Slack and webhook
// channels; Jira channels take intervention events only.
const (
	EventDeploymentStarted EventKind = "deployment-started"
	EventDeploymentWave    EventKind = "deployment-wave"
	EventDeploymentEnded   EventKind = "deployment-ended"
)

// DeploymentEvent is what a deployment notification says.
type DeploymentEvent struct {
	ID      string         `json:"id"`
	Repo    string         `json:"repo"`
	State   string         `json:"state"`   // queued, running, succeeded, failed, cancelled, blocked
	Attempt int            `json:"attempt"` // 1, then one more per retry
	Wave    int            `json:"wave,omitempty"`
	Select  string         `json:"select,omitempty"`
	Where   string         `json:"where,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Ticket  string         `json:"ticket,omitempty"`
	Who     string         `json:"who,omitempty"`
	Counts  map[string]int `json:"counts,omitempty"` // instance status -> how many
}

// IsDeployment reports whether kind is a deployment event.
func (k EventKind) IsDeployment() bool {
	return k == EventDeploymentStarted || k == EventDeploymentWave || k == EventDeploymentEnded
}

// deploymentTitle is a deployment event's one-line headline.
func deploymentTitle(e Event) string {
	d := e.Deployment
	where := d.Repo
	if e.Host != "" {
		where += " on " + e.Host
	}
	switch e.Kind {
	case EventDeploymentStarted:
		return fmt.Sprintf("Deployment %s started: %s", d.ID, where)
	case EventDeploymentWave:
		return fmt.Sprintf("Deployment %s wave %d done: %s", d.ID, d.Wave, where)
	}
	return fmt.Sprintf("Deployment %s %s: %s", d.ID, d.State, where)
}

// countsText renders instance counts as "2 succeeded, 1 failed".
func countsText(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	if len(parts) == 0 {
		return "no instance"
	}
	return strings.Join(parts, ", ")
}
