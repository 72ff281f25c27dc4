package daemon

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/schedule"
	"github.com/sre-tools/deployer/store"
)

// The store keeps when each schedule last fired: *store.Store is the
// scheduler's State.
var _ schedule.State = (*store.Store)(nil)

// fire queues a scheduled run on the repo's worker; it never blocks.
func (d *Daemon) fire(f schedule.Fire) {
	w, err := d.worker(f.Repo)
	if err != nil {
		return
	}
	detail := fmt.Sprintf("%s (%s), due %s", f.Schedule.Name, f.Schedule.Cron, f.At.Format(time.RFC3339))
	if f.Missed {
		detail = fmt.Sprintf("%s: catch-up of %d missed time(s), the last at %s", f.Schedule.Name, f.Count, f.At.Format(time.RFC3339))
	}
	sc := f.Schedule
	w.enqueue(request{trigger: w.trigger(deployer.TriggerSchedule, detail), schedule: &sc, fire: f})
}

// setSchedules loads the manifest's schedules into the scheduler; it is
// called whenever a valid manifest is loaded, so schedules follow commits.
func (w *worker) setSchedules(m *manifest.Manifest) {
	if err := w.d.sched.Set(w.cfg.Name, m.Schedules); err != nil {
		w.log.Error().Err(err).Msg("schedules not reloaded; the previous ones stay")
	}
}

// startSchedules loads the checkout's schedules at start and deals with the
// times missed while the daemon was down: caught up when the schedule says
// catch-up="true", recorded as missed otherwise.
func (w *worker) startSchedules() {
	m, err := manifest.Load(w.repo.Dir(), w.manifestOptions())
	if err != nil {
		return // the first run raises manifest-invalid
	}
	w.setSchedules(m)
	missed, err := w.d.sched.Missed(w.cfg.Name, w.d.now())
	if err != nil {
		w.log.Error().Err(err).Msg("work out missed schedules")
		return
	}
	for _, f := range missed {
		if f.Schedule.CatchUp {
			w.d.fire(f)
			continue
		}
		now := w.d.now()
		_, err := w.d.store.CreateRun(store.Run{Repo: w.cfg.Name, Status: store.RunStatus(deployer.RunMissed), Started: now, Ended: now, Commit: w.repo.Head(),
			Triggers: []store.Trigger{{Kind: deployer.TriggerSchedule, At: now, Detail: fmt.Sprintf("%s: %d time(s) missed while the daemon was down, the last at %s; catch-up is off",
				f.Schedule.Name, f.Count, f.At.Format(time.RFC3339))}}})
		if err != nil {
			w.log.Error().Err(err).Msg("record missed schedule")
		}
	}
}

// staleFire says why a queued schedule activation is not run ("" to run
// it): a later activation of the same schedule is queued with it (one run
// per missed window, catch-up or not), or, without catch-up, a later time
// is already due (the fire waited behind a long run or a stalled process).
func (w *worker) staleFire(r request, latest time.Time) string {
	at := r.fire.At
	if at.IsZero() {
		return ""
	}
	if at.Before(latest) {
		return fmt.Sprintf("superseded by its activation at %s, queued with it", latest.Format(time.RFC3339))
	}
	if !r.schedule.CatchUp && !r.fire.Missed && w.d.sched.Stale(r.fire, w.d.now()) {
		return "a later activation is already due and catch-up is off"
	}
	return ""
}

// recordMissed records a schedule activation that was not run, as a run
// with status missed saying why.
func (w *worker) recordMissed(r request, why string) {
	now := w.d.now()
	detail := fmt.Sprintf("%s: the activation due %s was not run: %s", r.schedule.Name, r.fire.At.Format(time.RFC3339), why)
	w.log.Warn().Str("schedule", r.schedule.Name).Time("at", r.fire.At).Str("why", why).Msg("stale schedule activation not run")
	_, err := w.d.store.CreateRun(store.Run{Repo: w.cfg.Name, Status: store.RunStatus(deployer.RunMissed), Started: now, Ended: now, Commit: w.repo.Head(),
		Triggers: []store.Trigger{{Kind: deployer.TriggerSchedule, At: now, Detail: detail}}})
	if err != nil {
		w.log.Error().Err(err).Msg("record missed schedule")
	}
}

// runSchedule is one scheduled run: the schedule's steps for the instances
// its selector picks, at the current upstream commit.
func (w *worker) runSchedule(ctx context.Context, r request) store.RunID {
	trig := []store.Trigger{r.trigger}
	p, ok := w.prepareRun(ctx, runEntry{triggers: trig, manual: true})
	if !ok {
		return p.run
	}
	run, _ := w.runAt(ctx, trig, p.rs, func(run *store.Run) {
		w.carryOutSchedule(ctx, run, *r.schedule)
	})
	return run.ID
}

func (w *worker) carryOutSchedule(ctx context.Context, run *store.Run, sc manifest.Schedule) {
	m, err := manifest.Load(w.repo.Dir(), w.manifestOptions())
	if err != nil {
		run.Status, run.Error = store.RunInvalid, err.Error()
		w.raiseManifestInvalid(*run, err)
		return
	}
	steps, err := m.Order(sc.Steps)
	if err != nil {
		run.Status, run.Error = store.RunFailed, err.Error()
		return
	}
	files, err := w.selectInstances(m, sc.Select, sc.Where)
	if err != nil {
		run.Status, run.Error = store.RunFailed, err.Error()
		return
	}
	var p plan
	for _, f := range files {
		out, job, ok := w.planInstance(m, f, steps)
		p.outcomes = append(p.outcomes, out)
		if ok {
			p.jobs = append(p.jobs, job)
		}
	}
	w.executePlan(ctx, run, m, p, sc.Bucket, sc.MaxFailures)
}

// selectInstances picks the instance files matching glob (every instance
// when empty) whose XML matches the where path (when given).
func (w *worker) selectInstances(m *manifest.Manifest, glob, where string) ([]string, error) {
	all, err := m.ListInstances(w.repo.Dir())
	if err != nil && len(all) == 0 {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var files []string
	for _, in := range all {
		if glob != "" {
			if ok, err := path.Match(glob, in.File); err != nil || !ok {
				continue
			}
		}
		if where != "" {
			data, err := w.repo.ReadFile(w.repo.Head(), in.File)
			if err != nil {
				continue
			}
			doc, err := manifest.ParseDocument(data)
			if err != nil {
				continue
			}
			if n, err := doc.Count(where); err != nil || n == 0 {
				continue
			}
		}
		files = append(files, in.File)
	}
	return files, nil
}
