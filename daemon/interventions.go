package daemon

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

// unreachableThreshold is how many consecutive failed fetches raise remote-unreachable.
const unreachableThreshold = 3

// raise records an intervention (or bumps the open one of the same kind and scope).
func (w *worker) raise(iv store.Intervention) store.Intervention {
	iv.Repo = w.cfg.Name
	got, isNew, err := w.d.store.Raise(iv)
	if err != nil {
		w.log.Error().Err(err).Str("kind", iv.Kind).Msg("record intervention")
		return iv
	}
	ev := w.log.Warn()
	if isNew {
		ev = w.log.Error()
	}
	if isNew {
		ev = ev.Str("evidence", got.Evidence.Output)
		w.d.notify.kick()
	}
	ev.Uint64("intervention", got.ID).Str("kind", got.Kind).Str("instance", got.Instance).Int("count", got.Count).
		Msg(got.Summary)
	return got
}

// clear resolves the open intervention of kind and scope, if any, because its condition cleared.
func (w *worker) clear(kind deployer.InterventionKind, instance, how string) {
	// The open ones are read from the store's cache: no write transaction
	// (and no fsync) when there is nothing to resolve, the common case.
	if _, open := w.openIntervention(kind, instance); !open {
		return
	}
	iv, ok, err := w.d.store.ResolveWhere(string(kind), w.cfg.Name, instance, how)
	if err != nil {
		w.log.Error().Err(err).Str("kind", string(kind)).Msg("auto-resolve intervention")
		return
	}
	if ok {
		w.d.notify.kick()
		w.log.Info().Uint64("intervention", iv.ID).Str("kind", iv.Kind).Str("instance", instance).Msg("intervention resolved automatically: " + how)
	}
}

// blocking returns the open repo-scope intervention that stops runs of this repo, if any.
func (w *worker) blocking() (store.Intervention, bool) {
	ivs, err := w.d.store.Interventions(store.InterventionFilter{Repo: w.cfg.Name})
	if err != nil {
		w.log.Error().Err(err).Msg("read interventions")
		return store.Intervention{}, false
	}
	for _, iv := range ivs {
		if iv.Instance == "" && !iv.Resolved() && iv.Kind != string(deployer.KindManifestInvalid) {
			return iv, true
		}
	}
	return store.Intervention{}, false
}

// openIntervention returns the unresolved intervention of kind and scope, if any.
func (w *worker) openIntervention(kind deployer.InterventionKind, instance string) (store.Intervention, bool) {
	ivs, err := w.d.store.Interventions(store.InterventionFilter{Kind: string(kind), Repo: w.cfg.Name, Instance: instance})
	if err != nil {
		return store.Intervention{}, false
	}
	for _, iv := range ivs {
		if iv.Instance == instance && !iv.Resolved() {
			return iv, true
		}
	}
	return store.Intervention{}, false
}

// instanceBlocked returns the open instance-scope intervention of an instance, if any.
func (w *worker) instanceBlocked(instance string) (store.Intervention, bool) {
	ivs, err := w.d.store.Interventions(store.InterventionFilter{Repo: w.cfg.Name, Instance: instance})
	if err != nil {
		return store.Intervention{}, false
	}
	for _, iv := range ivs {
		// instance-invalid does not skip: the next parse decides.
		if iv.Instance == instance && !iv.Resolved() && iv.Kind != string(deployer.KindInstanceInvalid) {
			return iv, true
		}
	}
	return store.Intervention{}, false
}

// syncFailed turns a failed sync into the intervention its kind calls for.
func (w *worker) syncFailed(res syncer.Result, err error) {
	kind := syncer.KindOf(err)
	if kind == syncKindResource || isResource(err) {
		w.resourceFailed("sync", err)
		return
	}
	if kind == syncer.KindUnreachable || kind == syncer.KindAuth {
		w.failedSyncs++
		w.log.Info().Int("failed_syncs", w.failedSyncs).Dur("poll_in", backoffDelay(w.cfg.Poll, w.failedSyncs)).Msg("polls back off while the remote fails")
	}
	if !w.worthRaising(kind) {
		return
	}
	ev := store.Evidence{Output: errDetail(err, res), Extra: map[string]string{}}
	if res.Rescue != "" {
		ev.Extra["rescue_ref"] = res.Rescue
	}
	if len(res.Files) > 0 {
		ev.Extra["files"] = strings.Join(res.Files, " ")
	}
	if res.Upstream != "" {
		ev.Extra["upstream"] = res.Upstream
	}
	dir := w.repo.Dir()
	iv := store.Intervention{Kind: string(kind), Evidence: ev}
	switch kind {
	case syncer.KindDirty:
		iv.Summary = fmt.Sprintf("uncommitted changes in the daemon's checkout %s: %s", dir, strings.Join(res.Files, ", "))
		iv.NextAction = "deployer interventions resolve {id} --retry  # keeps the changes on a rescue ref, resets, and runs again"
	case syncer.KindDiverged:
		iv.Summary = fmt.Sprintf("the checkout %s has commits the daemon did not make", dir)
		iv.NextAction = "push what is worth keeping from the rescue ref, then: deployer interventions resolve {id} --retry"
	case syncer.KindRewritten:
		iv.Summary = "the upstream branch was rewritten (the previous tip is no longer an ancestor)"
		iv.NextAction = "confirm the rewrite was intended, then: deployer interventions resolve {id} --retry  # follows it"
	case syncer.KindUnreachable:
		iv.Summary = fmt.Sprintf("the remote has been unreachable for %d consecutive syncs", w.unreachable)
		iv.NextAction = "check the network path and the git server; it resolves by itself on the next successful sync"
	case syncer.KindAuth:
		iv.Summary = "the remote refused the daemon's credentials"
		iv.NextAction = "fix the key, token or known_hosts named in auth: in the config, then reload the daemon (systemctl reload deployer: a changed auth file restarts the repo); it resolves on the next successful sync"
		if tlsFailure(err) {
			iv.Summary = "the TLS connection to the remote failed: " + tlsReason(err)
			iv.NextAction = "fix repos[].tls in the config as the evidence says (ca_file for an untrusted server certificate, cert_file and key_file for a client certificate), then reload the daemon (systemctl reload deployer); it resolves on the next successful sync"
		}
	case syncKindInvalid:
		iv.Kind = string(deployer.KindUpstreamInvalid)
		iv.Summary = "an upstream commit has a path the daemon refuses to check out; the checkout stays as it was"
		iv.NextAction = "revert or rewrite the commit named in the evidence upstream (and set receive.fsckObjects on the git server); it resolves on the next successful sync"
	case syncer.KindRejected:
		iv.Summary, iv.NextAction = pushFailedText(err, w.cfg.Branch)
	case syncer.KindCorrupt:
		iv.Summary = fmt.Sprintf("the checkout %s is broken and could not be re-cloned", dir)
		iv.NextAction = corruptNextAction(err, "move the checkout aside and restart the daemon (it clones afresh), then resolve {id}")
	default:
		iv.Kind = string(deployer.KindRepoCorrupt)
		iv.Summary = "sync failed with an unexpected error"
		iv.NextAction = "read the evidence and the daemon log; then: deployer interventions resolve {id} --retry"
	}
	w.raise(iv)
}

// pushFailedText explains a sync that could not push the daemon's own
// commits (kept in the checkout and pushed again at the next sync): the
// server could not lock the branch on any attempt, the branch kept moving,
// or the server refused it.
func pushFailedText(err error, branch string) (summary, next string) {
	if branch == "" {
		branch = "main"
	}
	switch {
	case errors.Is(err, syncer.ErrRace):
		return fmt.Sprintf("the git server could not lock refs/heads/%s on any push attempt: the daemon's commits wait in its checkout", branch),
			fmt.Sprintf("either other pushes to the branch kept taking its lock at the same moment (many pushes a second: "+
				"this resolves by itself when they slow down), or a lock was left by a killed git process: on the git server, "+
				"look for refs/heads/%s.lock (or packed-refs.lock) in the repository and remove it if no git process is running there. "+
				"The daemon pushes its commits at the next sync and this resolves by itself", branch)
	case errors.Is(err, syncer.ErrNonFastForward):
		return fmt.Sprintf("refs/heads/%s moved on every write-back attempt: the daemon's commits wait in its checkout", branch),
			"find who pushes to the branch without pause (a loop, a mirror); the daemon re-applies its commits at the next sync and this resolves by itself when a push lands"
	}
	return "the git server refused to push the daemon's commits: they wait in its checkout",
		"read the server's message in the evidence; fix the hook or branch protection, then: deployer interventions resolve {id} --retry"
}

// worthRaising counts consecutive unreachable remotes (retrying fixes those,
// up to unreachableThreshold); every other failure is raised at once.
func (w *worker) worthRaising(kind syncer.Kind) bool {
	if kind != syncer.KindUnreachable {
		return true
	}
	w.unreachable++
	return w.unreachable >= unreachableThreshold
}

// openFailed raises what a failed clone or open calls for; there is no
// checkout yet to point at.
func (w *worker) openFailed(err error) {
	kind := syncer.KindOf(err)
	if !w.worthRaising(kind) {
		return
	}
	iv := store.Intervention{Kind: string(kind), Evidence: store.Evidence{Output: errDetail(err, syncer.Result{})}}
	switch kind {
	case syncer.KindAuth:
		iv.Summary = "the remote refused the daemon's credentials while cloning"
		iv.NextAction = "fix the key or token named in auth: in the config, then reload the daemon (systemctl reload deployer; it retries the clone meanwhile)"
		if tlsFailure(err) {
			iv.Summary = "the TLS connection to the remote failed while cloning: " + tlsReason(err)
			iv.NextAction = "fix repos[].tls in the config as the evidence says (ca_file for an untrusted server certificate, cert_file and key_file for a client certificate), then reload the daemon (systemctl reload deployer; it retries the clone meanwhile)"
		}
	case syncer.KindUnreachable:
		iv.Summary = fmt.Sprintf("the remote has been unreachable for %d consecutive clone attempts", w.unreachable)
		iv.NextAction = "check the network path and the git server; it resolves by itself once the clone works"
	default:
		iv.Kind = string(deployer.KindRepoCorrupt)
		iv.Summary = "the checkout could not be opened or cloned"
		iv.NextAction = corruptNextAction(err, "read the evidence; move the checkout aside and restart the daemon")
	}
	w.raise(iv)
}

// corruptNextAction is the next action for a broken checkout: when the
// re-clone failed because the remote is down or refused the credentials,
// fixing that is the whole fix (the daemon keeps retrying the re-clone);
// otherwise fallback.
func corruptNextAction(err error, fallback string) string {
	var se *syncer.Error
	if !errors.As(err, &se) || se.Err == nil {
		return fallback
	}
	switch syncer.KindOf(se.Err) {
	case syncer.KindUnreachable:
		return "the checkout is broken and the re-clone failed because the remote is unreachable: restore the network path or the git server; the daemon re-clones by itself and this resolves"
	case syncer.KindAuth:
		return "the checkout is broken and the re-clone failed because the remote refused the credentials: fix the key or token in auth: and reload the daemon; it re-clones by itself and this resolves"
	}
	return fallback
}

// syncSucceeded resolves what a successful sync proves cleared; a clean
// tree is proven only by a sync that scanned the worktree.
func (w *worker) syncSucceeded(scanned bool) {
	w.unreachable = 0
	if w.failedSyncs > 0 {
		// The poll timer was set for a backed-off interval: the loop
		// resets it to the configured one.
		w.pollReset = true
	}
	w.failedSyncs = 0
	for _, k := range []deployer.InterventionKind{deployer.KindRemoteUnreachable, deployer.KindAuthFailed, deployer.KindUpstreamInvalid, deployer.KindPushRejected} {
		w.clear(k, "", "the next sync succeeded")
	}
	// The probe unblocked the repo; a sync that wrote what it fetched
	// proves writes work again.
	w.resMu.Lock()
	short := w.resource != ""
	w.resMu.Unlock()
	if !short {
		w.clear(deployer.KindHostResource, "", "writes work again: the next sync succeeded")
	}
	// A corrupt checkout clears with a good sync; a salvaged state file
	// waits for a human.
	if iv, ok := w.openIntervention(deployer.KindRepoCorrupt, ""); ok && iv.Evidence.Extra["corrupt_file"] == "" {
		w.clear(deployer.KindRepoCorrupt, "", "the next sync succeeded")
	}
	if scanned {
		w.clear(deployer.KindSyncDirty, "", "the checkout is clean again")
	}
}

func errDetail(err error, res syncer.Result) string {
	var se *syncer.Error
	parts := []string{err.Error()}
	if errors.As(err, &se) && se.Detail != "" {
		parts = append(parts, se.Detail)
	}
	if res.Detail != "" && (se == nil || se.Detail != res.Detail) {
		parts = append(parts, res.Detail)
	}
	return strings.Join(parts, "\n")
}

func (w *worker) raisePushConflict(e store.JournalEntry, o syncer.Outcome) {
	iv := store.Intervention{
		Kind: string(deployer.KindPushConflict), Instance: e.Instance,
		Summary:    fmt.Sprintf("%s's edit of %s conflicts with an upstream change", e.Reason, e.File),
		NextAction: "deployer interventions resolve {id} --take ours|theirs",
		Evidence: store.Evidence{File: e.File, Output: fmt.Sprint(o.Err), Extra: map[string]string{
			"journal_entry": e.ID, "base_commit": e.BaseBlob, "run": e.Run}},
	}
	var ce *conflictError
	if errors.As(o.Err, &ce) && len(ce.conflicts) > 0 {
		c := ce.conflicts[0]
		iv.Evidence.Element = c.Path
		if c.Attr != "" {
			iv.Evidence.Element += "@" + c.Attr
		}
		iv.Evidence.Values = &store.ConflictValues{Base: c.Base, Ours: c.Ours, Theirs: c.Theirs}
		if len(c.Candidates) > 0 {
			// An edit whose element cannot be told apart upstream: the
			// elements it could be, for the operator to choose from.
			iv.Evidence.Extra["candidates"] = strings.Join(c.Candidates, "; ")
			iv.Evidence.Extra["conflict_kind"] = string(c.Kind)
		}
	}
	if o.Upstream != "" {
		iv.Evidence.Commits = w.commitsTouching(e.BaseBlob, o.Upstream, e.File)
	}
	w.raise(iv)
}

func (w *worker) raisePushRejected(e store.JournalEntry, o syncer.Outcome) {
	ev := store.Evidence{File: e.File, Output: fmt.Sprint(o.Err), Extra: map[string]string{"journal_entry": e.ID, "run": e.Run}}
	var se *syncer.Error
	if errors.As(o.Err, &se) && se.Detail != "" {
		ev.Output = se.Detail
	}
	w.raise(store.Intervention{
		Kind: string(deployer.KindPushRejected), Instance: e.Instance, Evidence: ev,
		Summary:    fmt.Sprintf("the server refused the push of %s's edit of %s", e.Reason, e.File),
		NextAction: "read the server's message; fix the hook or branch protection, then: deployer interventions resolve {id} --retry",
	})
}

func (w *worker) raiseManifestInvalid(run store.Run, err error) {
	w.raise(store.Intervention{
		Kind:       string(deployer.KindManifestInvalid),
		Summary:    fmt.Sprintf("deployer.xml at %s is invalid; %s stays deployed", short(run.Commit), short(run.Base)),
		NextAction: "fix deployer.xml (check with: deployer validate DIR) and push; it resolves when a valid manifest arrives",
		Evidence:   store.Evidence{File: "deployer.xml", Output: err.Error(), Extra: map[string]string{"commit": run.Commit, "run": fmt.Sprint(run.ID)}},
	})
}

func (w *worker) raiseInstanceInvalid(run store.Run, o store.InstanceOutcome) {
	next := "fix the file (check with: deployer validate DIR) and push; it resolves when the instance runs again"
	if key := limitKey(o.Reason); key != "" {
		next = fmt.Sprintf("the file is over %s: if it is meant to be, raise %s in the host config (%s) and reload "+
			"(systemctl reload deployer), then deployer interventions resolve {id} --retry; otherwise make the file smaller and push",
			key, key, w.d.limitsText())
	}
	w.raise(store.Intervention{
		Kind: string(deployer.KindInstanceInvalid), Instance: o.Name,
		Summary:    fmt.Sprintf("instance file %s is invalid; its steps were not run", oneLine(o.File)),
		NextAction: next,
		Evidence:   store.Evidence{File: o.File, Output: o.Reason, Extra: map[string]string{"commit": run.Commit, "run": fmt.Sprint(run.ID)}},
	})
}

// raiseStepFailed raises step-failed for o, naming the commit its steps
// ran at: the one that holds its written-back edit, else the run's.
func (w *worker) raiseStepFailed(run store.Run, o store.InstanceOutcome, output string) {
	commit := run.Commit
	if o.Commit != "" {
		commit = o.Commit // a deployment's instance ran at the commit of its file
	}
	w.gitMu.Lock()
	if c, ok := w.landed[o.Name]; ok && o.Commit == "" {
		commit = c
	}
	w.gitMu.Unlock()
	next := fmt.Sprintf("deployer runs show %d; fix the cause, then: deployer interventions resolve {id} --retry", run.ID)
	extra := map[string]string{"commit": commit, "run": fmt.Sprint(run.ID)}
	if dep := deploymentOfRun(run); dep != "" {
		// Raised inside a deployment: the deployment runs it again, so
		// that its record follows (resolve --retry is refused).
		next = fmt.Sprintf("deployer runs show %d; fix the cause, then: deployer interventions resolve {id} && deployer deployments retry %s", run.ID, dep)
		extra["deployment"] = dep
	}
	w.raise(store.Intervention{
		Kind: string(deployer.KindStepFailed), Instance: o.Name,
		Summary:    fmt.Sprintf("%s failed at %s", o.Reason, short(commit)),
		NextAction: next,
		Evidence:   store.Evidence{File: o.File, Output: output, Extra: extra},
	})
}

// deploymentOfRun is the id of the deployment whose run run is ("" when it
// is not a deployment's).
func deploymentOfRun(run store.Run) string {
	if len(run.Triggers) == 0 || run.Triggers[0].Kind != deployer.TriggerDeployment {
		return ""
	}
	return strings.TrimSuffix(run.Triggers[0].Detail, dryRunLabel)
}

// commitsTouching lists the upstream commits after base that changed file,
// newest first, with their authors (evidence for a conflict).
func (w *worker) commitsTouching(base, upstream, file string) []store.CommitRef {
	refs, err := w.repo.Commits(base, upstream, file, 5)
	if err != nil {
		w.log.Warn().Err(err).Msg("list conflicting commits")
		return nil
	}
	out := make([]store.CommitRef, len(refs))
	for i, c := range refs {
		out[i] = store.CommitRef{Hash: c.Hash, Author: c.Author, Subject: c.Subject, When: c.When}
	}
	return out
}

// tlsFailure reports whether an auth-failed sync error is the TLS
// handshake's (the syncer words those "tls-untrusted: ...",
// "tls-client-cert: ..." or "tls: ...").
func tlsFailure(err error) bool {
	return tlsReason(err) != ""
}

// tlsReason is the TLS part of err's text: from "tls-" or "tls:" to the
// end of its first line, "" when there is none.
func tlsReason(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	i := strings.Index(msg, "tls-")
	if j := strings.Index(msg, "tls: "); i < 0 || (j >= 0 && j < i) {
		i = j
	}
	if i < 0 {
		return ""
	}
	msg = msg[i:]
	if k := strings.IndexByte(msg, '\n'); k >= 0 {
		msg = msg[:k]
	}
	return oneLine(msg)
}
