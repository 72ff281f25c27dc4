package daemon

import (
	"context"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/syncer"
)

// checkout is what a worker needs of its repo's checkout: a *syncer.Repo,
// or a fake in the daemon's unit tests.
type checkout interface {
	Dir() string
	Head() string
	ReadFile(commit, path string) ([]byte, error)
	ChangedPaths(from, to string) ([]string, error)
	Commits(from, to, path string, limit int) ([]syncer.CommitInfo, error)
	Sync(ctx context.Context, known string) (syncer.Result, error)
	CheckDirty() (syncer.Result, error)
	WriteBack(ctx context.Context, changes []syncer.Change, attempts int) ([]syncer.Outcome, error)
	Rescue(ctx context.Context) (syncer.Result, error)
	Adopt(ctx context.Context) (syncer.Result, error)
	Maintain(ctx context.Context, maxLoose, maxPacks int) (bool, error)
	Restore(paths []string) ([]string, error)
	Close() error
}

var _ checkout = (*syncer.Repo)(nil)

// jobRunner is what the daemon needs of the executor: an *executor.Executor,
// or a fake in the daemon's unit tests.
type jobRunner interface {
	// RunJobsUntil starts no new job once halt is done (the daemon is
	// stopping); the jobs in flight run on under ctx.
	RunJobsUntil(ctx, halt context.Context, jobs []executor.Job, bucket, maxFailures int, report func(executor.StepResult)) []executor.InstanceResult
	// Close releases what the runner keeps between calls.
	Close()
}

var _ jobRunner = (*executor.Executor)(nil)
