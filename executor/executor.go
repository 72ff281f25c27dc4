package executor

import (
	"context"
	"io"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/manifest"
)

// Defaults used when the matching Options field is zero.
const (
	DefaultOutputLimit  = 64 << 10
	DefaultKillGrace    = 10 * time.Second
	DefaultRetryBackoff = time.Second
	maxRetryBackoff     = 30 * time.Second
	DefaultWatchIdle    = 5 * time.Minute
)

// Options configures an Executor. The zero value means defaults.
type Options struct {
	// StepEnv names the host environment variables passed through to steps
	// (an allow-list, e.g. PATH, HOME). Unset variables are not passed.
	StepEnv []string
	// OutputLimit is the number of bytes kept of a step's combined stdout and
	// stderr: the first and last halves. Default DefaultOutputLimit.
	OutputLimit int
	// KillGrace is the time between SIGTERM and SIGKILL when a step times out
	// or is interrupted. Default DefaultKillGrace.
	KillGrace time.Duration
	// RetryBackoff is the base delay before a retry; it doubles per attempt
	// (capped at 30s) and is jittered. Default DefaultRetryBackoff.
	RetryBackoff time.Duration
	// Logger receives step output lines at debug level; the zero value
	// discards.
	Logger zerolog.Logger
	// Now is the clock for recorded times. Default time.Now.
	Now func() time.Time
	// KeepWatches keeps the tree watch of a checkout (the default writes
	// check) between RunJobs calls, until it has been idle for WatchIdle:
	// setting one up lists every file of the checkout, which a deployment of
	// many buckets in a large repository otherwise paid once per bucket. A
	// long-lived caller (the daemon) sets it and calls Close when it stops.
	KeepWatches bool
	// WatchIdle is how long a kept watch may go unused before it is closed.
	// Default DefaultWatchIdle.
	WatchIdle time.Duration
}

// Executor runs steps. It is safe for concurrent use.
type Executor struct {
	opts    Options
	log     zerolog.Logger
	noWatch bool // tests: compare snapshots instead of watching the tree
	kept    keptWatches
}

// New returns an Executor with opts, defaults filled in.
func New(opts Options) *Executor {
	if opts.OutputLimit <= 0 {
		opts.OutputLimit = DefaultOutputLimit
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = DefaultKillGrace
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WatchIdle <= 0 {
		opts.WatchIdle = DefaultWatchIdle
	}
	return &Executor{opts: opts, log: opts.Logger}
}

// Job is one instance's steps at one commit.
type Job struct {
	// RepoRoot is the checkout: the working directory of every step.
	RepoRoot string
	// AllowStepDirs are the host directories absolute commands may live in.
	AllowStepDirs []string
	Instance      manifest.Instance
	// Steps are the steps to run, already in dependency order.
	Steps []manifest.Step
	// Env holds DEPLOYER_HOST, DEPLOYER_REPO, DEPLOYER_COMMIT, DEPLOYER_RUN and
	// DEPLOYER_DRY_RUN. The executor adds DEPLOYER_INSTANCE,
	// DEPLOYER_INSTANCE_FILE, DEPLOYER_STEP, DEPLOYER_OUTPUT and
	// DEPLOYER_OUT_<KEY>.
	Env map[string]string
	// Secrets (from env files) are passed to the process; only their names
	// are recorded, and their values are redacted from output and logs.
	Secrets map[string]string
	// Template holds the values of {instance} {file} {commit} {host}
	// {dry_run} in arguments. {instance} and {file} default to Instance.
	Template map[string]string
	// Outputs are outputs of steps that ran before this job (a replay from a
	// step, or a local run taking recorded outputs); steps of this job see
	// them as DEPLOYER_OUT_<KEY>, and later steps' outputs override them.
	Outputs map[string]string
	// AfterStep is called after each successful step (e.g. to capture and
	// write back the instance file) before it is reported; a non-nil error
	// fails the step with that reason.
	AfterStep func(ctx context.Context, r StepResult) error
	// BeforeStep, when set, is called before the first attempt of each
	// step; a non-nil error fails the step with that reason. The release
	// func it returns (may be nil) is called once the step's last attempt
	// and its AfterStep are done, whatever the outcome: the daemon uses it
	// to let one instance-writing step run at a time.
	BeforeStep func(ctx context.Context, step manifest.Step) (release func(), err error)
	// CheckWrites is called after each attempt and returns the repository
	// files (slash paths relative to RepoRoot) the step changed. The executor
	// fails the step when any of them is not allowed: a step with Writes
	// "instance" may change Instance.File only, other steps nothing. When nil,
	// the executor compares snapshots of the tree (see the package caveats).
	CheckWrites func(ctx context.Context, step manifest.Step) (changed []string, err error)
	// AfterAttempt, when set, is called after every attempt that started
	// (after the writes check and AfterStep), before it is reported, with
	// ChangedFiles and ForbiddenWrites filled in: the daemon restores there
	// what a failed attempt or a forbidden write changed, before the next
	// attempt or step. A non-nil error is added to the attempt's reason
	// (and fails it).
	AfterAttempt func(ctx context.Context, r StepResult) error
	// Stream, if not nil, receives each step's combined output (secrets
	// redacted) as it is produced, e.g. a terminal for a local run.
	Stream io.Writer
	// Literal says the steps' arguments are already templated (a scenario
	// replayed by a daemon): they are used as they are.
	Literal bool
}

// Status is the outcome of a step attempt or an instance: the domain's
// step status.
type Status = deployer.StepStatus

// Statuses (the domain's).
const (
	StatusSucceeded   = deployer.StepSucceeded
	StatusFailed      = deployer.StepFailed
	StatusTimedOut    = deployer.StepTimedOut
	StatusSkipped     = deployer.StepSkipped
	StatusInterrupted = deployer.StepInterrupted
	StatusNotStarted  = deployer.StepNotStarted
)

// Inputs are the parts of an attempt's inputs not already in StepResult's
// Argv, Env and SecretNames.
type Inputs struct {
	// Run is the command as the manifest names it.
	Run     string
	Timeout time.Duration
	Writes  string
	// InstanceFile is the instance file (slash path relative to the repo).
	InstanceFile string
	// InstanceBlob is the git blob id of the instance file before the
	// attempt ("" when it does not exist).
	InstanceBlob string
	// Commit is DEPLOYER_COMMIT.
	Commit string
	// DependencyOutputs are the outputs the attempt received (each also in
	// Env as DEPLOYER_OUT_<KEY>).
	DependencyOutputs map[string]string
	// StepEnv and AllowStepDirs are the host config's step_env and
	// allow_step_dirs that applied to the attempt.
	StepEnv       []string
	AllowStepDirs []string
}

// StepResult is one attempt of one step (or a step that did not run).
type StepResult struct {
	Instance manifest.InstanceName
	Step     manifest.StepName
	Attempt  int
	Status   Status
	// Reason says why the attempt failed, was skipped or did not start.
	Reason string
	Argv   []string
	Dir    string
	// Env is the recorded environment: DEPLOYER_* and allow-listed values.
	// Secrets appear only as names in SecretNames.
	Env         map[string]string
	SecretNames []string
	Inputs      Inputs
	ExitCode    int
	Signal      string
	Started     time.Time
	Ended       time.Time
	// OutputHead and OutputTail are the first and last halves of the
	// combined output; OutputTail is empty when nothing was cut.
	OutputHead  string
	OutputTail  string
	OutputBytes int64
	Truncated   bool
	// Stdout and Stderr are each stream alone (first and last halves when
	// long), kept for scenario runs only (their tests check them apart).
	Stdout, Stderr string
	// Outputs are the parsed DEPLOYER_OUTPUT lines.
	Outputs map[string]string
	// ChangedFiles are the files the attempt changed; ForbiddenWrites those
	// of them it was not allowed to change.
	ChangedFiles    []string
	ForbiddenWrites []string
}

// Record is r as the domain records it, at commit.
func (r StepResult) Record(commit string) deployer.StepResult {
	rec := deployer.StepResult{
		Instance: string(r.Instance), Step: string(r.Step), Attempt: r.Attempt, Status: r.Status, Reason: r.Reason,
		Argv: r.Argv, Dir: r.Dir, Env: r.Env, SecretNames: r.SecretNames, ExitCode: r.ExitCode, Signal: r.Signal,
		Started: r.Started, Ended: r.Ended, OutputHead: r.OutputHead, OutputTail: r.OutputTail,
		OutputBytes: r.OutputBytes, Truncated: r.Truncated, Outputs: r.Outputs,
		Commit: commit, InstanceBlob: r.Inputs.InstanceBlob,
		Writes: r.Inputs.Writes, StepEnv: slices.Clone(r.Inputs.StepEnv), AllowStepDirs: slices.Clone(r.Inputs.AllowStepDirs),
	}
	if r.Inputs.Timeout > 0 {
		rec.Timeout = r.Inputs.Timeout.String()
	}
	if len(r.Inputs.DependencyOutputs) > 0 {
		rec.DependencyOutputs = map[string]map[string]string{"": r.Inputs.DependencyOutputs}
	}
	return rec
}
