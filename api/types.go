package api

import (
	"time"

	"github.com/sre-tools/deployer"
)

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
	// The attempt's other inputs, for deployer runs export: the commit, the
	// instance file's git blob id before the step, the step's timeout and
	// writes policy, and the host config's step_env and allow_step_dirs.
	Commit        string   `json:"commit,omitempty"`
	InstanceBlob  string   `json:"instance_blob,omitempty"`
	Timeout       string   `json:"timeout,omitempty"`
	Writes        string   `json:"writes,omitempty"`
	StepEnv       []string `json:"step_env,omitempty"`
	AllowStepDirs []string `json:"allow_step_dirs,omitempty"`
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

// Report is the on-call report of one host.
type Report struct {
	Host          string         `json:"host"`
	Generated     time.Time      `json:"generated"`
	Interventions []Intervention `json:"interventions"`
	FailedRuns    []Run          `json:"failed_runs"`
	InProgress    []Run          `json:"in_progress"`
}

// The types the api shares with the domain (package deployer): the wire
// format is theirs.
type (
	Status             = deployer.Status
	RepoStatus         = deployer.RepoStatus
	Schedule           = deployer.Schedule
	RunRef             = deployer.RunRef
	Trigger            = deployer.Trigger
	InstanceOutcome    = deployer.InstanceOutcome
	Intervention       = deployer.Intervention
	Evidence           = deployer.Evidence
	Commit             = deployer.Commit
	AckRequest         = deployer.AckRequest
	ResolveRequest     = deployer.ResolveRequest
	DeployRequest      = deployer.DeployRequest
	Deployment         = deployer.Deployment
	DeploymentInstance = deployer.DeploymentInstance
	ReplayRequest      = deployer.ReplayRequest
	DeploymentFilter   = deployer.DeploymentFilter
)
