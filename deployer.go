// Package deployer is the domain vocabulary shared by every package of the
// deployer: the kinds of intervention and trigger, the statuses of runs,
// instances, deployments and steps, the step result as it is recorded,
// the domain error, and the types of the daemon's service. It imports no
// package of this module, so any of them may import it; the daemon speaks
// it and the api package turns it into its wire format (in the style of
// github.com/benbjohnson/wtf).
//
// A new word of the domain is added here, once; see "Add an
// intervention kind" in docs/developer_guide.md.
package deployer

// InterventionKind names a kind of intervention, a recorded case that
// needs a human. Each has a runbook entry in docs/operations.md (heading
// "### <kind>"), which a test checks.
type InterventionKind string

// The intervention kinds, most severe first within each scope.
const (
	KindStateCorrupt      InterventionKind = "state-corrupt"
	KindHostResource      InterventionKind = "host-resource"
	KindRepoCorrupt       InterventionKind = "repo-corrupt"
	KindUpstreamInvalid   InterventionKind = "upstream-invalid"
	KindAuthFailed        InterventionKind = "auth-failed"
	KindSyncDiverged      InterventionKind = "sync-diverged"
	KindUpstreamRewritten InterventionKind = "upstream-rewritten"
	KindSyncDirty         InterventionKind = "sync-dirty"
	KindManifestInvalid   InterventionKind = "manifest-invalid"
	KindRemoteUnreachable InterventionKind = "remote-unreachable"
	KindPushRejected      InterventionKind = "push-rejected"
	KindPushConflict      InterventionKind = "push-conflict"
	KindStepFailed        InterventionKind = "step-failed"
	KindInstanceInvalid   InterventionKind = "instance-invalid"
)

// InterventionKinds lists every intervention kind in severity order (most
// severe first).
var InterventionKinds = []InterventionKind{
	KindStateCorrupt, KindHostResource, KindRepoCorrupt, KindUpstreamInvalid, KindAuthFailed,
	KindSyncDiverged, KindUpstreamRewritten, KindSyncDirty, KindManifestInvalid, KindRemoteUnreachable,
	KindPushRejected, KindPushConflict, KindStepFailed, KindInstanceInvalid,
}

// Severity orders kinds for the report: lower is more severe; a kind not
// in InterventionKinds sorts last.
func Severity(k InterventionKind) int {
	for i, kk := range InterventionKinds {
		if kk == k {
			return i
		}
	}
	return len(InterventionKinds)
}

// Intervention states. Open and acknowledged interventions are both "not
// resolved": they block their scope and deduplicate repeats.
const (
	InterventionOpen         = "open"
	InterventionAcknowledged = "acknowledged"
	InterventionResolved     = "resolved"
)

// Intervention scopes: the whole repo, or one instance of it.
const (
	ScopeRepo     = "repo"
	ScopeInstance = "instance"
)

// TriggerKind says why a run happened.
type TriggerKind string

// The trigger kinds.
const (
	TriggerStartup    TriggerKind = "startup"    // the daemon started
	TriggerPoll       TriggerKind = "poll"       // the poll interval passed
	TriggerPush       TriggerKind = "push"       // a push webhook
	TriggerManual     TriggerKind = "manual"     // an operator's sync
	TriggerRetry      TriggerKind = "retry"      // a resolve --retry, or an edit that landed late
	TriggerSchedule   TriggerKind = "schedule"   // a manifest schedule fired (or was missed)
	TriggerDeployment TriggerKind = "deployment" // an operator's deployment
	TriggerReplay     TriggerKind = "replay"     // an operator's replay of a recorded run
	// TriggerBaseline is added to the first run on a host: its commit is
	// adopted as deployed, no step runs.
	TriggerBaseline TriggerKind = "baseline"
)

// TriggerKinds lists every trigger kind.
var TriggerKinds = []TriggerKind{TriggerStartup, TriggerPoll, TriggerPush, TriggerManual, TriggerRetry,
	TriggerSchedule, TriggerDeployment, TriggerReplay, TriggerBaseline}

// RunStatus is how a run ended (or that it is running).
type RunStatus string

// The run statuses.
const (
	RunRunning     RunStatus = "running"
	RunSucceeded   RunStatus = "succeeded"
	RunFailed      RunStatus = "failed"
	RunInterrupted RunStatus = "interrupted" // the daemon stopped while it ran; it is redone
	RunBlocked     RunStatus = "blocked"     // stopped by an intervention or a failed sync
	RunInvalid     RunStatus = "invalid"     // the manifest is invalid
	RunMissed      RunStatus = "missed"      // a schedule's times missed while the daemon was down
)

// StepStatus is the outcome of a step attempt, and of an instance in a run.
type StepStatus string

// The step (and instance outcome) statuses.
const (
	StepPending     StepStatus = "pending" // planned, not run yet (instance outcomes only)
	StepSucceeded   StepStatus = "succeeded"
	StepFailed      StepStatus = "failed"
	StepTimedOut    StepStatus = "timed-out"
	StepSkipped     StepStatus = "skipped"
	StepInterrupted StepStatus = "interrupted"
	StepNotStarted  StepStatus = "not-started"
)

// Failed reports whether s counts as a failure of its instance.
func (s StepStatus) Failed() bool { return s == StepFailed || s == StepTimedOut }

// DeploymentState is the state of a deployment as a whole.
type DeploymentState string

// The deployment states.
const (
	DeploymentQueued    DeploymentState = "queued"
	DeploymentRunning   DeploymentState = "running"
	DeploymentBlocked   DeploymentState = "blocked"
	DeploymentSucceeded DeploymentState = "succeeded"
	DeploymentFailed    DeploymentState = "failed"
	DeploymentCancelled DeploymentState = "cancelled"
)

// InstanceStatus is the status of one instance of a deployment.
type InstanceStatus string

// The deployment instance statuses. An instance that ran ends with its
// steps' status (succeeded, failed, timed-out, skipped, interrupted).
const (
	InstancePending    InstanceStatus = "pending"
	InstanceRunning    InstanceStatus = "running"
	InstanceSucceeded  InstanceStatus = "succeeded"
	InstanceFailed     InstanceStatus = "failed"
	InstanceSkipped    InstanceStatus = "skipped"
	InstanceConflict   InstanceStatus = "conflict" // its edit met a push conflict
	InstanceNotStarted InstanceStatus = "not-started"
	// InstanceInterrupted: in flight when the daemon stopped (its steps
	// cut off at the end of the grace period, or its edit landed and its
	// steps had not started); it runs when the deployment resumes, even a
	// cancelled one.
	InstanceInterrupted InstanceStatus = "interrupted"
)

// Counted reports whether s spends the deployment's failure budget.
func (s InstanceStatus) Counted() bool { return s == InstanceFailed || s == InstanceConflict }

// Waiting reports whether an instance in s is still to run (again).
func (s InstanceStatus) Waiting() bool {
	return s == InstancePending || s == InstanceRunning || s == InstanceNotStarted || s == InstanceInterrupted
}

// InFlight reports whether an instance in s was in flight when its
// deployment last stopped (running, or interrupted by the daemon's stop):
// a cancel does not keep it from finishing.
func (s InstanceStatus) InFlight() bool { return s == InstanceRunning || s == InstanceInterrupted }
