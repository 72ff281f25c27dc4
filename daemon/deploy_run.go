package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

// runDeployment carries out (or resumes) deployment id: the operator's
// edits through the journal and write-back, one commit per instance, then
// the steps in buckets within the failure budget; progress is saved after
// every bucket so that a restart continues where it stopped.
func (w *worker) runDeployment(ctx context.Context, r request) {
	rec, spec, saved, err := w.d.loadDeployment(r.deployment)
	if err != nil {
		w.log.Error().Err(err).Msg("load deployment")
		return
	}
	if !rec.Finished.IsZero() {
		return
	}
	log := w.log.With().Str("deployment", rec.ID).Logger()
	if spec.Request.DryRun {
		// `runs show` and `history` say the run was a dry run.
		r.trigger.Detail += dryRunLabel
	}
	trig := []store.Trigger{r.trigger}
	// save records the worker's progress over the stored deployment in
	// one transaction (a cancel the API wrote meanwhile stays, and is
	// seen here).
	save := func() {
		cur, s, err := w.d.saveProgress(rec, spec, saved, false)
		if err != nil {
			log.Error().Err(err).Msg("record deployment progress")
			return
		}
		rec, spec.Cancel = cur, s.Cancel
	}
	p, ok := w.prepareRun(ctx, runEntry{triggers: trig, manual: true})
	if !ok {
		if p.blocked != "" {
			rec.State, spec.Reason, spec.Runs = string(deployer.DeploymentBlocked), p.blocked, append(spec.Runs, uint64(p.run))
			save()
		}
		return
	}
	_, ok = w.runAt(ctx, trig, p.rs, func(run *store.Run) {
		rec.State, spec.Runs = string(deployer.DeploymentRunning), append(spec.Runs, uint64(run.ID))
		save()
		w.deploy(ctx, run, &rec, &spec, save)
	})
	if ok && ctx.Err() == nil && !w.stopping() {
		rec.State = deploymentOutcome(spec)
		w.notifyDeployment(rec, &spec, notify.EventDeploymentEnded)
	}
	if !ok {
		return
	}
	if ctx.Err() != nil || w.stopping() {
		return // interrupted: resumed at the next start
	}
	if cur, _, err := w.d.saveProgress(rec, spec, saved, true); err != nil {
		log.Error().Err(err).Msg("record deployment outcome")
	} else {
		rec = cur
	}
	log.Info().Str("state", rec.State).Msg("deployment ended")
}

func (w *worker) deploy(ctx context.Context, run *store.Run, rec *store.Deployment, spec *deploymentSpec, save func()) {
	req := spec.Request
	m, err := manifest.Load(w.repo.Dir(), w.manifestOptions())
	if err != nil {
		// It runs with no other manifest (the deployment would deploy a
		// commit with another commit's): it fails as a whole, its
		// instances not started. Submit and retry refuse it up front;
		// this is a manifest that turned invalid at the run's sync, or a
		// deployment queued before the first clone or resumed at start.
		run.Status, run.Error = store.RunInvalid, err.Error()
		w.raiseManifestInvalid(*run, err)
		spec.Failed, spec.Reason = true, w.manifestInvalidNote(run.Commit, err, "no instance was started")
		for name, in := range spec.Details {
			if in.Status.Waiting() {
				in.Status, in.Reason = deployer.InstanceNotStarted, spec.Reason
				spec.Details[name] = in
			}
		}
		return
	}
	names := make([]manifest.StepName, 0, len(req.Steps))
	for _, s := range req.Steps {
		names = append(names, manifest.StepName(s))
	}
	if len(names) == 0 && m.OnChange != nil {
		names = m.OnChange.Steps
	}
	steps, err := m.Order(names)
	if err != nil {
		run.Status, run.Error, spec.Reason, spec.Failed = store.RunFailed, err.Error(), err.Error(), true
		return
	}
	if len(spec.Details) == 0 {
		files, err := w.selectInstances(m, req.Select, req.Where)
		if req.Restore != "" {
			files, err = restoreFiles(spec.Restore), nil
		}
		if err != nil {
			run.Status, run.Error, spec.Reason = store.RunFailed, err.Error(), err.Error()
			return
		}
		if len(files) == 0 {
			all, _ := m.ListInstances(w.repo.Dir())
			msg := noMatch(len(all), req, w.cfg.Name)
			run.Status, run.Error, spec.Reason = store.RunFailed, msg, msg
			return
		}
		for _, f := range files {
			name := instanceStem(f)
			if in, err := m.ReadInstance(w.repo.Dir(), f); err == nil {
				name = string(in.Name) // the key attribute wins over the file stem
			}
			spec.Details[name] = deployer.DeploymentInstance{Name: name, File: f, Status: deployer.InstancePending}
		}
		save()
	}
	w.notifyDeployment(*rec, spec, notify.EventDeploymentStarted)
	save()
	p := w.deploymentPlan(m, steps, spec)
	// The instances that will not run (skipped for an open intervention,
	// invalid) are on the run too, with why: a retry that skips them all
	// does not record a failed run with no instance.
	for _, o := range p.outcomes {
		if o.Status != string(deployer.StepPending) {
			o.Reasons = []string{selectedBy(rec.ID)}
			run.Instances = append(run.Instances, o)
		}
	}
	bucket := req.Bucket
	if bucket == 0 {
		bucket = manifest.DefaultBucket
		if m.OnChange != nil && m.OnChange.Bucket > 0 {
			bucket = m.OnChange.Bucket
		}
	}
	p.dryRun = req.DryRun
	w.deployBuckets(ctx, run, rec, spec, m, p, bucket, save)
}

// deploymentPlan turns the deployment's pending instances into jobs.
func (w *worker) deploymentPlan(m *manifest.Manifest, steps []manifest.Step, spec *deploymentSpec) plan {
	var p plan
	for _, name := range sortedKeys(spec.Details) {
		in := spec.Details[name]
		if !deployer.InstanceStatus(in.Status).Waiting() {
			continue
		}
		out, job, ok := w.planInstance(m, in.File, steps)
		p.outcomes = append(p.outcomes, out)
		if !ok {
			in.Status, in.Reason = deployer.InstanceStatus(out.Status), out.Reason
			spec.Details[name] = in
			continue
		}
		if !in.Status.InFlight() {
			in.Status = deployer.InstancePending
		}
		spec.Details[name] = in
		p.jobs = append(p.jobs, job)
	}
	// The instances in flight when the deployment last stopped go first:
	// they finish even when the deployment was cancelled since.
	slices.SortStableFunc(p.jobs, func(a, b executor.Job) int {
		fa, fb := spec.Details[string(a.Instance.Name)].Status.InFlight(), spec.Details[string(b.Instance.Name)].Status.InFlight()
		switch {
		case fa && !fb:
			return -1
		case fb && !fa:
			return 1
		}
		return 0
	})
	return p
}

// staleDeploymentEntries returns, by file, the open entries of deployment id that were never
// committed: an earlier pass's edits that did not land (its push failed, the commit was
// reset away). The pass that journals the same edit again supersedes them; left open, such
// an entry was settled at the next start and applied the edit a second time, over a human
// commit that had rolled the first one back (an attacker's retry of a deployment whose pass
// lost push races).
func (w *worker) staleDeploymentEntries(id string) map[string][]string {
	open, err := w.d.store.PendingJournal(w.cfg.Name)
	if err != nil {
		w.log.Error().Err(err).Msg("read the journal for a deployment's earlier entries")
		return nil
	}
	stale := map[string][]string{}
	for _, e := range open {
		if e.Deployment == id && e.State == store.JournalPending && e.Commit == "" {
			stale[e.File] = append(stale[e.File], e.ID)
		}
	}
	return stale
}

// deploymentEdits journals and writes back the operator's edits, one commit
// per instance; instances whose edit did not land drop out of the plan.
//
// landed gets, for each instance whose edit landed (or was found
// upstream) in this call, the commit that holds it: the commit its steps
// run at (see instanceCommits).
func (w *worker) deploymentEdits(ctx context.Context, run *store.Run, rec *store.Deployment, spec *deploymentSpec, p plan, edits []manifest.Edit, landed map[string]string) plan {
	raw, _ := json.Marshal(edits)
	stale := w.staleDeploymentEntries(rec.ID)
	var todo []store.JournalEntry
	for _, job := range p.jobs {
		in := spec.Details[string(job.Instance.Name)]
		if in.Commit != "" {
			continue // landed before a restart
		}
		raw := raw
		if spec.Request.Restore != "" {
			ri := spec.Restore[job.Instance.File]
			if why := w.restoreConflict(spec.Request.Restore, job.Instance.File, ri); why != "" {
				in.Status, in.Reason = deployer.InstanceConflict, why
				spec.Details[string(job.Instance.Name)] = in
				continue
			}
			raw, _ = json.Marshal(ri.edits())
		}
		todo = append(todo, store.JournalEntry{Repo: w.cfg.Name, Instance: string(job.Instance.Name), File: job.Instance.File,
			BaseBlob: w.repo.Head(), Edits: raw, Author: spec.Request.Who, Reason: "deploy " + rec.ID + reasonSuffix(spec.Request.Reason),
			Run: strconv.FormatUint(uint64(run.ID), 10), Deployment: rec.ID, Trailers: deploymentTrailers(rec.ID, spec.Request.Ticket),
			Supersedes: stale[job.Instance.File]})
	}
	if len(todo) == 0 {
		return waitingJobs(p, spec)
	}
	// The bucket's edits are journaled in one transaction.
	entries, err := w.d.store.PutJournals(todo)
	if err != nil {
		w.log.Error().Err(err).Msg("journal deployment edit")
		return p
	}
	changes := make([]syncer.Change, 0, len(entries))
	kept := entries[:0]
	for _, e := range entries {
		c, err := w.change(e)
		if err != nil {
			if errors.Is(err, errRefusedEdit) {
				w.refuseEntry(e, err)
			}
			in := spec.Details[e.Instance]
			in.Status, in.Reason = deployer.InstanceFailed, err.Error()
			spec.Details[e.Instance] = in
			continue
		}
		changes = append(changes, c)
		kept = append(kept, e)
	}
	w.deploymentWriteBack(ctx, spec, kept, changes, landed)
	failpoint(fpSettled)
	return waitingJobs(p, spec)
}

// waitingJobs keeps the jobs of p whose instance still waits to run.
func waitingJobs(p plan, spec *deploymentSpec) plan {
	var jobs []executor.Job
	for _, j := range p.jobs {
		if spec.Details[string(j.Instance.Name)].Status.Waiting() {
			jobs = append(jobs, j)
		}
	}
	p.jobs = jobs
	return p
}

// deploymentTrailers are the commit trailers of an edit made inside
// deployment id.
func deploymentTrailers(id, ticket string) map[string]string {
	t := map[string]string{"Deployer-Deployment": id}
	if ticket != "" {
		t["Deployer-Ticket"] = ticket
	}
	return t
}

// alreadyUpstream is a deployment instance's Note when its edit was
// upstream already (its Commit is then the commit that holds it).
const alreadyUpstream = "edit already upstream"

// selectedBy is why a deployment's run planned an instance (its
// "planned:" line).
func selectedBy(id string) string { return "selected by deployment " + id }

// dryRunLabel marks a dry-run deployment's run (its trigger's detail).
const dryRunLabel = " (dry run)"

// deploymentWriteBack writes back a bucket's edits and records on each
// instance where its edit landed (in landed too), or why it did not.
func (w *worker) deploymentWriteBack(ctx context.Context, spec *deploymentSpec, entries []store.JournalEntry, changes []syncer.Change, landed map[string]string) {
	w.gitMu.Lock()
	defer w.gitMu.Unlock()
	settled, err := w.writeBackSettle(ctx, entries, changes)
	if err != nil {
		w.log.Error().Err(err).Int("changes", len(changes)).Msg("deployment write-back")
	}
	for _, s := range settled {
		in := spec.Details[s.entry.Instance]
		switch s.outcome.Status {
		case syncer.OutcomeLanded:
			in.Commit = s.outcome.Commit
			landed[s.entry.Instance] = in.Commit
		case syncer.OutcomeDropped:
			in.Commit, in.Note = w.fileCommit(s.entry.File), alreadyUpstream
			landed[s.entry.Instance] = in.Commit
		case syncer.OutcomeConflict:
			in.Status, in.Reason = deployer.InstanceConflict, s.msg
		default:
			in.Status, in.Reason = deployer.InstanceFailed, s.msg
		}
		spec.Details[s.entry.Instance] = in
	}
}

// deployBuckets runs the jobs a bucket at a time, saving progress and
// checking for a cancel and the failure budget between buckets.
func (w *worker) deployBuckets(ctx context.Context, run *store.Run, rec *store.Deployment, spec *deploymentSpec, m *manifest.Manifest, p plan, bucket int, save func()) {
	failed := countFailed(*spec)
	budget := spec.Request.MaxFailures
	for start := 0; start < len(p.jobs); start += bucket {
		chunk := p.jobs[start:min(start+bucket, len(p.jobs))]
		stop := ""
		if cancelled, err := w.d.deploymentCancelled(rec.ID); err == nil && cancelled {
			spec.Cancel = true
		}
		if spec.Cancel {
			stop = "deployment cancelled"
		}
		if budget > 0 && failed >= budget {
			stop = fmt.Sprintf("failure budget spent (%d of %d)", failed, budget)
		}
		if ctx.Err() != nil || w.stopping() {
			// Stopping: no new bucket starts. The deployment stays
			// unfinished and resumes at the next start.
			run.Status, run.Error = store.RunInterrupted, "the daemon stopped before the deployment ended; it resumes at the next start"
			save()
			return
		}
		if stop != "" {
			// No new instance starts; one in flight when the deployment
			// last stopped (the daemon's stop cut it off, or its edit had
			// landed and its steps had not started) still finishes.
			var inFlight []executor.Job
			for _, j := range p.jobs[start:] {
				in := spec.Details[string(j.Instance.Name)]
				if in.Status.InFlight() {
					inFlight = append(inFlight, j)
					continue
				}
				in.Status, in.Reason = deployer.InstanceNotStarted, stop
				spec.Details[string(j.Instance.Name)] = in
			}
			if len(inFlight) == 0 {
				break
			}
			p.jobs = append(p.jobs[:start:start], inFlight...)
			chunk = p.jobs[start:min(start+bucket, len(p.jobs))]
		}
		// The bucket's edits land first (one commit per instance), so that
		// no step runs from a state that is not on the remote and no
		// instance that will not start has its file changed.
		edits, _ := requestEdits(spec.Request)
		edited := (len(edits) > 0 || spec.Request.Restore != "") && !p.dryRun
		landed := map[string]string{}
		if edited {
			chunk = w.deploymentEdits(ctx, run, rec, spec, plan{jobs: chunk}, edits, landed).jobs
			for _, in := range spec.Details {
				if deployer.InstanceStatus(in.Status).Counted() {
					failed = max(failed, countFailed(*spec))
				}
			}
		}
		commits := w.instanceCommits(spec, chunk, edited, landed)
		for _, j := range chunk {
			in := spec.Details[string(j.Instance.Name)]
			in.Status = deployer.InstanceRunning
			spec.Details[string(j.Instance.Name)] = in
		}
		save()
		if len(chunk) == 0 {
			continue
		}
		left := 0
		if budget > 0 {
			left = budget - failed
		}
		// A step's write-back made inside the deployment carries its
		// trailers too.
		w.deploymentTrailers = deploymentTrailers(rec.ID, spec.Request.Ticket)
		results := w.runJobsAt(ctx, run, m, plan{jobs: chunk, dryRun: p.dryRun}, bucket, left, commits)
		w.deploymentTrailers = nil
		outs := outcomesOf(results)
		for i := range outs {
			outs[i].Commit, outs[i].Reasons = commits[outs[i].Name], []string{selectedBy(rec.ID)}
		}
		run.Instances = append(run.Instances, outs...)
		w.settleRun(run, results, p.dryRun)
		failed += recordResults(spec, results)
		if redone := redoInterrupted(spec, results); redone > 0 {
			// Cut off at the end of the grace period: those instances
			// run again when the deployment resumes at the next start.
			run.Status, run.Error = store.RunInterrupted, fmt.Sprintf("%d instance(s) cut off or not started by the daemon's stop; the deployment runs them when it resumes at the next start (even if cancelled meanwhile)", redone)
			save()
			return
		}
		failpoint(fpBucketDone)
		spec.Waves++
		w.notifyDeployment(*rec, spec, notify.EventDeploymentWave)
		save()
	}
	// The run's status follows its own instances; when the deployment
	// does not succeed for another reason (cancelled, instances skipped
	// or not started), the run says why.
	run.Status = finalStatus(run.Instances)
	if out := deploymentOutcome(*spec); out != string(deployer.DeploymentSucceeded) && run.Error == "" {
		run.Error = deploymentEndNote(rec.ID, out, *spec)
	}
}

// deploymentEndNote says why deployment id ends state (not succeeded):
// its instances that did not succeed, by status, with the first reason
// of each.
func deploymentEndNote(id, state string, spec deploymentSpec) string {
	counts, reasons := map[string]int{}, map[string]string{}
	for _, name := range sortedKeys(spec.Details) {
		in := spec.Details[name]
		if in.Status == deployer.InstanceSucceeded {
			continue
		}
		st := string(in.Status)
		counts[st]++
		if reasons[st] == "" {
			reasons[st] = in.Reason
		}
	}
	var parts []string
	for _, st := range sortedKeys(counts) {
		part := fmt.Sprintf("%d %s", counts[st], st)
		if r := reasons[st]; r != "" {
			part += " (" + r + ")"
		}
		parts = append(parts, part)
	}
	msg := fmt.Sprintf("deployment %s ends %s", id, state)
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	return msg
}

// instanceCommits is, for each job of a deployment with edits, the commit
// its steps run at, recorded on its instance: the newest commit up to HEAD
// that made its file what the steps read. That is its edit's commit on a
// first pass (also inside a bucket, where HEAD may be a later instance's
// edit), the commit that held the edit when it was already upstream, and
// a later commit that changed the file (a human's fix) on a retry. With
// no edit (or a dry run, which writes none) the steps run at the run's
// commit and the map is empty. An instance in landed had its edit land
// (or found upstream) by this bucket's write-back, which made no later
// commit to its file: that commit is the answer, without a walk of the
// history (which read every commit's tree of the instances' directory,
// up to a bucket's depth per instance: the largest cost per instance
// that grew with the repository's size).
func (w *worker) instanceCommits(spec *deploymentSpec, jobs []executor.Job, edited bool, landed map[string]string) map[string]string {
	out := map[string]string{}
	if !edited {
		return out
	}
	for _, j := range jobs {
		name := string(j.Instance.Name)
		in := spec.Details[name]
		if !in.Status.Waiting() {
			continue
		}
		c, ok := landed[name]
		if !ok {
			c = w.fileCommit(j.Instance.File)
		}
		if c == "" {
			continue
		}
		out[name] = c
		in.Commit = c
		spec.Details[name] = in
	}
	return out
}

// fileCommit is the newest commit up to HEAD that changed file ("" when
// it cannot be read, logged).
func (w *worker) fileCommit(file string) string {
	cs, err := w.repo.Commits("", w.repo.Head(), file, 1)
	if err != nil || len(cs) == 0 {
		w.log.Warn().Err(err).Str("file", file).Msg("find the commit that holds an instance's file")
		return ""
	}
	return cs[0].Hash
}

// notifyDeployment sends a deployment lifecycle notification once per
// attempt (and wave): the keys sent are kept in the spec, which the caller
// saves. A dry run sends none.
func (w *worker) notifyDeployment(rec store.Deployment, spec *deploymentSpec, kind notify.EventKind) {
	if spec.Request.DryRun {
		return
	}
	attempt := max(spec.Attempt, 1)
	wave := 0
	if kind == notify.EventDeploymentWave {
		wave = spec.Waves
	}
	key := fmt.Sprintf("%s:%d:%d", kind, attempt, wave)
	if slices.Contains(spec.Notified, key) {
		return
	}
	counts := map[string]int{}
	for _, in := range spec.Details {
		counts[string(in.Status)]++
	}
	req := spec.Request
	de := notify.DeploymentEvent{ID: rec.ID, Repo: rec.Repo, State: rec.State, Attempt: attempt, Wave: wave,
		Select: req.Select, Where: req.Where, Reason: req.Reason, Ticket: req.Ticket, Who: req.Who, Counts: counts}
	if err := w.d.notify.deployment(kind, de); err != nil {
		w.log.Error().Err(err).Str("deployment", rec.ID).Str("event", string(kind)).Msg("queue deployment notification")
		return
	}
	spec.Notified = append(spec.Notified, key)
}

// recordResults records a bucket's outcomes on the deployment's
// instances (a failed one with its failing step and output) and returns
// how many failed.
func recordResults(spec *deploymentSpec, results []executor.InstanceResult) (failed int) {
	for _, r := range results {
		in := spec.Details[string(r.Instance.Name)]
		in.Status, in.Reason = deployer.InstanceStatus(r.Status), instanceReason(r)
		if r.Status.Failed() {
			failed++
			for _, s := range r.Steps {
				if s.Status.Failed() {
					in.Step, in.OutputTail = string(s.Step), s.OutputTail
					if in.OutputTail == "" {
						in.OutputTail = s.OutputHead
					}
				}
			}
		}
		spec.Details[string(r.Instance.Name)] = in
	}
	return failed
}

// redoInterrupted records the instances of results whose steps were cut
// off, or that did not start, because the daemon stopped, and returns how
// many. One that was cut off, or whose edit had landed, is interrupted
// (in flight: it runs when the deployment resumes, even if cancelled
// meanwhile); one that did not start and changed nothing goes back to
// pending (a cancel keeps it from starting).
func redoInterrupted(spec *deploymentSpec, results []executor.InstanceResult) int {
	n := 0
	for _, r := range results {
		cut := r.Status == executor.StatusInterrupted
		if !cut && halted([]executor.InstanceResult{r}) == 0 {
			continue
		}
		in := spec.Details[string(r.Instance.Name)]
		switch {
		case cut:
			in.Status, in.Reason = deployer.InstanceInterrupted, "its steps were cut off by the daemon's stop: they run again when the deployment resumes"
		case in.Commit != "":
			in.Status, in.Reason = deployer.InstanceInterrupted, "its edit landed; the daemon stopped before its steps started: they run when the deployment resumes"
		default:
			in.Status, in.Reason = deployer.InstancePending, "not started: the daemon stopped; it runs when the deployment resumes"
		}
		spec.Details[string(r.Instance.Name)] = in
		n++
	}
	return n
}

func countFailed(spec deploymentSpec) int {
	n := 0
	for _, in := range spec.Details {
		if deployer.InstanceStatus(in.Status).Counted() {
			n++
		}
	}
	return n
}

func outcomesOf(results []executor.InstanceResult) []store.InstanceOutcome {
	out := make([]store.InstanceOutcome, len(results))
	for i, r := range results {
		out[i] = store.InstanceOutcome{Name: string(r.Instance.Name), File: r.Instance.File, Status: string(r.Status)}
	}
	return out
}

func deploymentOutcome(spec deploymentSpec) string {
	if spec.Cancel {
		return string(deployer.DeploymentCancelled)
	}
	if spec.Failed {
		return string(deployer.DeploymentFailed)
	}
	for _, in := range spec.Details {
		if in.Status != deployer.InstanceSucceeded {
			return string(deployer.DeploymentFailed) // skipped ones wait for their intervention
		}
	}
	return string(deployer.DeploymentSucceeded)
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
