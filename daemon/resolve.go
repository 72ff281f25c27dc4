package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

// reapply writes back again the journaled edits with these ids (our
// commits that Sync found diverged or rewritten away).
func (w *worker) reapply(ctx context.Context, ids []string) error {
	var entries []store.JournalEntry
	for _, id := range ids {
		e, err := w.d.store.JournalEntry(id)
		if err != nil {
			return fmt.Errorf("journal entry %s: %w", id, err)
		}
		entries = append(entries, e)
	}
	w.gitMu.Lock()
	defer w.gitMu.Unlock()
	return w.writeBack(ctx, entries)
}

// recoverJournal finishes edits a previous process accepted but did not
// settle (a crash between journal and push): each is re-applied to
// upstream; one that is already there is dropped, never applied twice.
func (w *worker) recoverJournal(ctx context.Context) {
	open, err := w.d.store.Journal(w.cfg.Name, store.JournalPending, store.JournalCommitted)
	if err != nil || len(open) == 0 {
		return
	}
	open = w.dropSupersededAtStart(open)
	if len(open) == 0 {
		return
	}
	ids := make([]string, len(open))
	for i, e := range open {
		ids[i] = e.ID
	}
	w.log.Warn().Strs("entries", ids).Msg("settling edits left open by a previous run")
	if err := w.reapply(ctx, ids); err != nil {
		w.log.Error().Err(err).Msg("settle open edits")
	}
}

// dropSupersededAtStart settles, instead of re-applying, the open entries
// of a step attempt that was redone before this start: pending, never
// committed, with a later entry of the same step on the same instance file
// that landed (a state file written before redone attempts superseded
// their predecessors when journaled). Re-applying one would put the step's
// older result over the newer one on the remote, or raise a push-conflict
// against the daemon's own commit. It returns the entries left to settle.
func (w *worker) dropSupersededAtStart(open []store.JournalEntry) []store.JournalEntry {
	var pushed []store.JournalEntry
	for _, e := range open {
		if e.State == store.JournalPending && e.Commit == "" && e.Deployment == "" && !e.TakeOurs {
			all, err := w.d.store.Journal(w.cfg.Name, store.JournalPushed)
			if err != nil {
				w.log.Error().Err(err).Msg("read landed journal entries")
				return open
			}
			pushed = all
			break
		}
	}
	if pushed == nil {
		return open
	}
	keep := open[:0:0]
	for _, e := range open {
		i := slices.IndexFunc(pushed, func(p store.JournalEntry) bool {
			return p.ID > e.ID && p.Deployment == "" && redoOf(e, p.Instance, p.File, p.Reason)
		})
		if i < 0 {
			keep = append(keep, e)
			continue
		}
		note := fmt.Sprintf("%s (journal %s of run %s landed)", store.SupersededNote, pushed[i].ID, pushed[i].Run)
		if _, err := w.d.store.DropJournal(e.ID, note); err != nil {
			w.log.Error().Err(err).Str("entry", e.ID).Msg("settle a superseded edit")
			keep = append(keep, e)
			continue
		}
		w.log.Warn().Str("entry", e.ID).Str("instance", e.Instance).Str("run", e.Run).Str("by", pushed[i].ID).
			Msg("an edit left open by an attempt that was redone is settled, not re-applied: " + note)
	}
	return keep
}

// resolveAction is an operator's resolution that needs the checkout, so it
// runs on the repo's worker goroutine.
func (w *worker) resolveAction(ctx context.Context, iv store.Intervention, take string) error {
	switch deployer.InterventionKind(iv.Kind) {
	case deployer.KindPushConflict:
		return w.takeSide(ctx, iv, take)
	case deployer.KindPushRejected:
		// Push the held edit again now that the server should take it.
		if id := iv.Evidence.Extra["journal_entry"]; id != "" {
			return w.reapply(ctx, []string{id})
		}
	case deployer.KindSyncDirty:
		res, err := w.repo.Rescue(ctx)
		if err != nil {
			return fmt.Errorf("rescue the hand edits: %w", err)
		}
		w.log.Warn().Str("rescue_ref", res.Rescue).Strs("files", res.Files).Msg("hand edits kept on a rescue ref; checkout reset")
	case deployer.KindSyncDiverged, deployer.KindUpstreamRewritten:
		res, err := w.repo.Adopt(ctx)
		if err != nil {
			return fmt.Errorf("reset to upstream: %w", err)
		}
		w.log.Warn().Str("rescue_ref", res.Rescue).Str("upstream", short(res.Upstream)).Msg("checkout reset to upstream; what was there is on a rescue ref")
		// The followed upstream is the new known tip: the next sync must not
		// see the rewrite again.
		head := w.repo.Head()
		w.updateRepo(func(st *store.RepoState) { st.Upstream, st.Head = res.Upstream, head })
		if len(res.Ours) > 0 {
			return w.reapply(ctx, res.Ours)
		}
	}
	return nil
}

// takeSide settles a push conflict: theirs drops our edit, ours writes our
// values over upstream's.
func (w *worker) takeSide(ctx context.Context, iv store.Intervention, take string) error {
	id := iv.Evidence.Extra["journal_entry"]
	e, err := w.d.store.JournalEntry(id)
	if err != nil {
		return fmt.Errorf("journal entry %q of intervention %d: %w", id, iv.ID, err)
	}
	switch take {
	case "theirs":
		_, err := w.d.store.SetJournalState(e.ID, store.JournalDropped, "")
		return err
	case "ours":
	default:
		return deployer.Errorf(deployer.EINVALID, "push-conflict needs --take ours or --take theirs")
	}
	// Ours is carried onto upstream as any write-back is, by element
	// (never by position: the element may have moved), with ours winning
	// the values both sides changed. What no value settles (the element
	// removed upstream, or several candidates) is refused before anything
	// is journaled, and the intervention stays open.
	c, err := w.change(store.JournalEntry{ID: e.ID, Repo: e.Repo, Instance: e.Instance, File: e.File, BaseBlob: e.BaseBlob,
		Edits: e.Edits, Reason: e.Reason, Run: e.Run, Deployment: e.Deployment, TakeOurs: true})
	if err != nil {
		return err
	}
	w.gitMu.Lock()
	upstream, rerr := w.repo.ReadFile(w.repo.Head(), e.File)
	w.gitMu.Unlock()
	if rerr != nil {
		upstream = nil
	}
	if _, err := c.Apply(upstream); err != nil {
		var ce *conflictError
		if errors.As(err, &ce) {
			return deployer.Errorf(deployer.EINVALID, "cannot take ours over upstream's %s: %s; edit the file upstream by hand, then resolve with --take theirs",
				e.File, ce.Error())
		}
		return err
	}
	ours, err := w.d.store.PutJournal(store.JournalEntry{
		Repo: e.Repo, Instance: e.Instance, File: e.File, BaseBlob: e.BaseBlob, Edits: e.Edits, TakeOurs: true,
		Author: e.Author, Reason: e.Reason + " (taken over upstream by an operator)", Run: e.Run, Deployment: e.Deployment,
	})
	if err != nil {
		return err
	}
	if _, err := w.d.store.SetJournalState(e.ID, store.JournalDropped, ""); err != nil {
		return err
	}
	w.gitMu.Lock()
	defer w.gitMu.Unlock()
	return w.writeBack(ctx, []store.JournalEntry{ours})
}

// Resolve resolves intervention id for an operator. Kinds that need the
// checkout (push-conflict with --take, sync-dirty, sync-diverged,
// upstream-rewritten) are carried out by the repo's worker first; retry
// queues the blocked work again.
func (d *Daemon) Resolve(ctx context.Context, id uint64, req deployer.ResolveRequest) (deployer.Intervention, error) {
	if id == 0 {
		return deployer.Intervention{}, deployer.Errorf(deployer.EINVALID,
			"intervention 0 is a host-resource shown from memory (the state file could not record it): it cannot be resolved by hand; free disk space and it resolves by itself")
	}
	iv, err := d.store.Intervention(id)
	if errors.Is(err, store.ErrNotFound) {
		return deployer.Intervention{}, deployer.Errorf(deployer.ENOTFOUND, "intervention %d not found", id)
	}
	if err != nil {
		return deployer.Intervention{}, err
	}
	if iv.Resolved() {
		return deployer.Intervention{}, deployer.Errorf(deployer.EINVALID, "intervention %d is already resolved (%s by %s)", id, iv.ResolvedHow, iv.ResolvedBy)
	}
	if req.Take != "" && deployer.InterventionKind(iv.Kind) != deployer.KindPushConflict {
		return deployer.Intervention{}, deployer.Errorf(deployer.EINVALID, "--take applies to push-conflict, not %s", iv.Kind)
	}
	if deployer.InterventionKind(iv.Kind) == deployer.KindPushConflict && !slices.Contains([]string{"ours", "theirs"}, req.Take) {
		return deployer.Intervention{}, deployer.Errorf(deployer.EINVALID, "intervention %d is a push-conflict: say --take ours or --take theirs", id)
	}
	if dep := iv.Evidence.Extra["deployment"]; req.Retry && dep != "" && deployer.InterventionKind(iv.Kind) == deployer.KindStepFailed {
		if _, err := d.store.Deployment(dep); err == nil {
			// A retry outside the deployment would run the instance in a
			// run of its own, leave the deployment failed, and run it again
			// at the deployment's retry.
			return deployer.Intervention{}, deployer.Errorf(deployer.EINVALID,
				"intervention %d was raised in deployment %s: --retry would run %s outside it; resolve, then retry the deployment: deployer interventions resolve %d && deployer deployments retry %s",
				id, dep, iv.Instance, id, dep)
		}
	}
	how := req.Note
	w, err := d.worker(iv.Repo)
	if err != nil {
		// The repo is no longer configured: there is no checkout to act
		// on and no work to retry, but the record must not stay open for
		// ever. It is resolved as it is.
		if req.Take != "" || req.Retry {
			return deployer.Intervention{}, deployer.Errorf(deployer.EINVALID,
				"intervention %d is on repo %q, which is no longer configured: resolve it without --take or --retry", id, iv.Repo)
		}
		if how == "" {
			how = "resolved by an operator"
		}
		res, err := d.store.Resolve(id, req.Who, how+" (repo "+iv.Repo+" is no longer configured)")
		if err != nil {
			return deployer.Intervention{}, fmt.Errorf("resolve intervention %d: %w", id, err)
		}
		d.notify.kick()
		return d.apiIntervention(res), nil
	}
	if req.Take != "" {
		how = fmt.Sprintf("took %s. %s", req.Take, req.Note)
	}
	if how == "" {
		how = "resolved by an operator"
	}
	// The resolution, its record and the retry happen on the worker in one
	// step, so that no run slips in between and does the work twice.
	var res store.Intervention
	var notice string
	done := make(chan error, 1)
	w.enqueueAction(func(ctx context.Context) error {
		if err := w.resolveAction(ctx, iv, req.Take); err != nil {
			return err
		}
		var err error
		if res, err = d.store.Resolve(id, req.Who, how); err != nil {
			return err
		}
		if deployer.InterventionKind(iv.Kind) == deployer.KindHostResource {
			notice = w.resourceResolved()
		}
		if req.Retry {
			w.enqueueRetry(fmt.Sprintf("intervention %d resolved with --retry", id), iv.Instance)
		}
		return nil
	}, done)
	select {
	case <-ctx.Done():
		return deployer.Intervention{}, ctx.Err()
	case err := <-done:
		if err != nil {
			return deployer.Intervention{}, fmt.Errorf("resolve intervention %d: %w", id, err)
		}
	}
	d.notify.kick()
	out := d.apiIntervention(res)
	out.Notice = notice
	return out, nil
}

// resourceResolved runs after an operator resolved host-resource: when the
// repo is still blocked for a resource, the probe runs at once, and if it
// still fails host-resource is raised again (the repo is never blocked
// without an open intervention). It returns what the operator must know,
// or "" when writes work.
func (w *worker) resourceResolved() string {
	w.resMu.Lock()
	short := w.resource != ""
	w.resMu.Unlock()
	if !short {
		return ""
	}
	err := w.probeWrites()
	if err == nil {
		// The next trigger's probe lifts the block and redoes the work.
		w.signal()
		return ""
	}
	w.reraiseResource(err)
	again := "it is raised again"
	if iv, ok := w.resourceIntervention(); ok {
		again = fmt.Sprintf("host-resource is open again as intervention %d", iv.ID)
	}
	return fmt.Sprintf("the host is still short: %v; the repo stays blocked and %s (free space, it resolves by itself once writes work)", err, again)
}
