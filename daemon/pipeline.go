package daemon

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

// runOnce syncs the repo and, when there is something to deploy or an
// operator asked, records and executes one run. It returns the run's id, or
// 0 when nothing was recorded.
func (w *worker) runOnce(ctx context.Context, reqs []request) store.RunID {
	triggers := make([]store.Trigger, len(reqs))
	manual := false
	var forced []string
	for i, r := range reqs {
		triggers[i] = r.trigger
		manual = manual || r.done != nil || r.trigger.Kind == deployer.TriggerRetry
		forced = append(forced, r.instances...)
	}
	if !w.probeResource() {
		// host-resource: nothing can be recorded; the probe runs again
		// at the next trigger (polls go on).
		return 0
	}
	if w.leftRunning {
		w.leftRunning = !w.finishLeftRunning()
	}
	p, ok := w.prepareRun(ctx, runEntry{triggers: triggers, manual: manual})
	if !ok {
		return p.run
	}
	rs := p.rs
	head := w.repo.Head()
	if head == rs.Deployed && !manual {
		return 0
	}
	if !manual && w.alreadyTried(rs, head) {
		return 0
	}
	return w.execute(ctx, triggers, &rs, head, forced)
}

// sync fetches and fast-forwards, recording the outcome on rs. It reports
// whether the checkout is fit to deploy from.
func (w *worker) sync(ctx context.Context, rs *store.RepoState, manual bool) bool {
	w.gitMu.Lock()
	if gerr := w.guardGitFiles("something outside the daemon"); gerr != nil {
		w.log.Error().Err(gerr).Msg("before sync")
	}
	w.gitMu.Unlock()
	start := time.Now()
	res, err := w.repo.Sync(ctx, rs.Upstream)
	w.gitMu.Lock()
	w.keepGitFiles()
	w.gitMu.Unlock()
	// Sync scans the worktree only when it moves the checkout.
	scanned := res.Before != res.Head
	if err == nil && manual && !scanned {
		// An operator's run must not start from a hand-edited checkout.
		res, err = w.repo.CheckDirty()
		scanned = true
	}
	took := time.Since(start)
	w.d.metrics.syncDuration.WithLabelValues(w.cfg.Name).Observe(took.Seconds())
	switch {
	case err == nil && res.State == syncer.StateCorrupt:
		// Re-cloned: every edit the journal still holds open (the readable
		// unpushed commits in res.Ours, and those whose commits were lost
		// with the broken checkout) is re-applied on the fresh clone.
		w.log.Warn().Str("detail", res.Detail).Msg("the checkout was broken and has been re-cloned")
		w.recoverJournal(ctx)
	case err == nil && len(res.Ours) > 0 && res.State == syncer.StateAheadOurs:
		w.settlePushedBySync(res.Ours)
	case err == nil && len(res.Ours) > 0:
		err = w.reapply(ctx, res.Ours)
	}
	now := w.d.now()
	rs.LastSync = now
	if err != nil {
		rs.SyncState = string(res.State)
		if isResource(err) {
			// Not the remote's fault, whatever state the syncer gave.
			rs.SyncState = string(syncer.StateResource)
		}
		if rs.SyncState == "" {
			rs.SyncState = "error"
		}
		rs.LastError = err.Error()
		if rs.SyncState == string(syncer.StateResource) {
			rs.LastError = resourceText(rs.LastError)
		}
		w.log.Error().Str("error", rs.LastError).Str("state", rs.SyncState).Dur("duration", took).Msg("sync failed")
		w.syncFailed(res, err)
	} else {
		w.syncSucceeded(scanned)
		// The checkout is now at upstream: say so, whatever sync found.
		rs.SyncState = "clean"
		rs.LastSyncOK = now
		rs.LastError = ""
		if res.Upstream != "" {
			rs.Upstream = res.Upstream
		}
		if res.Before != res.Head {
			w.log.Info().Str("from", short(res.Before)).Str("to", short(res.Head)).Str("state", rs.SyncState).Dur("duration", took).Msg("checkout moved")
		}
	}
	rs.Head = w.repo.Head()
	w.updateRepo(func(st *store.RepoState) {
		st.LastSync, st.SyncState, st.LastError, st.LastSyncOK = rs.LastSync, rs.SyncState, rs.LastError, rs.LastSyncOK
		st.Upstream, st.Head = rs.Upstream, rs.Head
	})
	w.d.metrics.synced(w.cfg.Name, rs.SyncState, rs.LastSyncOK)
	shown := fetchedUpstream(res, rs.Upstream)
	w.setSnap(func(s *snapshot) {
		s.state, s.head, s.upstream, s.lastSync, s.lastErr = rs.SyncState, rs.Head, shown, now, rs.LastError
	})
	w.noteBehind(rs.Deployed, shown)
	return err == nil
}

// settlePushedBySync settles as landed the journal entries whose commits a
// sync found unpushed (ahead-ours) and pushed: otherwise they would stay
// "committed" and the next start would settle them again (as dropped).
func (w *worker) settlePushedBySync(ids []string) {
	for _, id := range ids {
		e, err := w.d.store.JournalEntry(id)
		if err != nil || (e.State != store.JournalPending && e.State != store.JournalCommitted) {
			continue
		}
		w.settleChange(e, syncer.Outcome{ID: id, Status: syncer.OutcomeLanded, Commit: e.Commit})
	}
}

// landedLate clears what an edit that landed after its step gave up held:
// a step whose write-back could not be pushed (remote unreachable) failed
// with "not pushed yet" so that nothing was redeployed from a state not on
// the remote. Once a later sync or re-apply landed the edit, the cause is
// gone: the step-failed intervention resolves itself and the instance is
// run again, as a retry.
func (w *worker) landedLate(e store.JournalEntry) {
	iv, open := w.openIntervention(deployer.KindStepFailed, e.Instance)
	if !open || !strings.Contains(iv.Summary+"\n"+iv.Evidence.Output, unpushedMarker) {
		return
	}
	w.clear(deployer.KindStepFailed, e.Instance, "its write-back landed after the step gave up (remote reachable again); retrying")
	w.enqueueRetry(fmt.Sprintf("write-back of %s landed late (journal %s)", e.File, e.ID), e.Instance)
}

// alreadyTried reports whether the last run ran at head and ended in a way
// that only a new commit or an operator can change (an invalid manifest).
func (w *worker) alreadyTried(rs store.RepoState, head string) bool {
	if rs.LastRun == 0 {
		return false
	}
	last, err := w.d.store.Run(rs.LastRun)
	if err != nil {
		return false
	}
	return last.Commit == head && last.Status == store.RunInvalid
}

// execute records a run at head and carries it out.
func (w *worker) execute(ctx context.Context, triggers []store.Trigger, rs *store.RepoState, head string, forced []string) store.RunID {
	run, ok := w.runAt(ctx, triggers, *rs, func(run *store.Run) {
		rs.LastRun = run.ID
		w.updateRepo(func(st *store.RepoState) { st.LastRun = run.ID })
		w.carryOut(ctx, run, rs, forced)
	})
	if ok && run.Status != store.RunInterrupted && run.Status != store.RunInvalid {
		rs.Deployed = w.deployedAfter(head)
		w.updateRepo(func(st *store.RepoState) { st.Deployed = rs.Deployed })
		w.noteBehind(rs.Deployed, w.shownUpstream(rs.Upstream))
	}
	return run.ID
}

// runAt records a run at the checkout's HEAD, shows it in flight, lets
// carry fill in its plan and outcome, and records how it ended. It is the
// one place every kind of run (commit, schedule, deployment, replay) is
// recorded.
func (w *worker) runAt(ctx context.Context, triggers []store.Trigger, rs store.RepoState, carry func(*store.Run)) (store.Run, bool) {
	run := store.Run{Repo: w.cfg.Name, Triggers: triggers, Base: rs.Deployed, Commit: w.repo.Head(), Status: store.RunRunning, Started: w.d.now()}
	id, err := w.d.store.CreateRun(run)
	if err != nil {
		w.log.Error().Err(err).Msg("record run")
		w.noteResource("recording a run", err)
		return run, false
	}
	run.ID = id
	w.takeRecordFailed()
	log := w.log.With().Uint64("run", uint64(id)).Str("commit", short(run.Commit)).Str("trigger", string(triggers[0].Kind)).Logger()
	log.Info().Str("base", short(rs.Deployed)).Msg("run started")
	w.setSnap(func(s *snapshot) { r := run; s.running = &r })
	defer w.setSnap(func(s *snapshot) { s.running = nil })
	w.landed, w.held = map[string]string{}, map[string]bool{}
	carry(&run)
	w.landed, w.held = nil, nil
	run.Ended = w.d.now()
	ok := true
	if w.takeRecordFailed() && run.Status != store.RunInvalid {
		// Some of the run's records (or its checkout writes) failed: it is
		// not what it should be, so it ends interrupted and is redone.
		run.Status = store.RunInterrupted
		if run.Error == "" {
			run.Error = "a record of the run could not be written (see host-resource); it is redone"
		}
	}
	if err := w.d.store.UpdateRun(run); err != nil {
		log.Error().Err(err).Msg("record run outcome")
		w.noteResource("recording a run's outcome", err)
		// Left running in the state file: finished as interrupted at the
		// next chance, and redone (the deployed commit does not advance).
		w.leftRunning, ok = true, false
		run.Status = store.RunInterrupted
	}
	w.d.metrics.runEnded(run)
	log.Info().Str("status", string(run.Status)).Int("instances", len(run.Instances)).Str("error", run.Error).Msg("run ended")
	return run, ok
}

// carryOut loads the manifest, plans and executes; it sets run's status.
func (w *worker) carryOut(ctx context.Context, run *store.Run, rs *store.RepoState, forced []string) {
	m, err := manifest.Load(w.repo.Dir(), w.manifestOptions())
	if err != nil {
		run.Status, run.Error = store.RunInvalid, err.Error()
		w.raiseManifestInvalid(*run, err)
		return
	}
	w.clear(deployer.KindManifestInvalid, "", "a valid manifest arrived at "+short(run.Commit))
	w.setSchedules(m)
	w.d.metrics.keepSteps(w.cfg.Name, manifestSteps(m))
	if rs.Deployed == "" {
		// First start on this repo: adopt the current commit as deployed
		// rather than redeploying every instance on a daemon install.
		run.Status = store.RunSucceeded
		run.Triggers = append(run.Triggers, w.trigger(deployer.TriggerBaseline, "first run on this host: commit adopted as deployed, no steps run"))
		return
	}
	plan, err := w.plan(m, rs.Deployed, run.Commit, forced)
	if err != nil {
		run.Status, run.Error = store.RunFailed, err.Error()
		return
	}
	bucket, budget := 1, 0
	if m.OnChange != nil {
		bucket, budget = m.OnChange.Bucket, m.OnChange.MaxFailures
	}
	w.executePlan(ctx, run, m, plan, bucket, budget)
}

// executePlan records the plan on the run, runs its jobs and sets the
// run's status from the instances' outcomes.
func (w *worker) executePlan(ctx context.Context, run *store.Run, m *manifest.Manifest, plan plan, bucket, maxFailures int) {
	run.Instances = plan.outcomes
	for _, o := range plan.outcomes {
		if strings.HasPrefix(o.Reason, "instance-invalid: ") {
			w.raiseInstanceInvalid(*run, o)
			w.recordInvalid(*run, o)
		}
	}
	if err := w.d.store.UpdateRun(*run); err != nil {
		w.log.Error().Err(err).Msg("record plan")
	}
	if len(plan.jobs) == 0 {
		run.Status = finalStatus(run.Instances)
		noteFailures(run)
		return
	}
	plan.settleEach = !plan.dryRun
	results := w.runJobs(ctx, run, m, plan, bucket, maxFailures)
	w.settle(run, results)
	if ctx.Err() != nil {
		run.Status = store.RunInterrupted
		return
	}
	if n := halted(results); n > 0 {
		// The daemon stopped before every instance started: the run is
		// interrupted (the deployed commit stays), and the next start
		// plans again the instances that did not succeed.
		run.Status, run.Error = store.RunInterrupted, fmt.Sprintf("%d instance(s) not started: the daemon stopped; they run at the next start", n)
		return
	}
	run.Status = finalStatus(run.Instances)
	noteFailures(run)
}

// noteFailures gives a failed run with no error of its own one that names
// its failed instances (at most 3) and why, so that no run reads failed
// without a visible reason.
func noteFailures(run *store.Run) {
	if run.Status != store.RunFailed || run.Error != "" {
		return
	}
	var failed []string
	n := 0
	for _, o := range run.Instances {
		if o.Status == string(executor.StatusSucceeded) || o.Status == string(executor.StatusSkipped) {
			continue
		}
		if n++; n > 3 {
			continue
		}
		why := o.Status
		if o.Reason != "" {
			why = o.Reason
		}
		if r := []rune(why); len(r) > 160 {
			why = string(r[:160]) + "…"
		}
		failed = append(failed, fmt.Sprintf("%s (%s)", o.Name, why))
	}
	if n > 3 {
		failed = append(failed, "…")
	}
	run.Error = fmt.Sprintf("%d instance(s) did not succeed: %s", n, strings.Join(failed, "; "))
}

func (w *worker) runJobs(ctx context.Context, run *store.Run, m *manifest.Manifest, p plan, bucket, maxFailures int) []executor.InstanceResult {
	return w.runJobsAt(ctx, run, m, p, bucket, maxFailures, nil)
}

// runJobsAt is runJobs where an instance's steps see the commit that
// holds its edit (commits, by instance name: a deployment's write-back
// commit) instead of the run's: DEPLOYER_COMMIT, {commit} and the step
// records agree on it, so `step run` at that commit finds them.
func (w *worker) runJobsAt(ctx context.Context, run *store.Run, m *manifest.Manifest, p plan, bucket, maxFailures int, commits map[string]string) []executor.InstanceResult {
	bucket = max(bucket, 1)
	secrets, err := readEnvFiles(w.cfg.EnvFiles)
	if err != nil {
		// Without its secrets no step can work: every instance fails with
		// the reason, and the run says so.
		w.log.Error().Err(err).Msg("read env files")
		run.Error = err.Error()
		out := make([]executor.InstanceResult, len(p.jobs))
		for i, j := range p.jobs {
			out[i] = executor.InstanceResult{Instance: j.Instance, Status: executor.StatusFailed,
				Steps: []executor.StepResult{{Instance: j.Instance.Name, Status: executor.StatusFailed, Reason: err.Error()}}}
		}
		return out
	}
	env := executor.StepEnv{Host: w.d.opts.Host, Repo: w.cfg.Name, Commit: run.Commit, Run: strconv.FormatUint(uint64(run.ID), 10), DryRun: p.dryRun}
	for i := range p.jobs {
		job := &p.jobs[i]
		job.RepoRoot = w.repo.Dir()
		job.AllowStepDirs = w.d.opts.AllowStepDirs
		jobEnv := env
		if c := commits[string(job.Instance.Name)]; c != "" {
			jobEnv.Commit = c
		}
		jobEnv.Apply(job)
		job.Secrets = secrets
		file, dryRun, name := job.Instance.File, p.dryRun, string(job.Instance.Name)
		job.BeforeStep = func(ctx context.Context, s manifest.Step) (func(), error) {
			w.steps.start(run.ID, name, string(s.Name))
			failpointAfter(fpMidStep, midStepDelay)
			if s.Writes != "instance" {
				return nil, nil
			}
			select {
			case w.writer <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			// Recorded before the step starts: if the daemon dies while it
			// runs, the next start restores the file and runs it again.
			if err := w.d.store.BeginStep(store.InflightStep{Repo: w.cfg.Name, Instance: name, File: file, Step: string(s.Name), Run: run.ID}); err != nil {
				<-w.writer
				return nil, err
			}
			return func() {
				if err := w.d.store.EndStep(w.cfg.Name, name, string(s.Name)); err != nil {
					// The record stays: the next start rolls back (a no-op
					// on a clean file) and runs the instance again.
					w.log.Error().Err(err).Str("instance", name).Msg("clear in-flight step")
				}
				<-w.writer
			}, nil
		}
		job.AfterAttempt = w.afterAttempt
		job.AfterStep = func(ctx context.Context, r executor.StepResult) error {
			if s, ok := m.Step(r.Step); ok && s.Writes == "instance" {
				return w.captureWrite(ctx, run, r, file, dryRun)
			}
			return nil
		}
	}
	finishing := w.finishingInstances(run, p)
	report := func(r executor.StepResult) {
		if !r.Started.IsZero() && !r.Ended.IsZero() && r.Status != executor.StatusSkipped && r.Status != executor.StatusNotStarted {
			w.d.metrics.stepEnded(w.cfg.Name, string(r.Step), string(r.Status), r.Ended.Sub(r.Started))
		}
		if r.Attempt == 0 && (r.Status == executor.StatusInterrupted || r.Status == executor.StatusNotStarted) {
			// Never started: no attempt to record (not "attempt 0 ...
			// argv []"); the instance's outcome on the run says why.
			return
		}
		commit := run.Commit
		if c := commits[string(r.Instance)]; c != "" {
			commit = c
		}
		rec := storeStep(run.ID, r.Record(commit))
		var err error
		if st, done := finishing.succeeded(r); done {
			// Its last step: the instance's state goes with the record,
			// in the same transaction: durable as soon as the record is.
			err = w.d.store.AddFinalStep(rec, w.finishedState(run, st))
		} else {
			err = w.d.store.AddStep(rec)
		}
		if err != nil {
			w.log.Error().Err(err).Msg("record step")
			w.recordError("recording a step", err)
		}
	}
	// Once the daemon is told to stop, no new instance starts: those in
	// flight finish within the grace period, the rest are not started
	// (with errStopping) and the run ends interrupted.
	halt, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	if w.halt != nil {
		defer context.AfterFunc(w.halt, func() { stop(errStopping) })()
	}
	return w.d.exec.RunJobsUntil(ctx, halt, p.jobs, bucket, maxFailures, report)
}

// finishing follows the attempts of a run's instances as they are
// reported (report's calls are serialised), to tell the one that ends an
// instance whose every planned step succeeded.
type finishing struct {
	steps  map[string][]string            // instance -> its planned steps, in order
	final  map[string]map[string]bool     // instance -> step -> its last attempt succeeded
	states map[string]store.InstanceState // instance -> its state once it succeeds (less Deployed)
}

// finishingInstances is the tracking of p's instances when the run records
// each one's state as it succeeds (p.settleEach), else nil.
func (w *worker) finishingInstances(run *store.Run, p plan) *finishing {
	if !p.settleEach || p.dryRun {
		return nil
	}
	f := &finishing{steps: map[string][]string{}, final: map[string]map[string]bool{}, states: map[string]store.InstanceState{}}
	for _, j := range p.jobs {
		name := string(j.Instance.Name)
		if _, partial := w.partialReplay[name]; partial || len(j.Steps) == 0 {
			continue // settled at the run's end only (not deployed: its chain did not run)
		}
		for _, s := range j.Steps {
			f.steps[name] = append(f.steps[name], string(s.Name))
		}
		f.states[name] = store.InstanceState{Repo: w.cfg.Name, Name: name, File: j.Instance.File, LastStatus: store.InstanceSucceeded, LastRun: run.ID}
	}
	for _, o := range run.Instances {
		if st, ok := f.states[o.Name]; ok && o.Commit != "" {
			st.Deployed = o.Commit // a deployment's instance ran at the commit of its file
			f.states[o.Name] = st
		}
	}
	return f
}

// succeeded notes attempt r and reports whether it ends its instance with
// every planned step succeeded (r is then the instance's last step's
// succeeded attempt), with the instance's state.
func (f *finishing) succeeded(r executor.StepResult) (store.InstanceState, bool) {
	if f == nil {
		return store.InstanceState{}, false
	}
	name := string(r.Instance)
	steps, ok := f.steps[name]
	if !ok {
		return store.InstanceState{}, false
	}
	if f.final[name] == nil {
		f.final[name] = map[string]bool{}
	}
	f.final[name][string(r.Step)] = r.Status == executor.StatusSucceeded
	if string(r.Step) != steps[len(steps)-1] || r.Status != executor.StatusSucceeded {
		return store.InstanceState{}, false
	}
	for _, s := range steps {
		if !f.final[name][s] {
			return store.InstanceState{}, false
		}
	}
	return f.states[name], true
}

// finishedState is the state of an instance of run that has just
// succeeded, as settle records it: deployed at the run's commit, or the
// commit its write-back landed in (the step succeeded only if it landed).
// Its step-failed and instance-invalid interventions resolve now.
func (w *worker) finishedState(run *store.Run, st store.InstanceState) store.InstanceState {
	if st.Deployed == "" {
		st.Deployed = run.Commit
	}
	w.gitMu.Lock()
	if c, ok := w.landed[st.Name]; ok {
		st.Deployed = c
	}
	w.gitMu.Unlock()
	st.Updated = w.d.now()
	w.clear(deployer.KindStepFailed, st.Name, "its steps succeeded in run "+fmt.Sprint(run.ID))
	w.clear(deployer.KindInstanceInvalid, st.Name, "its steps ran in run "+fmt.Sprint(run.ID))
	return st
}

// errStopping is why an instance of a run did not start: the daemon (or
// the repo's worker, on a reload) was stopping.
var errStopping = errors.New("the daemon is stopping; it runs at the next start")

// halted counts the instances of results that did not start because the
// daemon was stopping.
func halted(results []executor.InstanceResult) int {
	n := 0
	for _, r := range results {
		if r.Status == executor.StatusNotStarted && len(r.Steps) > 0 && strings.HasPrefix(r.Steps[0].Reason, executor.NotStartedHalted) {
			n++
		}
	}
	return n
}

// settle records each instance's outcome on the run and in the instances bucket.
func (w *worker) settle(run *store.Run, results []executor.InstanceResult) {
	w.settleRun(run, results, false)
}

// settleRun is settle; with dryRun it records the outcomes on the run
// only: no instance state, no intervention raised or cleared (a dry run
// has no side effects on later runs).
func (w *worker) settleRun(run *store.Run, results []executor.InstanceResult, dryRun bool) {
	byName := map[string]executor.InstanceResult{}
	for _, r := range results {
		byName[string(r.Instance.Name)] = r
	}
	// The instances' states are written together, in one transaction.
	var states []store.InstanceState
	defer func() {
		if len(states) == 0 {
			return
		}
		if err := w.d.store.SetInstances(states); err != nil {
			w.log.Error().Err(err).Int("instances", len(states)).Msg("record instances")
		}
	}()
	for i := range run.Instances {
		o := &run.Instances[i]
		r, ok := byName[o.Name]
		if !ok {
			continue
		}
		o.Status, o.Reason = string(r.Status), instanceReason(r)
		if dryRun {
			continue // a dry run records its outcome on the run only
		}
		st := store.InstanceState{Repo: w.cfg.Name, Name: o.Name, File: o.File, LastStatus: o.Status, LastRun: run.ID, Updated: w.d.now()}
		if prev, err := w.instanceState(o.Name); err == nil {
			st.Deployed = prev.Deployed
		}
		if why, partial := w.partialReplay[o.Name]; partial && r.Status == executor.StatusSucceeded {
			w.notePartialReplay(*run, o.Name, why) // not deployed: its chain did not run
		} else if r.Status == executor.StatusSucceeded {
			st.Deployed = run.Commit
			if o.Commit != "" {
				st.Deployed = o.Commit // a deployment's instance ran at the commit of its file
			}
			w.gitMu.Lock()
			if c, ok := w.landed[o.Name]; ok {
				st.Deployed = c // its file as written back is what was deployed
			}
			w.gitMu.Unlock()
			w.clear(deployer.KindStepFailed, o.Name, "its steps succeeded in run "+fmt.Sprint(run.ID))
			w.clear(deployer.KindInstanceInvalid, o.Name, "its steps ran in run "+fmt.Sprint(run.ID))
		} else if out := failedOutput(r); isResourceText(out) {
			// Not the instance's fault: the host could not write (its
			// output file, its checkout, the state file). The repo is
			// blocked until writes work; the run is redone then.
			w.resourceFailed(fmt.Sprintf("step of %s", o.Name), errors.New(strings.TrimSpace(out)))
		} else if (r.Status == executor.StatusFailed || r.Status == executor.StatusTimedOut) && !w.held[o.Name] {
			w.raiseStepFailed(*run, *o, out)
		}
		states = append(states, st)
	}
}

// recordInvalid records an instance whose file did not parse in the
// instances bucket (its deployed commit unchanged): resolve --retry finds
// the file of the instance to run there, as for any instance that ran.
func (w *worker) recordInvalid(run store.Run, o store.InstanceOutcome) {
	st := store.InstanceState{Repo: w.cfg.Name, Name: o.Name, File: o.File, LastStatus: o.Status, LastRun: run.ID, Updated: w.d.now()}
	if prev, err := w.instanceState(o.Name); err == nil {
		st.Deployed = prev.Deployed
	}
	if err := w.d.store.SetInstance(st); err != nil {
		w.log.Error().Err(err).Str("instance", o.Name).Msg("record instance")
	}
}

// instanceState reads one instance's state by its key (a scan of the
// repo's instances here made a deployment quadratic in the repo's size).
func (w *worker) instanceState(name string) (store.InstanceState, error) {
	return w.d.store.Instance(w.cfg.Name, name)
}

// failedOutput is the output tail of the step that failed an instance.
func failedOutput(r executor.InstanceResult) string {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		s := r.Steps[i]
		if s.Status == executor.StatusFailed || s.Status == executor.StatusTimedOut {
			out := s.OutputTail
			if out == "" {
				out = s.OutputHead
			}
			return fmt.Sprintf("%s attempt %d: %s\n%s", s.Step, s.Attempt, s.Reason, out)
		}
	}
	return ""
}

func instanceReason(r executor.InstanceResult) string {
	for _, s := range r.Steps {
		if s.Status != executor.StatusSucceeded {
			return fmt.Sprintf("%s: %s", s.Step, s.Reason)
		}
	}
	return ""
}

func finalStatus(outcomes []store.InstanceOutcome) store.RunStatus {
	for _, o := range outcomes {
		if o.Status != string(executor.StatusSucceeded) && o.Status != string(executor.StatusSkipped) {
			return store.RunFailed
		}
	}
	return store.RunSucceeded
}

// updateRepo changes the fields fn sets in the stored repo state, in one
// store transaction: the fields other writers own (a schedule's fire
// times, the run the worker recorded) are never written from a stale
// copy.
func (w *worker) updateRepo(fn func(*store.RepoState)) {
	if _, err := w.d.store.UpdateRepoState(w.cfg.Name, func(st *store.RepoState) error { fn(st); return nil }); err != nil {
		w.log.Error().Err(err).Msg("record repo state")
		w.noteResource("recording the repo state", err)
	}
}

func short(commit string) string {
	if len(commit) > 10 {
		return commit[:10]
	}
	return commit
}

// manifestSteps lists the names of m's steps.
func manifestSteps(m *manifest.Manifest) []string {
	names := make([]string, len(m.Steps))
	for i, s := range m.Steps {
		names[i] = string(s.Name)
	}
	return names
}

// manifestOptions are the options every manifest load of this daemon uses.
func (w *worker) manifestOptions() manifest.Options {
	return manifest.Options{AllowStepDirs: w.d.opts.AllowStepDirs, Limits: w.d.Limits()}
}
