package deployer

import (
	"context"
	"io"
	"time"
)

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
	// Behind is how many upstream commits are not deployed yet, counted up
	// to a bound (BehindCapped: more than Behind); nil when unknown (no
	// upstream seen yet, or the count failed).
	Behind       *int `json:"behind,omitempty"`
	BehindCapped bool `json:"behind_capped,omitempty"`
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
	Kind   TriggerKind `json:"kind"`
	Detail string      `json:"detail,omitempty"`
	At     time.Time   `json:"at"`
}

// InstanceOutcome is one planned instance of a run.
type InstanceOutcome struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	Commit string `json:"commit,omitempty"` // the instance's steps ran at this commit, not the run's
	// Reasons say why the instance was planned: its file changed, a step
	// script changed, the manifest changed, a retry.
	Reasons []string `json:"reasons,omitempty"`
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

// DeployRequest asks for a deployment over many instances of one repo.
type DeployRequest struct {
	// ID, when set, is the id the deployment gets instead of one the
	// daemon numbers (CheckDeploymentID): the daemon creates it once, and
	// a request with the same ID and the same request (Who aside) is
	// answered with the deployment as it stands (Deployment.Existed),
	// never started again; with another request it is refused (ECONFLICT).
	// A rollout's coordinator sets it to HostDeploymentID. A daemon older
	// than the field ignores it and numbers the deployment.
	ID          string   `json:"id,omitempty"`
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
	// Restore, instead of Set and Text, undoes this host's deployment of
	// the repo labelled with fleet id Restore (a rollout's rollback): each
	// attribute and text it changed gets its previous value back, taken
	// from the daemon's write-back journal, only where the value is still
	// what that deployment set (else the instance is a conflict naming
	// both values).
	Restore string `json:"restore,omitempty"`
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
	// Error says why the deployment as a whole could not start (blocked)
	// or failed before any instance ran (deployer.xml invalid at the
	// run's commit, an unknown step), or that its selection matched no
	// instance at run time; empty otherwise.
	Error string `json:"error,omitempty"`
	// Existed is set in the answer to a request that named the id of a
	// deployment that existed already (DeployRequest.ID): nothing was
	// started, and the deployment is as it stands.
	Existed bool `json:"existed,omitempty"`
}

// DeploymentInstance is one instance of a deployment.
type DeploymentInstance struct {
	Name       string         `json:"name"`
	File       string         `json:"file"`
	Status     InstanceStatus `json:"status"` // pending, running, succeeded, failed, skipped, conflict, not-started
	Reason     string         `json:"reason,omitempty"`
	Step       string         `json:"step,omitempty"`
	OutputTail string         `json:"output_tail,omitempty"`
	// Commit is the commit its steps run (ran) at: the newest commit up to
	// HEAD that made its file what the steps read (its edit's commit, or a
	// later commit that changed the file); with no edit, empty (HEAD).
	Commit string `json:"commit,omitempty"`
	// Note says how its edit landed when not by a commit of its own
	// ("edit already upstream").
	Note string `json:"note,omitempty"`
}

// ReplayRequest asks to run again what a recorded run did for one instance.
type ReplayRequest struct {
	Instance string `json:"instance,omitempty"`
	From     string `json:"from,omitempty"`
	Wait     bool   `json:"wait,omitempty"`
}

// DeploymentFilter narrows a list of deployments. The zero value asks for
// the newest deployments of every repo.
type DeploymentFilter struct {
	// Fleet, when set (?fleet=ID), selects every deployment labelled with
	// this fleet id, however many deployments came after it.
	Fleet string
}

// Run is one pass of the pipeline over one repo, with its step attempts
// when asked for one run.
type Run struct {
	ID        uint64
	Repo      string
	Triggers  []Trigger
	Base      string
	Commit    string
	Status    RunStatus
	Error     string
	Started   time.Time
	Ended     time.Time // zero while it runs
	Instances []InstanceOutcome
	Steps     []StepResult
}

// Queued answers a request for a run: it was queued on Repo, and Run is
// the run that covered it when the request waited.
type Queued struct {
	Repo string
	Run  *Run
}

// Report is the on-call report of one host.
type Report struct {
	Host          string
	Generated     time.Time
	Interventions []Intervention
	FailedRuns    []Run
	InProgress    []Run
}

// Service is what the daemon offers its operators; the api package serves
// it over HTTP. Errors are *Error where the code matters (ENOTFOUND,
// EINVALID, EUNAVAILABLE); any other error is EINTERNAL.
type Service interface {
	Status(ctx context.Context) (Status, error)
	// Sync queues a manual run of repo; with wait, Queued.Run is the run.
	Sync(ctx context.Context, repo string, wait bool) (Queued, error)
	Runs(ctx context.Context, repo string, limit int) ([]Run, error)
	Run(ctx context.Context, id uint64) (Run, error)
	Interventions(ctx context.Context, all bool) ([]Intervention, error)
	Intervention(ctx context.Context, id uint64) (Intervention, error)
	Acknowledge(ctx context.Context, id uint64, req AckRequest) (Intervention, error)
	Resolve(ctx context.Context, id uint64, req ResolveRequest) (Intervention, error)
	Report(ctx context.Context) (Report, error)
	Deploy(ctx context.Context, repo string, req DeployRequest) (Deployment, error)
	// Deployments lists deployments newest first: the newest 50, or every
	// one that f selects.
	Deployments(ctx context.Context, f DeploymentFilter) ([]Deployment, error)
	Deployment(ctx context.Context, id string) (Deployment, error)
	RetryDeployment(ctx context.Context, id string) (Deployment, error)
	CancelDeployment(ctx context.Context, id string) (Deployment, error)
	Replay(ctx context.Context, run uint64, req ReplayRequest) (Queued, error)
	// Backup writes a consistent copy of the state file.
	Backup(ctx context.Context, w io.Writer) (int64, error)
	// Ready returns nil when the state is open and every repo is checked out.
	Ready() error
}
