package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/sre-tools/deployer/store"
)

// runEntry says how a run starts.
type runEntry struct {
	triggers []store.Trigger
	// manual: an operator or the daemon itself asked for the run (it does
	// not follow a commit): the checkout is checked for hand edits even
	// when the sync did not move it, and a run that cannot go on is
	// recorded as blocked, so that whoever asked sees why.
	manual bool
	// evenBlocked: the run goes on whatever intervention is open on the
	// repo (a replay: an operator's explicit redo).
	evenBlocked bool
}

// prepared is what prepareRun found.
type prepared struct {
	rs store.RepoState // the repo's state after the sync
	// blocked says why the run cannot go on ("" when it can, or when the
	// repo's state could not be read).
	blocked string
	// run is the blocked run recorded (0: none).
	run store.RunID
}

// prepareRun is the one entry of every run, whether it follows a commit
// (poll, push, manual, retry, startup) or is a schedule's, a replay's or
// a deployment's: it reads the repo's state, syncs, and checks that no
// intervention blocks the repo. ok is false when the run cannot go on.
func (w *worker) prepareRun(ctx context.Context, e runEntry) (p prepared, ok bool) {
	rs, err := w.d.store.Repo(w.cfg.Name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		w.log.Error().Err(err).Msg("read repo state")
		return p, false
	}
	rs.Name = w.cfg.Name
	p.rs = rs
	if !w.sync(ctx, &p.rs, e.manual) {
		p.blocked = "sync failed: " + p.rs.LastError
	} else if !e.evenBlocked {
		if iv, blocked := w.blocking(); blocked {
			p.blocked = fmt.Sprintf("blocked by intervention #%d (%s): %s", iv.ID, iv.Kind, iv.Summary)
		}
	}
	if p.blocked == "" {
		return p, true
	}
	if e.manual {
		p.run = w.recordBlocked(e.triggers, p.rs, p.blocked)
	}
	return p, false
}

// recordBlocked records a run that could not go on, and why.
func (w *worker) recordBlocked(triggers []store.Trigger, rs store.RepoState, why string) store.RunID {
	now := w.d.now()
	run := store.Run{Repo: w.cfg.Name, Triggers: triggers, Base: rs.Deployed, Commit: rs.Head,
		Status: store.RunBlocked, Error: why, Started: now, Ended: now}
	id, err := w.d.store.CreateRun(run)
	if err != nil {
		w.log.Error().Err(err).Msg("record blocked run")
		return 0
	}
	return id
}
