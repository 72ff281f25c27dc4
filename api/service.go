package api

import (
	"context"
	"io"

	"github.com/sre-tools/deployer"
)

// ServiceBackend serves a domain service (the daemon) as a Backend: it
// turns the domain's runs, step results and reports into their wire
// format. It is the one place that does.
func ServiceBackend(s deployer.Service) Backend { return serviceBackend{s} }

type serviceBackend struct{ s deployer.Service }

func (b serviceBackend) Status(ctx context.Context) (Status, error) { return b.s.Status(ctx) }

func (b serviceBackend) Sync(ctx context.Context, repo string, wait bool) (SyncResponse, error) {
	q, err := b.s.Sync(ctx, repo, wait)
	return syncResponse(q), err
}

func (b serviceBackend) Runs(ctx context.Context, repo string, limit int) ([]Run, error) {
	runs, err := b.s.Runs(ctx, repo, limit)
	return wireRuns(runs), err
}

func (b serviceBackend) Run(ctx context.Context, id uint64) (Run, error) {
	r, err := b.s.Run(ctx, id)
	if err != nil {
		return Run{}, err
	}
	return WireRun(r), nil
}

func (b serviceBackend) Interventions(ctx context.Context, all bool) ([]Intervention, error) {
	return b.s.Interventions(ctx, all)
}

func (b serviceBackend) Intervention(ctx context.Context, id uint64) (Intervention, error) {
	return b.s.Intervention(ctx, id)
}

func (b serviceBackend) Acknowledge(ctx context.Context, id uint64, req AckRequest) (Intervention, error) {
	return b.s.Acknowledge(ctx, id, req)
}

func (b serviceBackend) Resolve(ctx context.Context, id uint64, req ResolveRequest) (Intervention, error) {
	return b.s.Resolve(ctx, id, req)
}

func (b serviceBackend) Report(ctx context.Context) (Report, error) {
	r, err := b.s.Report(ctx)
	if err != nil {
		return Report{}, err
	}
	return Report{Host: r.Host, Generated: r.Generated, Interventions: r.Interventions,
		FailedRuns: wireRuns(r.FailedRuns), InProgress: wireRuns(r.InProgress)}, nil
}

func (b serviceBackend) Deploy(ctx context.Context, repo string, req DeployRequest) (Deployment, error) {
	return b.s.Deploy(ctx, repo, req)
}

func (b serviceBackend) Deployments(ctx context.Context, f DeploymentFilter) ([]Deployment, error) {
	return b.s.Deployments(ctx, f)
}

func (b serviceBackend) Deployment(ctx context.Context, id string) (Deployment, error) {
	return b.s.Deployment(ctx, id)
}

func (b serviceBackend) RetryDeployment(ctx context.Context, id string) (Deployment, error) {
	return b.s.RetryDeployment(ctx, id)
}

func (b serviceBackend) CancelDeployment(ctx context.Context, id string) (Deployment, error) {
	return b.s.CancelDeployment(ctx, id)
}

func (b serviceBackend) Replay(ctx context.Context, run uint64, req ReplayRequest) (SyncResponse, error) {
	q, err := b.s.Replay(ctx, run, req)
	return syncResponse(q), err
}

func (b serviceBackend) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return b.s.Backup(ctx, w)
}

func (b serviceBackend) Ready() error { return b.s.Ready() }

func syncResponse(q deployer.Queued) SyncResponse {
	if q.Repo == "" {
		return SyncResponse{}
	}
	out := SyncResponse{Repo: q.Repo, Queued: true}
	if q.Run != nil {
		r := WireRun(*q.Run)
		out.Run = &r
	}
	return out
}

func wireRuns(runs []deployer.Run) []Run {
	out := make([]Run, len(runs))
	for i, r := range runs {
		out[i] = WireRun(r)
	}
	return out
}

// WireRun is r in the API's wire format.
func WireRun(r deployer.Run) Run {
	out := Run{ID: r.ID, Repo: r.Repo, Base: r.Base, Commit: r.Commit, Status: string(r.Status), Error: r.Error,
		Started: r.Started, Triggers: r.Triggers, Instances: r.Instances}
	if out.Triggers == nil {
		out.Triggers = []Trigger{}
	}
	if out.Instances == nil {
		out.Instances = []InstanceOutcome{}
	}
	if !r.Ended.IsZero() {
		t := r.Ended
		out.Ended = &t
	}
	for _, s := range r.Steps {
		out.Steps = append(out.Steps, WireStep(s))
	}
	return out
}

// WireStep is a recorded step attempt in the API's wire format.
func WireStep(s deployer.StepResult) StepResult {
	return StepResult{
		Instance: s.Instance, Step: s.Step, Attempt: s.Attempt, Status: string(s.Status), Reason: s.Reason,
		Argv: s.Argv, Dir: s.Dir, Env: s.Env, SecretNames: s.SecretNames, ExitCode: s.ExitCode, Signal: s.Signal,
		Started: s.Started, Ended: s.Ended, DurationMS: s.Ended.Sub(s.Started).Milliseconds(),
		OutputHead: s.OutputHead, OutputTail: s.OutputTail, OutputBytes: s.OutputBytes, Truncated: s.Truncated, Outputs: s.Outputs,
		Commit: s.Commit, InstanceBlob: s.InstanceBlob, Timeout: s.Timeout, Writes: s.Writes, StepEnv: s.StepEnv, AllowStepDirs: s.AllowStepDirs,
	}
}
