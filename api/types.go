package api

import "time"

// Status is the answer of GET /v1/status.
type Status struct {
	Host    string       `json:"host"`
	Version string       `json:"version"`
	Started time.Time    `json:"started"`
	Repos   []RepoStatus `json:"repos"`
}

// RepoStatus describes one tracked repository.
type RepoStatus struct {
	Name              string     `json:"name"`
	URL               string     `json:"url"`
	Branch            string     `json:"branch"`
	Head              string     `json:"head"`
	Upstream          string     `json:"upstream"`
	Deployed          string     `json:"deployed"`
	State             string     `json:"state"`
	Running           *RunRef    `json:"running,omitempty"`
	LastRun           *RunRef    `json:"last_run,omitempty"`
	LastSync          *time.Time `json:"last_sync,omitempty"`
	LastError         string     `json:"last_error,omitempty"`
	OpenInterventions int        `json:"open_interventions"`
	Schedules         []Schedule `json:"schedules"`
}

// Schedule is one of a repo's manifest schedules and its next time.
type Schedule struct {
	Name string    `json:"name"`
	Next time.Time `json:"next"`
}

// RunRef is the short form of a run.
type RunRef struct {
	ID      uint64    `json:"id"`
	Status  string    `json:"status"`
	Commit  string    `json:"commit"`
	Started time.Time `json:"started"`
}

// Trigger says why a run happened.
type Trigger struct {
	Kind   string    `json:"kind"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Run is one pass of the pipeline over one repo.
type Run struct {
	ID        uint64            `json:"id"`
	Repo      string            `json:"repo"`
	Triggers  []Trigger         `json:"triggers"`
	Base      string            `json:"base"`
	Commit    string            `json:"commit"`
	Status    string            `json:"status"`
	Error     string            `json:"error,omitempty"`
	Started   time.Time         `json:"started"`
	Ended     *time.Time        `json:"ended,omitempty"`
	Instances []InstanceOutcome `json:"instances"`
	Steps     []StepResult      `json:"steps,omitempty"`
}

// InstanceOutcome is one planned instance of a run.
type InstanceOutcome struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// StepResult is one recorded step attempt.
type StepResult struct {
	Instance    string            `json:"instance"`
	Step        string            `json:"step"`
	Attempt     int               `json:"attempt"`
	Status      string            `json:"status"`
	Reason      string            `json:"reason,omitempty"`
	Argv        []string          `json:"argv"`
	Dir         string            `json:"dir"`
	Env         map[string]string `json:"env,omitempty"`
	SecretNames []string          `json:"secret_names,omitempty"`
	ExitCode    int               `json:"exit_code"`
	Signal      string            `json:"signal,omitempty"`
	Started     time.Time         `json:"started"`
	Ended       time.Time         `json:"ended"`
	DurationMS  int64             `json:"duration_ms"`
	OutputHead  string            `json:"output_head,omitempty"`
	OutputTail  string            `json:"output_tail,omitempty"`
	OutputBytes int64             `json:"output_bytes"`
	Truncated   bool              `json:"truncated,omitempty"`
	Outputs     map[string]string `json:"outputs,omitempty"`
}

// SyncRequest asks for a run of one repo.
type SyncRequest struct {
	Wait bool `json:"wait"`
}

// SyncResponse answers a SyncRequest. Run is set when the request waited.
type SyncResponse struct {
	Repo   string `json:"repo"`
	Queued bool   `json:"queued"`
	Run    *Run   `json:"run,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Intervention is a recorded case that needs a human.
type Intervention struct {
	ID          uint64     `json:"id"`
	Kind        string     `json:"kind"`
	Severity    int        `json:"severity"` // 0 is the most severe
	Host        string     `json:"host"`
	Repo        string     `json:"repo"`
	Instance    string     `json:"instance,omitempty"`
	Scope       string     `json:"scope"` // "repo" or "instance"
	Summary     string     `json:"summary"`
	NextAction  string     `json:"next_action"`
	Evidence    Evidence   `json:"evidence"`
	Count       int        `json:"count"`
	FirstSeen   time.Time  `json:"first_seen"`
	LastSeen    time.Time  `json:"last_seen"`
	State       string     `json:"state"` // open, acknowledged, resolved
	AckBy       string     `json:"ack_by,omitempty"`
	AckNote     string     `json:"ack_note,omitempty"`
	ResolvedBy  string     `json:"resolved_by,omitempty"`
	ResolvedHow string     `json:"resolved_how,omitempty"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
	// Notice, in the answer to a resolve, is what the operator must know
	// about it (host-resource: the host is still short and it is open
	// again).
	Notice string            `json:"notice,omitempty"`
	Extra  map[string]string `json:"-"`
}

// Evidence is what an intervention shows on-call.
type Evidence struct {
	Output  string            `json:"output,omitempty"`
	Base    *string           `json:"base,omitempty"`
	Ours    *string           `json:"ours,omitempty"`
	Theirs  *string           `json:"theirs,omitempty"`
	Commits []Commit          `json:"commits,omitempty"`
	File    string            `json:"file,omitempty"`
	Element string            `json:"element,omitempty"`
	Extra   map[string]string `json:"extra,omitempty"`
}

// Commit names a commit and its author.
type Commit struct {
	Hash    string    `json:"hash"`
	Author  string    `json:"author,omitempty"`
	Subject string    `json:"subject,omitempty"`
	When    time.Time `json:"when,omitzero"`
}

// AckRequest acknowledges an intervention.
type AckRequest struct {
	Who  string `json:"who"`
	Note string `json:"note"`
}

// ResolveRequest resolves an intervention.
type ResolveRequest struct {
	Who   string `json:"who"`
	Note  string `json:"note,omitempty"`
	Take  string `json:"take,omitempty"` // push-conflict: ours or theirs
	Retry bool   `json:"retry,omitempty"`
}

// Report is the on-call report of one host.
type Report struct {
	Host          string         `json:"host"`
	Generated     time.Time      `json:"generated"`
	Interventions []Intervention `json:"interventions"`
	FailedRuns    []Run          `json:"failed_runs"`
	InProgress    []Run          `json:"in_progress"`
}

// DeployRequest asks for a deployment over many instances of one repo.
type DeployRequest struct {
	Select      string   `json:"select"`          // glob over instance files, e.g. instances/*.xml
	Where       string   `json:"where,omitempty"` // etree path the instance XML must match
	Set         []string `json:"set,omitempty"`   // PATH@ATTR=VALUE
	Text        []string `json:"text,omitempty"`  // PATH=VALUE
	Steps       []string `json:"steps,omitempty"` // default: the on-change steps
	Bucket      int      `json:"bucket,omitempty"`
	MaxFailures int      `json:"max_failures,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	Ticket      string   `json:"ticket,omitempty"`
	DryRun      bool     `json:"dry_run,omitempty"`
	Fleet       string   `json:"fleet,omitempty"` // the fleet deployment this belongs to
	Who         string   `json:"who,omitempty"`
}

// Deployment is a deployment and the status of each of its instances.
type Deployment struct {
	ID        string               `json:"id"`
	Repo      string               `json:"repo"`
	State     string               `json:"state"` // queued, running, succeeded, failed, cancelled
	Request   DeployRequest        `json:"request"`
	Created   time.Time            `json:"created"`
	Updated   time.Time            `json:"updated"`
	Finished  *time.Time           `json:"finished,omitempty"`
	Counts    map[string]int       `json:"counts"`
	Instances []DeploymentInstance `json:"instances"`
	Runs      []uint64             `json:"runs,omitempty"`
}

// DeploymentInstance is one instance of a deployment.
type DeploymentInstance struct {
	Name       string `json:"name"`
	File       string `json:"file"`
	Status     string `json:"status"` // pending, running, succeeded, failed, skipped, conflict, not-started
	Reason     string `json:"reason,omitempty"`
	Step       string `json:"step,omitempty"`
	OutputTail string `json:"output_tail,omitempty"`
	Commit     string `json:"commit,omitempty"` // the write-back commit of its edits
}

// ReplayRequest asks to run again what a recorded run did for one instance.
type ReplayRequest struct {
	Instance string `json:"instance,omitempty"`
	From     string `json:"from,omitempty"`
	Wait     bool   `json:"wait,omitempty"`
}
