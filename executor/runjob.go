package executor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sre-tools/deployer/manifest"
)

// RunJob runs one instance's steps in order, honouring After (a step whose
// dependency did not succeed is skipped), retrying with jittered backoff
// (each attempt reported), enforcing timeouts (SIGTERM to the process group,
// SIGKILL after KillGrace, grandchildren killed too) and passing outputs to
// later steps as DEPLOYER_OUT_<KEY> (KEY upper-cased). report, if not nil, is called for every
// attempt as soon as it ends, and for every step that does not run. When ctx
// is cancelled the running step is killed and reported "interrupted", and so
// are the steps after it. RunJob returns every result it reported.
func (e *Executor) RunJob(ctx context.Context, job Job, report func(StepResult)) []StepResult {
	ws := e.watchJobs([]Job{job}, true)
	defer e.releaseWatches(ws)
	return e.runJob(ctx, job, report, nil, nil, ws[job.RepoRoot])
}

// runJob is RunJob with a hook called once, before the report, when the
// instance fails, and the gate shared with the other jobs in its checkout.
func (e *Executor) runJob(ctx context.Context, job Job, report func(StepResult), onFail func(), g *gate, watch *treeWatch) []StepResult {
	jr := e.newJobRun(job, g, watch)
	var results []StepResult
	emit := func(r StepResult) {
		results = append(results, r)
		if report != nil {
			report(r)
		}
	}
	failed := false
	markFailed := func() {
		if !failed && onFail != nil {
			onFail()
		}
		failed = true
	}
	final := map[manifest.StepName]Status{}
	for i, step := range job.Steps {
		if ctx.Err() != nil {
			for _, s := range job.Steps[i:] {
				emit(e.notRun(job, s, StatusInterrupted, fmt.Sprintf("interrupted before the step started: %v", context.Cause(ctx))))
			}
			break
		}
		if reason, blocked := blockedBy(step, final); blocked {
			final[step.Name] = StatusSkipped
			emit(e.notRun(job, step, StatusSkipped, reason))
			continue
		}
		final[step.Name] = e.runStep(ctx, jr, step, emit, markFailed)
	}
	return results
}

// blockedBy reports whether a dependency of step did not succeed in this job.
// Dependencies that are not part of the job do not block.
func blockedBy(step manifest.Step, final map[manifest.StepName]Status) (string, bool) {
	for _, dep := range step.After {
		if st, ok := final[dep]; ok && st != StatusSucceeded {
			return fmt.Sprintf("dependency %s %s", dep, st), true
		}
	}
	return "", false
}

// notRun is the record of a step that did not run.
func (e *Executor) notRun(job Job, step manifest.Step, st Status, reason string) StepResult {
	now := e.opts.Now()
	return StepResult{
		Instance: job.Instance.Name, Step: step.Name, Status: st, Reason: reason,
		Dir: job.RepoRoot, Started: now, Ended: now, ExitCode: -1,
		Inputs: Inputs{Run: step.Run, Timeout: step.Timeout, Writes: step.Writes, InstanceFile: job.Instance.File, Commit: job.Env[EnvCommit]},
	}
}

// runStep runs step's attempts and returns its final status.
func (e *Executor) runStep(ctx context.Context, jr *jobRun, step manifest.Step, emit func(StepResult), markFailed func()) Status {
	if jr.job.BeforeStep != nil {
		release, err := jr.job.BeforeStep(ctx, step)
		if release != nil {
			defer release()
		}
		if err != nil {
			r := e.notRun(jr.job, step, StatusFailed, "before step: "+err.Error())
			if ctx.Err() != nil {
				// Cut off while waiting for its turn (the daemon is
				// stopping): say so, not the context's error.
				r.Status, r.Reason = StatusInterrupted, "not started: the run was stopped before "+string(step.Name)+" could start"
			}
			markFailed()
			emit(r)
			return r.Status
		}
	}
	alone, redos := false, 0
	for n := 1; ; n++ {
		r, end := e.attempt(ctx, jr, step, n, alone)
		if end.redoAlone && !alone && ctx.Err() == nil {
			// Inconclusive (see gate): not a failure of the step, and not
			// one of its retries.
			emit(r)
			alone, redos = true, redos+1
			continue
		}
		last := r.Status == StatusSucceeded || !end.retryable || n-redos > step.Retries || ctx.Err() != nil
		if last && r.Status.Failed() {
			markFailed()
		}
		emit(r)
		if r.Status == StatusSucceeded {
			for k, v := range end.outputs {
				if jr.outputs == nil {
					jr.outputs = map[string]string{}
				}
				jr.outputs[k] = v
			}
		}
		if last {
			return r.Status
		}
		if !sleep(ctx, e.backoff(n)) {
			// The attempt was reported as failed; the retry never started.
			emit(e.notRun(jr.job, step, StatusInterrupted, fmt.Sprintf("interrupted before attempt %d: %v", n+1, context.Cause(ctx))))
			return StatusInterrupted
		}
	}
}

// backoff is the jittered delay before the retry after attempt n: the base
// doubled per attempt, capped, then drawn from [d/2, d).
func (e *Executor) backoff(n int) time.Duration {
	d := e.opts.RetryBackoff
	for i := 1; i < n && d < maxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, maxRetryBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
