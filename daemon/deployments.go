package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/store"
)

// deploymentSpec is what the daemon keeps in a store.Deployment's Spec.
type deploymentSpec struct {
	Request deployer.DeployRequest `json:"request"`
	// Details is kept in the store's per-instance records (a record
	// of the old layout has it here).
	Details map[string]deployer.DeploymentInstance `json:"details,omitempty"`
	Runs    []uint64                               `json:"runs,omitempty"`
	Cancel  bool                                   `json:"cancel,omitempty"`
	Reason  string                                 `json:"reason,omitempty"` // why blocked or failed as a whole
	// Attempt is 1 for the first pass (0 in records made before it was
	// kept), one more per retry; Waves counts the buckets that ended in
	// this attempt; Notified holds the lifecycle notifications sent
	// (kind:attempt:wave), so that a resumed deployment sends none twice.
	Attempt  int      `json:"attempt,omitempty"`
	Waves    int      `json:"waves,omitempty"`
	Notified []string `json:"notified,omitempty"`
	// Restore is a restore deployment's plan per instance file (restore.go).
	Restore map[string]restoreInstance `json:"restore,omitempty"`
	// Failed is set when the deployment failed as a whole, before any
	// instance ran (deployer.xml invalid, --steps unknown): Reason says
	// why. A retry clears it.
	Failed bool `json:"failed,omitempty"`
}

// Deploy validates and queues a deployment on repo.
func (d *Daemon) Deploy(ctx context.Context, repo string, req deployer.DeployRequest) (deployer.Deployment, error) {
	w, err := d.worker(repo)
	if err != nil {
		return deployer.Deployment{}, deployer.Errorf(deployer.ENOTFOUND, "%v", err)
	}
	if req.ID != "" {
		if err := deployer.CheckDeploymentID(req.ID); err != nil {
			return deployer.Deployment{}, deployer.Errorf(deployer.EINVALID, "%v", err)
		}
		// Asked again (a coordinator resumed, a retried request): the
		// deployment is answered as it stands before anything is
		// checked again, as the checkout may have moved on since.
		rec, err := d.store.Deployment(req.ID)
		if err == nil {
			return d.existingDeployment(rec, repo, req)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return deployer.Deployment{}, err
		}
	}
	if err := manifest.CheckGlob(req.Select); err != nil {
		return deployer.Deployment{}, deployer.Errorf(deployer.EINVALID, "%v", err)
	}
	if req.Where != "" {
		if err := manifest.CheckPath(req.Where); err != nil {
			return deployer.Deployment{}, deployer.Errorf(deployer.EINVALID, "--where: %v", err)
		}
	}
	if _, err := requestEdits(req); err != nil {
		return deployer.Deployment{}, deployer.Errorf(deployer.EINVALID, "%v", err)
	}
	if req.Bucket < 0 || req.MaxFailures < 0 {
		return deployer.Deployment{}, deployer.Errorf(deployer.EINVALID, "--bucket and --max-failures must not be negative")
	}
	// A deployment runs with deployer.xml at the checkout's commit (never
	// an older, valid one): while it is invalid nothing can run, and a
	// deployment queued now would end with no instance.
	if err := w.checkManifest(); err != nil {
		return deployer.Deployment{}, err
	}
	var restore map[string]restoreInstance
	if req.Restore != "" {
		if restore, err = d.restorePlan(repo, req); err != nil {
			return deployer.Deployment{}, err
		}
	} else if err := w.checkSelection(req); err != nil {
		return deployer.Deployment{}, err
	}
	spec := deploymentSpec{Request: req, Details: map[string]deployer.DeploymentInstance{}, Restore: restore}
	rec := store.Deployment{ID: req.ID, Repo: repo, State: string(deployer.DeploymentQueued)}
	if req.ID == "" {
		if rec, err = d.putDeployment(rec, spec); err != nil {
			return deployer.Deployment{}, err
		}
	} else {
		if err := encodeSpec(&rec, spec); err != nil {
			return deployer.Deployment{}, err
		}
		var existed bool
		rec, existed, err = d.store.CreateDeployment(rec, func(old store.Deployment) bool { return sameDeployment(old, repo, req) })
		switch {
		case errors.Is(err, store.ErrExists):
			return deployer.Deployment{}, conflict(req.ID)
		case err != nil:
			return deployer.Deployment{}, err
		case existed:
			// Created by another request between the look and now.
			return d.existingDeployment(rec, repo, req)
		}
	}
	w.enqueueDeployment(rec.ID)
	return apiDeployment(rec)
}

// existingDeployment answers a request that named the id of deployment
// rec: rec as it stands, marked Existed, when it is the same request,
// else a conflict.
func (d *Daemon) existingDeployment(rec store.Deployment, repo string, req deployer.DeployRequest) (deployer.Deployment, error) {
	if !sameDeployment(rec, repo, req) {
		return deployer.Deployment{}, conflict(req.ID)
	}
	out, err := d.withRunningSteps(apiDeployment(rec))
	if err != nil {
		return deployer.Deployment{}, err
	}
	out.Existed = true
	return out, nil
}

func conflict(id string) error {
	return deployer.Errorf(deployer.ECONFLICT, "deployment %s exists with another request (another repo, selection, edits or options): choose another id, or see it with: deployer deployments show %s", id, id)
}

// sameDeployment tells whether rec was created by a request the same as
// req on repo: every field but Who (who asks is not what is asked).
func sameDeployment(rec store.Deployment, repo string, req deployer.DeployRequest) bool {
	if rec.Repo != repo {
		return false
	}
	var spec deploymentSpec
	if json.Unmarshal(rec.Spec, &spec) != nil {
		return false
	}
	a, b := spec.Request, req
	a.Who, b.Who = "", ""
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// deploymentsListed is how many deployments an unfiltered list holds.
const deploymentsListed = 50

// Deployments lists deployments, newest first: the newest 50, or with
// f.Fleet every deployment labelled with that fleet id, however old (the
// label is in the spec, so that reads every kept deployment).
func (d *Daemon) Deployments(ctx context.Context, f deployer.DeploymentFilter) ([]deployer.Deployment, error) {
	limit := deploymentsListed
	if f.Fleet != "" {
		limit = 0
	}
	recs, err := d.store.Deployments("", limit)
	if err != nil {
		return nil, err
	}
	out := make([]deployer.Deployment, 0, min(len(recs), deploymentsListed))
	for _, r := range recs {
		a, err := d.withRunningSteps(apiDeployment(r))
		if err != nil {
			return nil, err
		}
		if f.Fleet == "" || a.Request.Fleet == f.Fleet {
			out = append(out, a)
		}
	}
	return out, nil
}

// Deployment returns one deployment with its instances.
func (d *Daemon) Deployment(ctx context.Context, id string) (deployer.Deployment, error) {
	rec, err := d.store.Deployment(id)
	if errors.Is(err, store.ErrNotFound) {
		return deployer.Deployment{}, deployer.Errorf(deployer.ENOTFOUND, "deployment %s not found", id)
	}
	if err != nil {
		return deployer.Deployment{}, err
	}
	return d.withRunningSteps(apiDeployment(rec))
}

// RetryDeployment queues again the instances that did not succeed:
// failed, conflict, skipped, interrupted and not-started ones (a skipped
// instance's intervention is checked again when it is planned). A
// deployment with no such instance is refused and records no run.
//
// While deployer.xml at the checkout's commit is invalid the retry is
// refused too (after the checks above, which say it was asked already),
// as a deployment is.
func (d *Daemon) RetryDeployment(ctx context.Context, id string) (deployer.Deployment, error) {
	var redo int
	// The manifest is checked before the store's transaction (which must
	// not wait on disk reads nor read the store itself); its refusal is
	// given inside, after the deployment's own state is checked.
	var invalid error
	if cur, err := d.store.DeploymentSummary(id); err == nil {
		if w, err := d.worker(cur.Repo); err == nil {
			invalid = w.checkManifest()
		}
	}
	rec, _, err := d.updateDeployment(id, func(rec *store.Deployment, spec *deploymentSpec) error {
		if rec.State == string(deployer.DeploymentRunning) || rec.State == string(deployer.DeploymentQueued) {
			return deployer.Errorf(deployer.EINVALID, "deployment %s is %s; retry it when it has ended", id, rec.State)
		}
		for name, in := range spec.Details {
			if retried(in.Status) {
				in.Status, in.Reason, in.Step, in.OutputTail = deployer.InstancePending, "", "", ""
				spec.Details[name] = in
				redo++
			}
		}
		if redo == 0 && len(spec.Details) > 0 {
			return deployer.Errorf(deployer.EINVALID, "deployment %s has nothing to retry: every instance succeeded", id)
		}
		if invalid != nil {
			return invalid
		}
		spec.Cancel, spec.Reason, spec.Failed = false, "", false
		spec.Attempt, spec.Waves = max(spec.Attempt, 1)+1, 0
		rec.State = string(deployer.DeploymentQueued)
		rec.Finished = time.Time{}
		return nil
	})
	if err != nil {
		return deployer.Deployment{}, err
	}
	w, err := d.worker(rec.Repo)
	if err != nil {
		return deployer.Deployment{}, err
	}
	w.enqueueDeployment(rec.ID)
	return apiDeployment(rec)
}

// retried tells whether a retry runs an instance in status st again:
// every status but succeeded.
func retried(st deployer.InstanceStatus) bool {
	return st != deployer.InstanceSucceeded
}

// CancelDeployment stops a deployment from starting new instances; the
// running ones finish and the deployment ends cancelled. The cancel is
// written in one store transaction, so the worker's progress records
// never undo it.
func (d *Daemon) CancelDeployment(ctx context.Context, id string) (deployer.Deployment, error) {
	rec, _, err := d.updateDeployment(id, func(rec *store.Deployment, spec *deploymentSpec) error {
		if !rec.Finished.IsZero() {
			return deployer.Errorf(deployer.EINVALID, "deployment %s has already ended (%s)", id, rec.State)
		}
		spec.Cancel = true
		inFlight := false
		for _, in := range spec.Details {
			inFlight = inFlight || in.Status.InFlight()
		}
		if rec.State != string(deployer.DeploymentRunning) && !inFlight {
			rec.State, rec.Finished = string(deployer.DeploymentCancelled), d.now()
			for name, in := range spec.Details {
				if in.Status == deployer.InstancePending {
					in.Status, in.Reason = deployer.InstanceNotStarted, "deployment cancelled"
					spec.Details[name] = in
				}
			}
		}
		return nil
	})
	if err != nil {
		return deployer.Deployment{}, err
	}
	return apiDeployment(rec)
}

// updateDeployment changes deployment id in one store transaction: fn
// gets the stored record and its decoded spec, and what it leaves is
// written back (the instance records follow the spec's details; only
// those that changed are written). An error from fn writes nothing and is
// returned as it is.
func (d *Daemon) updateDeployment(id string, fn func(*store.Deployment, *deploymentSpec) error) (store.Deployment, deploymentSpec, error) {
	var spec deploymentSpec
	rec, err := d.store.UpdateDeployment(id, func(rec *store.Deployment) error {
		var err error
		if spec, _, err = decodeSpec(*rec); err != nil {
			return err
		}
		if err := fn(rec, &spec); err != nil {
			return err
		}
		return encodeSpec(rec, spec)
	})
	var de *deployer.Error
	if errors.As(err, &de) {
		return rec, spec, de
	}
	if errors.Is(err, store.ErrNotFound) {
		return rec, spec, deployer.Errorf(deployer.ENOTFOUND, "deployment %s not found", id)
	}
	return rec, spec, err
}

// saveProgress writes the worker's view of a deployment (its state,
// finish time, instances, runs and reason) over the stored one, keeping
// what only the API changes (a cancel), and returns the stored summary
// (without instances) and spec. final computes the end state inside the
// same transaction, so a cancel that arrives during the last bucket is
// not lost either. Only the instances that differ from saved (what was
// stored last, by instance) are written, and saved follows: a bucket's
// progress costs its instances, not the deployment's.
func (d *Daemon) saveProgress(rec store.Deployment, spec deploymentSpec, saved map[string]deployer.DeploymentInstance, final bool) (store.Deployment, deploymentSpec, error) {
	status, details := map[string]string{}, map[string]json.RawMessage{}
	for name, in := range spec.Details {
		if old, ok := saved[name]; ok && old == in {
			continue
		}
		raw, err := encodeInstance(in)
		if err != nil {
			return rec, spec, err
		}
		status[name], details[name] = string(in.Status), raw
	}
	var out deploymentSpec
	cur, err := d.store.PatchDeployment(rec.ID, func(cur *store.Deployment) error {
		var s deploymentSpec
		if err := json.Unmarshal(cur.Spec, &s); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		cancel := s.Cancel
		s = spec
		s.Cancel = cancel
		cur.State, cur.Finished = rec.State, rec.Finished
		if final {
			cur.State, cur.Finished = deploymentOutcome(s), d.now()
		}
		out = s
		s.Details = nil
		raw, err := json.Marshal(s)
		if err != nil {
			return err
		}
		cur.Spec, cur.Instances, cur.Details = raw, status, details
		return nil
	})
	if err != nil {
		return rec, spec, err
	}
	for name := range status {
		saved[name] = spec.Details[name]
	}
	cur.Instances, cur.Details = nil, nil
	return cur, out, nil
}

// loadDeployment reads deployment id with its instances, and returns
// too the instances as stored in their own records (the saveProgress
// base: an instance of a record of the old layout is not there, and is
// written in the new one at the first save).
func (d *Daemon) loadDeployment(id string) (store.Deployment, deploymentSpec, map[string]deployer.DeploymentInstance, error) {
	rec, err := d.store.Deployment(id)
	if errors.Is(err, store.ErrNotFound) {
		return rec, deploymentSpec{}, nil, deployer.Errorf(deployer.ENOTFOUND, "deployment %s not found", id)
	}
	if err != nil {
		return rec, deploymentSpec{}, nil, err
	}
	spec, stored, err := decodeSpec(rec)
	if err != nil {
		return rec, spec, nil, fmt.Errorf("deployment %s: %w", id, err)
	}
	return rec, spec, stored, nil
}

// deploymentCancelled tells whether deployment id is cancelled, reading
// its summary only.
func (d *Daemon) deploymentCancelled(id string) (bool, error) {
	rec, err := d.store.DeploymentSummary(id)
	if err != nil {
		return false, err
	}
	var spec deploymentSpec
	if err := json.Unmarshal(rec.Spec, &spec); err != nil {
		return false, fmt.Errorf("deployment %s: decode: %w", id, err)
	}
	return spec.Cancel, nil
}

// putDeployment creates a deployment (the only whole-record write; every
// change after that goes through updateDeployment).
func (d *Daemon) putDeployment(rec store.Deployment, spec deploymentSpec) (store.Deployment, error) {
	if err := encodeSpec(&rec, spec); err != nil {
		return rec, err
	}
	return d.store.PutDeployment(rec)
}

// decodeSpec decodes rec's spec and its instances' records (those of a
// record of the old layout are in the spec), and returns too the
// instances read from their own records.
func decodeSpec(rec store.Deployment) (deploymentSpec, map[string]deployer.DeploymentInstance, error) {
	var spec deploymentSpec
	if err := json.Unmarshal(rec.Spec, &spec); err != nil {
		return spec, nil, fmt.Errorf("decode: %w", err)
	}
	if spec.Details == nil {
		spec.Details = make(map[string]deployer.DeploymentInstance, len(rec.Details))
	}
	stored := make(map[string]deployer.DeploymentInstance, len(rec.Details))
	for name, raw := range rec.Details {
		var in deployer.DeploymentInstance
		if err := json.Unmarshal(raw, &in); err != nil {
			return spec, nil, fmt.Errorf("decode instance %s: %w", name, err)
		}
		in.Name, in.Status = name, deployer.InstanceStatus(rec.Instances[name])
		spec.Details[name], stored[name] = in, in
	}
	return spec, stored, nil
}

// instanceDetail is what an instance's store record holds besides its
// name and status (the record's key and status): a deployment keeps one
// per instance, and 5,000 of them are a good part of the state file.
// TestInstanceDetailCoversDeploymentInstance keeps it in step with
// deployer.DeploymentInstance.
type instanceDetail struct {
	File       string `json:"file"`
	Reason     string `json:"reason,omitempty"`
	Step       string `json:"step,omitempty"`
	OutputTail string `json:"output_tail,omitempty"`
	Commit     string `json:"commit,omitempty"`
	Note       string `json:"note,omitempty"`
}

func encodeInstance(in deployer.DeploymentInstance) (json.RawMessage, error) {
	return json.Marshal(instanceDetail{File: in.File, Reason: in.Reason, Step: in.Step, OutputTail: in.OutputTail, Commit: in.Commit, Note: in.Note})
}

// encodeSpec stores spec in rec: the spec without its instances, and one
// record (status and details) per instance.
func encodeSpec(rec *store.Deployment, spec deploymentSpec) error {
	details := spec.Details
	spec.Details = nil
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	rec.Spec = raw
	rec.Instances = make(map[string]string, len(details))
	rec.Details = make(map[string]json.RawMessage, len(details))
	for name, in := range details {
		if rec.Details[name], err = encodeInstance(in); err != nil {
			return err
		}
		rec.Instances[name] = string(in.Status)
	}
	return nil
}

func apiDeployment(rec store.Deployment) (deployer.Deployment, error) {
	spec, _, err := decodeSpec(rec)
	if err != nil {
		return deployer.Deployment{}, fmt.Errorf("deployment %s: %w", rec.ID, err)
	}
	out := deployer.Deployment{ID: rec.ID, Repo: rec.Repo, State: rec.State, Request: spec.Request, Created: rec.Created,
		Updated: rec.Updated, Counts: map[string]int{}, Instances: make([]deployer.DeploymentInstance, 0, len(spec.Details)), Runs: spec.Runs,
		Error: spec.Reason}
	if !rec.Finished.IsZero() {
		t := rec.Finished
		out.Finished = &t
	}
	for _, in := range spec.Details {
		out.Instances = append(out.Instances, in)
		out.Counts[string(in.Status)]++
	}
	sort.Slice(out.Instances, func(i, j int) bool { return out.Instances[i].Name < out.Instances[j].Name })
	return out, nil
}

// requestEdits is the deployment's edits, read by the one edit parser
// that `xml edit` and the CLI use too.
func requestEdits(req deployer.DeployRequest) ([]manifest.Edit, error) {
	return manifest.ParseEdits(manifest.EditSpec{Set: req.Set, Text: req.Text})
}

// checkSelection refuses a deployment whose --select and --where match
// no instance in the checkout ("0 of N instances match"): a typo must not
// end as a deployment that succeeded with no instance. It refuses edits
// that do not apply to a selected instance's file (a path that matches no
// element, or several) too, naming up to 5 such instances and the count:
// every one of them would fail, and a retry would fail again. It reads
// the checkout's files on disk (the API's goroutine never uses the
// worker's git handle); before the first clone there is nothing to check
// and the worker's own check decides.
func (w *worker) checkSelection(req deployer.DeployRequest) error {
	if !w.snapshot().opened {
		return nil
	}
	dir := filepath.Join(w.d.opts.StateDir, "checkouts", w.cfg.Name)
	m, err := manifest.Load(dir, w.manifestOptions())
	if err != nil {
		return nil // the run reports the invalid manifest
	}
	all, err := m.ListInstances(dir)
	if err != nil && len(all) == 0 {
		return nil
	}
	lim := w.d.Limits()
	limit := lim.InstanceFileBytes
	if limit <= 0 {
		limit = manifest.DefaultInstanceFileBytes
	}
	edits, _ := requestEdits(req)
	matched := 0
	var refused []string // "name (file): why"
	for _, in := range all {
		if ok, err := path.Match(req.Select, in.File); err != nil || !ok {
			continue
		}
		var data []byte
		if req.Where != "" || len(edits) > 0 {
			if data, err = manifest.ReadRepoFile(dir, in.File, limit); err != nil {
				continue
			}
		}
		if req.Where != "" {
			doc, err := manifest.ParseDocument(data)
			if err != nil {
				continue
			}
			if n, err := doc.Count(req.Where); err != nil || n == 0 {
				continue
			}
		}
		matched++
		if len(edits) == 0 {
			return nil
		}
		if _, err := manifest.ApplyLimits(data, edits, lim); err != nil {
			refused = append(refused, fmt.Sprintf("%s (%s): %v", in.Name, in.File, err))
		}
	}
	if matched == 0 {
		return deployer.Errorf(deployer.ENOTFOUND, "%s", noMatch(len(all), req, w.cfg.Name))
	}
	if len(refused) > 0 {
		shown := refused[:min(len(refused), 5)]
		more := ""
		if len(refused) > len(shown) {
			more = fmt.Sprintf("; and %d more", len(refused)-len(shown))
		}
		return deployer.Errorf(deployer.EINVALID, "the edits do not apply to %d of %d selected instances (hint: a path must match exactly one element in every selected instance; narrow it with a predicate or --where): %s%s",
			len(refused), matched, strings.Join(shown, "; "), more)
	}
	return nil
}

// checkManifest refuses a deployment (or its retry) while deployer.xml
// in the checkout is invalid: the daemon deploys no commit with another
// commit's manifest, so nothing could run; the deployment would end with
// no instance, which a fleet counts as no match. The refusal is a
// conflict with the repo's state (HTTP 409, exit 1), naming the commit,
// the open manifest-invalid intervention and the problems. Like
// checkSelection it reads the checkout's files on disk, and before the
// first clone it leaves the decision to the run.
func (w *worker) checkManifest() error {
	snap := w.snapshot()
	if !snap.opened {
		return nil
	}
	dir := filepath.Join(w.d.opts.StateDir, "checkouts", w.cfg.Name)
	if _, err := manifest.Load(dir, w.manifestOptions()); err != nil {
		return deployer.Errorf(deployer.ECONFLICT, "%s", w.manifestInvalidNote(snap.head, err, "nothing was deployed"))
	}
	return nil
}

// manifestInvalidNote says that deployer.xml at commit is invalid (err),
// naming the open manifest-invalid intervention, then outcome (what was
// not done): a deployment's refusal, or why it failed.
func (w *worker) manifestInvalidNote(commit string, err error, outcome string) string {
	iv := ""
	if open, ok := w.openIntervention(deployer.KindManifestInvalid, ""); ok {
		iv = fmt.Sprintf(" (manifest-invalid intervention #%d)", open.ID)
	}
	problems := strings.Split(strings.TrimSpace(err.Error()), "\n")
	more := ""
	if len(problems) > 3 {
		more = fmt.Sprintf("; and %d more", len(problems)-3)
		problems = problems[:3]
	}
	return fmt.Sprintf("deployer.xml at commit %s is invalid%s: fix it and push; %s (%s%s; check with: deployer validate DIR)",
		short(commit), iv, outcome, strings.Join(problems, "; "), more)
}

// noMatch says that a deployment's selection matched none of n instances.
func noMatch(n int, req deployer.DeployRequest, repo string) string {
	msg := fmt.Sprintf("0 of %d instances match --select %q", n, req.Select)
	if req.Where != "" {
		msg += fmt.Sprintf(" --where %q", req.Where)
	}
	return msg + " on " + repo
}

// enqueueDeployment queues deployment id on the worker.
func (w *worker) enqueueDeployment(id string) {
	w.enqueue(request{trigger: w.trigger(deployer.TriggerDeployment, id), deployment: id})
}

// resumeDeployments queues the deployments a previous process left unfinished.
func (w *worker) resumeDeployments() {
	recs, err := w.d.store.Deployments(w.cfg.Name, 200)
	if err != nil {
		w.log.Error().Err(err).Msg("read deployments")
		return
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if r := recs[i]; r.Finished.IsZero() && (r.State == string(deployer.DeploymentQueued) || r.State == string(deployer.DeploymentRunning)) {
			w.log.Warn().Str("deployment", r.ID).Msg("resuming a deployment a previous process left unfinished")
			w.enqueueDeployment(r.ID)
		}
	}
}

// dropDeploymentEntries drops deployment id's journal entries that are
// pending and were never committed, and returns them by instance. Call it
// on the worker.
func (w *worker) dropDeploymentEntries(id string) (map[string]string, error) {
	open, err := w.d.store.Journal(w.cfg.Name, store.JournalPending)
	if err != nil {
		return nil, err
	}
	dropped := map[string]string{}
	for _, e := range open {
		if e.Deployment != id || e.Commit != "" {
			continue
		}
		if _, err := w.d.store.DropJournal(e.ID, "dropped by an operator (deployments drop-journal)"); err != nil {
			return dropped, err
		}
		w.log.Warn().Str("deployment", id).Str("entry", e.ID).Str("instance", e.Instance).Msg("pending deployment edit dropped by an operator")
		dropped[e.Instance] = e.ID
	}
	return dropped, nil
}

// DropDeploymentJournal drops the edits of an ended deployment that are
// still pending in the journal (never committed): an edit the operator
// gave up on, which the write-back would otherwise try again at every
// start. Each dropped entry is noted on its instance. It runs on the
// repo's worker, between runs.
func (d *Daemon) DropDeploymentJournal(ctx context.Context, id string) (deployer.Deployment, error) {
	rec, err := d.store.Deployment(id)
	if errors.Is(err, store.ErrNotFound) {
		return deployer.Deployment{}, deployer.Errorf(deployer.ENOTFOUND, "deployment %s not found", id)
	}
	if err != nil {
		return deployer.Deployment{}, err
	}
	if rec.Finished.IsZero() {
		return deployer.Deployment{}, deployer.Errorf(deployer.EINVALID, "deployment %s is %s; cancel it first, then drop its pending edits", id, rec.State)
	}
	w, err := d.worker(rec.Repo)
	if err != nil {
		return deployer.Deployment{}, deployer.Errorf(deployer.ENOTFOUND, "%v", err)
	}
	var dropped map[string]string // instance -> journal entry
	done := make(chan error, 1)
	w.enqueueAction(func(context.Context) error {
		var err error
		dropped, err = w.dropDeploymentEntries(id)
		return err
	}, done)
	select {
	case <-ctx.Done():
		return deployer.Deployment{}, ctx.Err()
	case err := <-done:
		if err != nil {
			return deployer.Deployment{}, fmt.Errorf("drop the pending edits of %s: %w", id, err)
		}
	}
	if len(dropped) == 0 {
		return deployer.Deployment{}, deployer.Errorf(deployer.EINVALID, "deployment %s has no pending edit in the journal", id)
	}
	rec, _, err = d.updateDeployment(id, func(_ *store.Deployment, spec *deploymentSpec) error {
		for name, entry := range dropped {
			in, ok := spec.Details[name]
			if !ok {
				continue
			}
			note := fmt.Sprintf("its pending edit (journal %s) was dropped by an operator", entry)
			if in.Reason != "" {
				note = in.Reason + "; " + note
			}
			in.Reason = note
			spec.Details[name] = in
		}
		return nil
	})
	if err != nil {
		return deployer.Deployment{}, err
	}
	return apiDeployment(rec)
}
