package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

var _ deployer.Service = (*Daemon)(nil)

// Status answers from the workers' snapshots and the state file; it never
// waits for a run.
func (d *Daemon) Status(ctx context.Context) (deployer.Status, error) {
	st := deployer.Status{Host: d.opts.Host, Version: Version, Started: d.started, Repos: []deployer.RepoStatus{}}
	// One read of the open interventions and of the schedule for every repo.
	open := map[string]int{}
	if ivs, err := d.store.Interventions(store.InterventionFilter{}); err == nil {
		for _, iv := range ivs {
			if !iv.Resolved() {
				open[iv.Repo]++
			}
		}
	}
	entries := d.sched.Entries()
	for _, name := range d.repoNames() {
		if w, err := d.worker(name); err == nil {
			if _, ok := w.unrecordedIntervention(); ok {
				open[name]++ // host-resource not yet in the state file
			}
		}
	}
	for _, name := range d.repoNames() {
		w, err := d.worker(name)
		if err != nil {
			continue
		}
		snap := w.snapshot()
		rs, err := d.store.Repo(name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return deployer.Status{}, err
		}
		r := deployer.RepoStatus{
			Name: name, URL: redactURL(w.cfg.URL), Branch: w.cfg.Branch,
			Head: snap.head, Upstream: snap.upstream, Deployed: rs.Deployed,
			State: snap.state, LastError: snap.lastErr,
		}
		if r.Upstream == "" {
			r.Upstream = rs.Upstream
		}
		if !snap.lastSync.IsZero() {
			t := snap.lastSync
			r.LastSync = &t
		}
		if snap.running != nil {
			r.Running = &deployer.RunRef{ID: uint64(snap.running.ID), Status: string(snap.running.Status), Commit: snap.running.Commit, Started: snap.running.Started}
		}
		r.OpenInterventions = open[name]
		r.LastRun = d.lastRun(name)
		w.setBehind(&r)
		r.Schedules = []deployer.Schedule{}
		for _, e := range entries {
			if e.Repo == name {
				r.Schedules = append(r.Schedules, deployer.Schedule{Name: e.Name, Next: e.Next})
			}
		}
		st.Repos = append(st.Repos, r)
	}
	return st, nil
}

// Sync queues a manual run of repo; with wait it returns the run when it ended.
func (d *Daemon) Sync(ctx context.Context, repo string, wait bool) (deployer.Queued, error) {
	w, err := d.worker(repo)
	if err != nil {
		return deployer.Queued{}, deployer.Errorf(deployer.ENOTFOUND, "%v", err)
	}
	return d.queue(ctx, w, request{trigger: w.trigger(deployer.TriggerManual, "deployer sync")}, wait)
}

// queue queues r on w for an operator; with wait it returns the run that
// covered it when that ended.
func (d *Daemon) queue(ctx context.Context, w *worker, r request, wait bool) (deployer.Queued, error) {
	done := make(chan store.RunID, 1)
	r.done = done
	w.enqueue(r)
	resp := deployer.Queued{Repo: w.cfg.Name}
	if !wait {
		return resp, nil
	}
	select {
	case <-ctx.Done():
		return deployer.Queued{}, ctx.Err()
	case id := <-done:
		if id == 0 {
			return deployer.Queued{}, deployer.Errorf(deployer.EUNAVAILABLE, "repo %s: no run was recorded (the daemon is stopping or the state file failed; see its log)", w.cfg.Name)
		}
		run, err := d.Run(ctx, uint64(id))
		if err != nil {
			return deployer.Queued{}, err
		}
		resp.Run = &run
		return resp, nil
	}
}

// Runs lists runs newest first.
func (d *Daemon) Runs(ctx context.Context, repo string, limit int) ([]deployer.Run, error) {
	if repo != "" {
		if _, err := d.worker(repo); err != nil {
			return nil, deployer.Errorf(deployer.ENOTFOUND, "%v", err)
		}
	}
	runs, err := d.store.Runs(repo, limit)
	if err != nil {
		return nil, err
	}
	out := make([]deployer.Run, len(runs))
	for i, r := range runs {
		out[i] = domainRun(r)
	}
	return out, nil
}

// Run returns one run with every step attempt.
func (d *Daemon) Run(ctx context.Context, id uint64) (deployer.Run, error) {
	r, steps, err := d.runRecord(id)
	if err != nil {
		return deployer.Run{}, err
	}
	out := domainRun(r)
	for _, s := range steps {
		out.Steps = append(out.Steps, stepResult(s))
	}
	return out, nil
}

// Ready returns nil once every repo's checkout is open.
func (d *Daemon) Ready() error {
	for _, name := range d.repoNames() {
		w, err := d.worker(name)
		if err != nil || !w.snapshot().opened {
			return fmt.Errorf("repo %s: checkout not ready", name)
		}
	}
	return nil
}

// runRecord reads run id and its step records.
func (d *Daemon) runRecord(id uint64) (store.Run, []store.StepRecord, error) {
	r, err := d.store.Run(store.RunID(id))
	if errors.Is(err, store.ErrNotFound) {
		return r, nil, deployer.Errorf(deployer.ENOTFOUND, "run %d not found", id)
	}
	if err != nil {
		return r, nil, err
	}
	steps, err := d.store.Steps(r.ID)
	return r, steps, err
}

// domainRun is a recorded run in the domain's words (its steps not read).
func domainRun(r store.Run) deployer.Run {
	out := deployer.Run{ID: uint64(r.ID), Repo: r.Repo, Base: r.Base, Commit: r.Commit, Status: deployer.RunStatus(r.Status),
		Error: r.Error, Started: r.Started, Ended: r.Ended}
	for _, t := range r.Triggers {
		out.Triggers = append(out.Triggers, deployer.Trigger{Kind: t.Kind, Detail: t.Detail, At: t.At})
	}
	for _, o := range r.Instances {
		out.Instances = append(out.Instances, deployer.InstanceOutcome{Name: o.Name, File: o.File, Status: o.Status, Reason: o.Reason, Commit: o.Commit, Reasons: o.Reasons})
	}
	return out
}

// Alive reports whether the scheduler answers within timeout (it takes its
// own lock): part of the watchdog's proof of life. One probe at most is in
// flight: while the scheduler is stuck, every call waits on the same one
// (no goroutine is left behind per watchdog tick).
func (d *Daemon) Alive(timeout time.Duration) error {
	d.aliveMu.Lock()
	probe := d.aliveProbe
	if probe == nil {
		probe = make(chan struct{})
		d.aliveProbe = probe
		go func() {
			d.aliveCheck()
			d.aliveMu.Lock()
			d.aliveProbe = nil
			d.aliveMu.Unlock()
			close(probe)
		}()
	}
	d.aliveMu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-probe:
		return nil
	case <-t.C:
		return fmt.Errorf("scheduler did not answer within %s", timeout)
	}
}

// Summary is a one-line status for systemd (STATUS=).
func (d *Daemon) Summary() string {
	running := 0
	names := d.repoNames()
	for _, name := range names {
		if w, err := d.worker(name); err == nil && w.snapshot().running != nil {
			running++
		}
	}
	open := 0
	if ivs, err := d.store.Interventions(store.InterventionFilter{}); err == nil {
		for _, iv := range ivs {
			if !iv.Resolved() {
				open++
			}
		}
	}
	return fmt.Sprintf("%d repos, %d runs in flight, %d open interventions", len(names), running, open)
}
