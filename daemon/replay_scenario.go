package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/planner"
	"github.com/sre-tools/deployer/store"
)

// ReplayScenario runs a scenario (one step attempt's inputs, as deployer
// runs export writes them, possibly recorded on another host) as a replay
// run of repo ("": the scenario's DEPLOYER_REPO; when this host has no
// repo of that name, its only repo, and the trigger's detail says so). The
// instance must exist here and the commit the scenario was recorded at
// must be in the repo's history; the run, at the current commit, is
// recorded with trigger replay and the scenario's origin (the recording
// host's run). The step gets the scenario's argv, dependency outputs,
// timeout, writes policy and dry-run setting; DEPLOYER_HOST, _REPO,
// _COMMIT and _RUN are this host's, and host variables and secrets come
// from this host's config and env files. An open step-failed of the
// instance does not skip it (the replay is how it is tried again, and its
// success clears it); an edit held in a push-conflict or push-rejected
// does.
func (d *Daemon) ReplayScenario(ctx context.Context, repo string, data []byte, wait bool) (deployer.Queued, error) {
	sc, err := executor.LoadScenario(data)
	if err != nil {
		return deployer.Queued{}, deployer.Errorf(deployer.EINVALID, "%v", err)
	}
	w, err := d.scenarioWorker(repo, sc)
	if err != nil {
		return deployer.Queued{}, err
	}
	origin := scenarioOrigin(sc)
	if rec := sc.Env[executor.EnvRepo]; repo == "" && rec != "" && rec != w.cfg.Name {
		origin += fmt.Sprintf("; recorded in repo %s, run in %s, this host's only repo", rec, w.cfg.Name)
	}
	trig := w.trigger(deployer.TriggerReplay, origin)
	done := make(chan error, 1)
	var id store.RunID
	w.enqueueAction(func(ctx context.Context) error {
		var err error
		id, err = w.runScenarioReplay(ctx, trig, sc)
		if err != nil {
			w.log.Warn().Err(err).Str("step", string(sc.Step)).Str("instance", string(sc.Instance.Name)).Msg("scenario replay refused")
		}
		return err
	}, done)
	resp := deployer.Queued{Repo: w.cfg.Name}
	if !wait {
		return resp, nil
	}
	select {
	case <-ctx.Done():
		return deployer.Queued{}, ctx.Err()
	case err := <-done:
		if err != nil {
			return deployer.Queued{}, err
		}
	}
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

// scenarioWorker is the worker of repo, else of the scenario's
// DEPLOYER_REPO, else the only one.
func (d *Daemon) scenarioWorker(repo string, sc executor.Scenario) (*worker, error) {
	if repo == "" {
		repo = sc.Env[executor.EnvRepo]
	}
	if w, err := d.worker(repo); err == nil {
		return w, nil
	}
	d.mu.RLock()
	names := make([]string, 0, len(d.workers))
	var only *worker
	for n, w := range d.workers {
		names = append(names, n)
		only = w
	}
	d.mu.RUnlock()
	slices.Sort(names)
	if len(names) == 1 && repo == sc.Env[executor.EnvRepo] {
		return only, nil
	}
	return nil, deployer.Errorf(deployer.ENOTFOUND, "no repo %q on this host (repos: %v); name one with --repo", repo, names)
}

// scenarioOrigin is the replay trigger's detail: where the scenario was
// recorded.
func scenarioOrigin(sc executor.Scenario) string {
	what := fmt.Sprintf("step %s, instance %s", sc.Step, sc.Instance.Name)
	r := sc.Recorded
	if r == nil {
		return "scenario: " + what
	}
	at := ""
	if r.Commit != "" {
		at = " at " + short(r.Commit)
	}
	return fmt.Sprintf("scenario of run %s on %s (%s, attempt %d, %s%s)", valueOr(r.Run, "?"), valueOr(r.Host, "?"), what, r.Attempt, valueOr(string(r.Status), "?"), at)
}

func valueOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// runScenarioReplay checks that the scenario fits this host's checkout and
// runs it; it runs on the worker goroutine. The error is for a scenario
// refused before any run was recorded.
func (w *worker) runScenarioReplay(ctx context.Context, trig store.Trigger, sc executor.Scenario) (store.RunID, error) {
	if w.repo == nil {
		return 0, deployer.Errorf(deployer.EUNAVAILABLE, "repo %s is not checked out yet", w.cfg.Name)
	}
	commit := sc.Env[executor.EnvCommit]
	if sc.Recorded != nil && sc.Recorded.Commit != "" {
		commit = sc.Recorded.Commit
	}
	if commit != "" {
		if _, err := w.repo.ReadFile(commit, sc.Instance.File); errors.Is(err, object.ErrFileNotFound) {
			return 0, deployer.Errorf(deployer.ENOTFOUND, "instance %s (%s) does not exist at commit %s of repo %s on this host (the scenario was recorded there); check the scenario's instance, or --repo", sc.Instance.Name, sc.Instance.File, short(commit), w.cfg.Name)
		} else if err != nil {
			return 0, deployer.Errorf(deployer.ENOTFOUND, "repo %s on this host has no commit %s with %s (the scenario was recorded there): %v; push it, or wait for this host to sync", w.cfg.Name, short(commit), sc.Instance.File, err)
		}
	}
	if _, err := os.Stat(filepath.Join(w.repo.Dir(), filepath.FromSlash(sc.Instance.File))); err != nil {
		return 0, deployer.Errorf(deployer.ENOTFOUND, "instance %s (%s) does not exist at this host's commit %s", sc.Instance.Name, sc.Instance.File, short(w.repo.Head()))
	}
	trigs := []store.Trigger{trig}
	p, ok := w.prepareRun(ctx, runEntry{triggers: trigs, manual: true, evenBlocked: true})
	if !ok {
		return p.run, nil
	}
	run, _ := w.runAt(ctx, trigs, p.rs, func(run *store.Run) {
		w.carryOutScenario(ctx, run, sc)
	})
	return run.ID, nil
}

// carryOutScenario runs the scenario's step for its instance in run.
func (w *worker) carryOutScenario(ctx context.Context, run *store.Run, sc executor.Scenario) {
	m, err := manifest.Load(w.repo.Dir(), w.manifestOptions())
	if err != nil {
		run.Status, run.Error = store.RunInvalid, err.Error()
		w.raiseManifestInvalid(*run, err)
		return
	}
	secrets, err := readEnvFiles(w.cfg.EnvFiles)
	if err != nil {
		run.Status, run.Error = store.RunFailed, err.Error()
		return
	}
	sj, err := sc.Job(executor.Target{RepoRoot: w.repo.Dir(), Secrets: secrets})
	if err != nil {
		run.Status, run.Error = store.RunFailed, fmt.Sprintf("scenario: %v (this host's env files must hold every secret it names)", err)
		return
	}
	out, job, ok := w.planInstance(m, sc.Instance.File, sj.Steps)
	if iv, blocked := w.instanceBlocked(out.Name); !ok && blocked && iv.Kind == string(deployer.KindStepFailed) {
		// An operator's replay of a failed step is how it is tried
		// again: its step-failed does not skip it (it clears when the
		// step succeeds). Held edits (push-conflict, push-rejected) do.
		if in, err := m.ReadInstance(w.repo.Dir(), sc.Instance.File); err == nil {
			out.Status, out.Reason = string(deployer.StepPending), ""
			job, ok = executor.Job{Instance: in, Steps: sj.Steps}, true
		}
	}
	if ok && string(job.Instance.Name) != string(sc.Instance.Name) {
		run.Status, run.Error = store.RunFailed, fmt.Sprintf("%s is instance %s on this host, not %s as in the scenario", sc.Instance.File, job.Instance.Name, sc.Instance.Name)
		return
	}
	p := plan{outcomes: []store.InstanceOutcome{out}, dryRun: sc.DryRun}
	if ok {
		job.Steps[0].Retries = 0
		job.Outputs, job.Literal = sj.Outputs, true
		p.jobs = []executor.Job{job}
	}
	if why := w.unfinishedChain(m, out.Name, sc.Step); why != "" {
		w.partialReplay = map[string]string{out.Name: why}
		defer func() { w.partialReplay = nil }()
	}
	w.executePlan(ctx, run, m, p, 1, 0)
}

// unfinishedChain says why a success of step, replayed from a scenario,
// would not finish the instance's open step-failed: the replay runs one
// step, and the step-failed is resolved only when the failed step and
// every step after it in the failed run's chain for the instance have
// succeeded (the chain: the run's recorded steps for the instance, and the
// on-change steps after the failed one when the run recorded none after
// it). "" when there is no open step-failed, or when step is the failed
// one and the last of that chain.
func (w *worker) unfinishedChain(m *manifest.Manifest, instance string, step manifest.StepName) string {
	iv, open := w.openIntervention(deployer.KindStepFailed, instance)
	if !open {
		return ""
	}
	id, err := strconv.ParseUint(iv.Evidence.Extra["run"], 10, 64)
	if err != nil {
		return fmt.Sprintf("the step that failed is not known (intervention %d names no run)", iv.ID)
	}
	_, recs, err := w.d.runRecord(id)
	if err != nil {
		return fmt.Sprintf("run %d, where the step failed, cannot be read: %v", id, err)
	}
	var chain []string
	failed := ""
	for _, r := range recs {
		if r.Instance != instance {
			continue
		}
		if !slices.Contains(chain, r.Step) {
			chain = append(chain, r.Step)
		}
		if failed == "" && (r.Status == deployer.StepFailed || r.Status == deployer.StepTimedOut) {
			failed = r.Step
		}
	}
	// A step after the failed one that the run did not record (none was
	// skipped on record) is still part of the chain when the on-change
	// steps hold it after the failed one.
	if last := len(chain) - 1; last >= 0 && chain[last] == failed {
		if onChange, err := planner.Steps(m); err == nil {
			after := false
			for _, s := range onChange {
				if after && !slices.Contains(chain, string(s.Name)) {
					chain = append(chain, string(s.Name))
				}
				after = after || string(s.Name) == failed
			}
		}
	}
	i := slices.Index(chain, failed)
	switch {
	case failed == "":
		return fmt.Sprintf("run %d records no failed step of %s", id, instance)
	case string(step) != failed:
		return fmt.Sprintf("the step that failed in run %d is %s, not %s", id, failed, step)
	case i < len(chain)-1:
		return fmt.Sprintf("%s did not run on this host after it (run %d's chain: %s)", strings.Join(chain[i+1:], ", "), id, strings.Join(chain, ", "))
	}
	return ""
}

// notePartialReplay records on the instance's open step-failed that the
// scenario replay run succeeded without finishing it (why), and what to
// do: the step-failed stays open.
func (w *worker) notePartialReplay(run store.Run, instance, why string) {
	iv, open := w.openIntervention(deployer.KindStepFailed, instance)
	if !open {
		return
	}
	note := fmt.Sprintf("replay run %d succeeded, but %s", run.ID, why)
	_, err := w.d.store.UpdateIntervention(iv.ID, func(iv *store.Intervention) error {
		if iv.Evidence.Extra == nil {
			iv.Evidence.Extra = map[string]string{}
		}
		iv.Evidence.Extra["replayed"] = note
		iv.NextAction = fmt.Sprintf("%s; to run the whole chain: deployer interventions resolve {id} --retry", note)
		return nil
	})
	if err != nil {
		w.log.Error().Err(err).Uint64("intervention", iv.ID).Msg("note a partial replay")
		return
	}
	w.log.Info().Uint64("intervention", iv.ID).Str("instance", instance).Msg("step-failed stays open: " + note)
}
