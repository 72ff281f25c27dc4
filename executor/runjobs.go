package executor

import (
	"context"
	"fmt"
	"sync"

	"github.com/sre-tools/deployer/manifest"
)

// InstanceResult is the outcome of one job in RunJobs.
type InstanceResult struct {
	Instance manifest.Instance
	Status   Status
	Steps    []StepResult
}

// RunJobs runs jobs, in order, with at most bucket in flight (bucket <= 0
// means 1). Once maxFailures instances have failed (maxFailures <= 0: no
// budget), no new job starts, the running ones finish, and the steps of the
// rest are reported "not-started". When ctx is cancelled, running jobs are
// interrupted and jobs not yet started are reported "not-started". report may
// be nil; calls to it are serialised. Results are in the order of jobs.
func (e *Executor) RunJobs(ctx context.Context, jobs []Job, bucket, maxFailures int, report func(StepResult)) []InstanceResult {
	return e.RunJobsUntil(ctx, nil, jobs, bucket, maxFailures, report)
}

// RunJobsUntil is RunJobs that also stops starting jobs once halt is done
// (nil: never): the jobs running then go on under ctx and finish, the
// rest are reported "not-started" with a reason that begins with
// NotStartedHalted and ends with halt's cause. The daemon halts when it is
// told to stop: in-flight instances may finish within the grace period,
// no new one starts.
func (e *Executor) RunJobsUntil(ctx, halt context.Context, jobs []Job, bucket, maxFailures int, report func(StepResult)) []InstanceResult {
	bucket = max(bucket, 1)
	if halt == nil {
		halt = context.Background()
	}
	var reportMu sync.Mutex
	serial := func(r StepResult) {
		if report != nil {
			reportMu.Lock()
			defer reportMu.Unlock()
			report(r)
		}
	}
	var mu sync.Mutex
	failures := 0
	onFail := func() { mu.Lock(); failures++; mu.Unlock() }
	spent := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		return failures, maxFailures > 0 && failures >= maxFailures
	}
	gs := gatesFor(jobs)
	ws := e.watchJobs(jobs, true)
	defer e.releaseWatches(ws)
	results := make([]InstanceResult, len(jobs))
	slots := make(chan struct{}, bucket)
	var wg sync.WaitGroup
	for i, job := range jobs {
		if reason, stop := e.acquire(ctx, halt, slots, spent, maxFailures); stop {
			for j := i; j < len(jobs); j++ {
				results[j] = e.notStarted(jobs[j], reason, serial)
			}
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			steps := e.runJob(ctx, job, serial, onFail, gs[job.RepoRoot], ws[job.RepoRoot])
			results[i] = InstanceResult{Instance: job.Instance, Status: instanceStatus(steps), Steps: steps}
		}()
	}
	wg.Wait()
	return results
}

// NotStartedHalted begins the reason of a job that RunJobsUntil did not
// start because it was halted.
const NotStartedHalted = "not started: "

// acquire takes a slot for the next job, or says why no more jobs start.
func (e *Executor) acquire(ctx, halt context.Context, slots chan struct{}, spent func() (int, bool), maxFailures int) (string, bool) {
	took := false
	select {
	case slots <- struct{}{}:
		took = true
	case <-ctx.Done():
	case <-halt.Done():
	}
	if ctx.Err() != nil || halt.Err() != nil {
		// Checked after a slot was taken too: a slot and the stop may
		// be ready at once, and the stop wins.
		if took {
			<-slots
		}
		if ctx.Err() != nil {
			return fmt.Sprintf("interrupted before the instance started: %v", context.Cause(ctx)), true
		}
		return NotStartedHalted + context.Cause(halt).Error(), true
	}
	if n, ok := spent(); ok {
		<-slots
		return fmt.Sprintf("failure budget spent: %d of %d instances failed", n, maxFailures), true
	}
	return "", false
}

// notStarted reports every step of job as not started.
func (e *Executor) notStarted(job Job, reason string, report func(StepResult)) InstanceResult {
	ir := InstanceResult{Instance: job.Instance, Status: StatusNotStarted}
	for _, s := range job.Steps {
		r := e.notRun(job, s, StatusNotStarted, reason)
		ir.Steps = append(ir.Steps, r)
		report(r)
	}
	return ir
}

// instanceStatus summarises an instance from its steps' final results:
// failed if a step failed or timed out, else interrupted if one was,
// else succeeded.
func instanceStatus(steps []StepResult) Status {
	final := map[manifest.StepName]Status{}
	for _, r := range steps {
		final[r.Step] = r.Status
	}
	st := StatusSucceeded
	for _, s := range final {
		switch {
		case s.Failed():
			return StatusFailed
		case s == StatusInterrupted:
			st = StatusInterrupted
		}
	}
	return st
}
