package deployer

import (
	"context"
	"time"
)

// Kinds of the events of an instance's history.
const (
	EventCommit       = "commit"       // a commit that changed the instance's file
	EventRun          = "run"          // a run that planned the instance
	EventWriteBack    = "write-back"   // an edit the daemon wrote back to the file
	EventDeployment   = "deployment"   // an operator's deployment that named it
	EventIntervention = "intervention" // an intervention on the instance
)

// InstanceHistory is one instance's timeline, newest first.
type InstanceHistory struct {
	Repo     string         `json:"repo"`
	Instance string         `json:"instance"`
	File     string         `json:"file"`
	Events   []HistoryEvent `json:"events"`
	// Notes say what the history could not include (commits unreadable).
	Notes []string `json:"notes,omitempty"`
}

// HistoryEvent is one entry of an instance's history. Kind says which
// fields are set.
type HistoryEvent struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Commit  string    `json:"commit,omitempty"`
	Author  string    `json:"author,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Run     uint64    `json:"run,omitempty"`
	Status  string    `json:"status,omitempty"`
	// Reasons: why a run planned the instance.
	Reasons []string `json:"reasons,omitempty"`
	// Steps: a run's step attempts on the instance.
	Steps []HistoryStep `json:"steps,omitempty"`
	// Diff: a write-back's edits, one line each.
	Diff         []string `json:"diff,omitempty"`
	Deployment   string   `json:"deployment,omitempty"`
	Intervention uint64   `json:"intervention,omitempty"`
	// Summary: an intervention's summary, a write-back's step or reason.
	Summary string `json:"summary,omitempty"`
}

// HistoryStep is one step attempt of a run on an instance.
type HistoryStep struct {
	Step    string `json:"step"`
	Attempt int    `json:"attempt"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
}

// WriteBack is one edit of one instance file the daemon wrote back.
type WriteBack struct {
	Run      uint64    `json:"run,omitempty"`
	Instance string    `json:"instance"`
	File     string    `json:"file"`
	Reason   string    `json:"reason,omitempty"` // the step, or the deployment
	State    string    `json:"state"`            // journal state: pending, committed, pushed, conflict, dropped
	Commit   string    `json:"commit,omitempty"`
	Diff     []string  `json:"diff"`
	At       time.Time `json:"at"`
}

// RunDiff is the write-backs of one run.
type RunDiff struct {
	Run        uint64      `json:"run"`
	Repo       string      `json:"repo"`
	WriteBacks []WriteBack `json:"write_backs"`
}

// HistoryService answers the history questions (`deployer history`,
// `deployer diff`). The daemon implements it beside Service.
type HistoryService interface {
	// History is instance's timeline; repo "" means the one repo that
	// has an instance of that name.
	History(ctx context.Context, repo, instance string, limit int) (InstanceHistory, error)
	// RunDiff is the write-backs of run, of every instance or of one.
	RunDiff(ctx context.Context, run uint64, instance string) (RunDiff, error)
}
