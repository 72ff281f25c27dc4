package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// Change is one journaled edit of one file, to commit and push.
type Change struct {
	// ID identifies the edit in the caller's journal. It is written as the trailer
	// "Deployer-Change: <ID>", by which Sync recognises the daemon's commits.
	ID string
	// Path is the slash path of the one file the change edits.
	Path string
	// Apply returns the new content of the file, given its content at the upstream commit the
	// change is being applied to (nil when the file does not exist there). It is called again
	// for each attempt after the remote moved. An error is the caller's (typically a merge
	// conflict): the change is reported as OutcomeConflict with that error and the others go on.
	Apply func(upstream []byte) ([]byte, error)
	// Message is the commit message (subject, blank line, body); trailers are appended.
	Message string
	// Trailers are added after the message, sorted by key (e.g. Deployer-Host, Deployer-Run).
	Trailers map[string]string
	// Author overrides Options.Author for this commit.
	Author *Author
}

// OutcomeStatus is what became of a Change.
type OutcomeStatus string

// The outcomes of a Change.
const (
	OutcomeLanded   OutcomeStatus = "landed"   // committed and on the remote branch
	OutcomeDropped  OutcomeStatus = "dropped"  // the edit is already upstream: no commit
	OutcomeConflict OutcomeStatus = "conflict" // Apply failed on the new upstream version
	OutcomeRejected OutcomeStatus = "rejected" // a hook or protection refused the push
	OutcomePending  OutcomeStatus = "pending"  // not landed: the remote could not be reached or kept moving
)

// Outcome is the result for one Change, in the order given.
type Outcome struct {
	ID     string
	Status OutcomeStatus
	// Commit is the landed commit (OutcomeLanded).
	Commit string
	// Upstream is the upstream commit the change was last applied to; for a conflict, the
	// version whose content Apply refused.
	Upstream string
	// Err is Apply's error for a conflict, the push error (with the server's message in
	// its Detail) for rejected and pending.
	Err error
	// Attempts is the number of pushes the change took part in.
	Attempts int
}

// ErrNeedsSync is returned by WriteBack when the checkout is not at upstream or ahead of it
// with only our commits: call Sync first.
var ErrNeedsSync = errors.New("checkout is not at upstream: sync first")

// WriteBack commits each change (one commit per change, touching only its path) on top of the
// upstream tip and pushes them together with an explicit ref update, never a force. When the
// remote moved, it fetches, re-applies every remaining change to the new upstream version of
// its file with Apply and pushes again, up to attempts times (default 5) with jittered
// exponential backoff. An edit already upstream is dropped. A conflict drops that change only.
// A hook or protection rejection marks every change of that push rejected. An unreachable
// remote leaves them pending (committed locally: a later Sync sees ahead-ours and pushes them)
// and returns its *Error. Outcomes are in the order of changes.
func (r *Repo) WriteBack(ctx context.Context, changes []Change, attempts int) ([]Outcome, error) {
	if r.closed {
		return nil, ErrClosed
	}
	out, err := r.writeBack(ctx, changes, attempts)
	if err = r.resourceError("write-back", err); KindOf(err) == KindResource {
		for i := range out {
			if out[i].Status == OutcomePending {
				out[i].Err = err
			}
		}
	}
	return out, err
}

func (r *Repo) writeBack(ctx context.Context, changes []Change, attempts int) ([]Outcome, error) {
	if attempts <= 0 {
		attempts = 5
	}
	out := make([]Outcome, len(changes))
	for i, c := range changes {
		out[i] = Outcome{ID: c.ID, Status: OutcomePending}
	}
	if err := r.writeBackReady(changes); err != nil {
		return out, err
	}
	var last error
	for a := 1; a <= attempts; a++ {
		if a > 1 {
			if err := r.backoff(ctx, a); err != nil {
				return out, err
			}
			if err := r.fetch(ctx); err != nil {
				return out, r.remoteError("fetch", err)
			}
		}
		done, err := r.writeBackOnce(ctx, changes, out)
		if done || err == nil {
			return out, err
		}
		last = err
		r.log.Info().Int("attempt", a).Err(err).Msg("remote moved during write-back, re-applying")
	}
	for i := range out {
		if out[i].Status == OutcomePending {
			out[i].Err = last
		}
	}
	return out, last
}

func (r *Repo) failpoint(name string) {
	if r.opts.Failpoint != nil {
		r.opts.Failpoint(name)
	}
}

// writeBackReady checks that HEAD is upstream or ahead of it with our commits only, and that
// no file outside the changes' paths is dirty (moving the checkout could overwrite it).
func (r *Repo) writeBackReady(changes []Change) error {
	head, err := r.headHash()
	if err != nil {
		return internalf("write-back", err)
	}
	up, err := r.upstreamHash()
	if err != nil {
		return internalf("write-back", err)
	}
	if head != up {
		s, err := gitobj.Compare(r.repo.Storer, head, up)
		if err != nil {
			return internalf("write-back", err)
		}
		if len(s.Theirs) > 0 || len(r.foreign(s.Ours)) > 0 {
			return newError(KindDiverged, "write-back", ErrNeedsSync, "")
		}
	}
	dirty, err := r.scanDirty()
	if err != nil {
		return internalf("write-back", err)
	}
	paths := map[string]bool{}
	for _, c := range changes {
		paths[c.Path] = true
	}
	var others []string
	for _, d := range dirty {
		if !paths[d.Name] {
			others = append(others, d.Name)
		}
	}
	if len(others) > 0 {
		return newError(KindDirty, "write-back", ErrDirty, "uncommitted changes in: "+strings.Join(others, ", "))
	}
	return nil
}

// writeBackOnce builds the commits of the pending changes on the upstream tip, moves the
// checkout there and pushes. done reports that nothing is left to retry.
func (r *Repo) writeBackOnce(ctx context.Context, changes []Change, out []Outcome) (done bool, err error) {
	base, err := r.upstreamHash()
	if err != nil {
		return true, internalf("write-back", err)
	}
	tip, landed, err := r.commitChanges(base, changes, out)
	if err != nil {
		return true, internalf("write-back", err)
	}
	if tip != base {
		r.failpoint("committed")
	}
	head, err := r.headHash()
	if err != nil {
		return true, internalf("write-back", err)
	}
	if head != tip {
		if _, err := r.moveTo(head, tip); err != nil {
			return true, internalf("write-back", err)
		}
	}
	if tip == base {
		return true, nil
	}
	r.failpoint("spliced")
	err = r.push(ctx, base, tip)
	for _, i := range landed {
		out[i].Attempts++
	}
	switch {
	case err == nil:
		for _, i := range landed {
			out[i].Status = OutcomeLanded
		}
		return true, nil
	case errors.Is(err, ErrNonFastForward), errors.Is(err, ErrRace):
		for _, i := range landed {
			out[i].Commit = ""
		}
		return false, err
	case errors.Is(err, ErrRejected):
		for _, i := range landed {
			out[i].Status, out[i].Err, out[i].Commit = OutcomeRejected, err, ""
		}
		// The rejected commits must not linger as "ahead": return to upstream.
		_, merr := r.moveTo(tip, base)
		return true, errors.Join(err, internalf("write-back", merr))
	}
	for _, i := range landed {
		out[i].Err = err
	}
	return true, err
}

// commitChanges commits each pending change on top of base, in order. It returns the new tip
// and the indexes of the changes that made a commit. All the commits' trees come from one
// gitobj.TreeBatch: each directory on a changed path is decoded once for the whole batch.
func (r *Repo) commitChanges(base plumbing.Hash, changes []Change, out []Outcome) (plumbing.Hash, []int, error) {
	parent, err := r.repo.CommitObject(base)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	// The chain's objects are written when it is done, as one pack when it is
	// long (see gitobj.PendingObjects); nothing refers to them before this returns.
	pending := gitobj.NewPendingObjects(r.repo.Storer)
	batch := gitobj.NewTreeBatch(pending, parent.TreeHash)
	tip := base
	var made []int
	for i, c := range changes {
		if out[i].Status != OutcomePending {
			continue
		}
		out[i].Upstream = base.String()
		next, err := r.commitChange(pending, batch, tip, c)
		if err != nil {
			var ce *changeError
			if !errors.As(err, &ce) {
				return plumbing.ZeroHash, nil, err
			}
			out[i].Status, out[i].Err = OutcomeConflict, ce.err
			continue
		}
		if next.IsZero() {
			out[i].Status = OutcomeDropped
			continue
		}
		out[i].Commit = next.String()
		made = append(made, i)
		tip = next
	}
	if err := pending.Flush(); err != nil {
		return plumbing.ZeroHash, nil, err
	}
	return tip, made, nil
}

// changeError wraps an error returned by Change.Apply.
type changeError struct{ err error }

func (e *changeError) Error() string { return e.err.Error() }

// commitChange applies c to its file in batch and commits the result on parent; the zero
// hash when the content is unchanged (the edit is already there).
func (r *Repo) commitChange(pending *gitobj.PendingObjects, batch *gitobj.TreeBatch, parent plumbing.Hash, c Change) (plumbing.Hash, error) {
	if err := CheckPath(c.Path); err != nil {
		return plumbing.ZeroHash, &changeError{fmt.Errorf("change %s: %w", c.ID, err)}
	}
	e, found, err := batch.Lookup(c.Path)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	var cur []byte
	mode := filemode.Regular
	if found && (e.Mode == filemode.Dir || e.Mode == filemode.Submodule) {
		return plumbing.ZeroHash, fmt.Errorf("change %s: %s is a directory, not a file", c.ID, c.Path)
	}
	if found {
		if cur, err = gitobj.ReadBlob(pending, e.Hash); err != nil {
			return plumbing.ZeroHash, err
		}
		mode = e.Mode
	}
	data, err := c.Apply(cur)
	if err != nil {
		return plumbing.ZeroHash, &changeError{err}
	}
	if (cur != nil && bytes.Equal(cur, data)) || (cur == nil && data == nil) {
		return plumbing.ZeroHash, nil
	}
	u := gitobj.TreeUpdate{Delete: true}
	if data != nil {
		h, err := gitobj.StoreBlob(pending, data)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		u = gitobj.TreeUpdate{Hash: h, Mode: mode}
	}
	if err := batch.Set(c.Path, u); err != nil {
		return plumbing.ZeroHash, err
	}
	tree, err := batch.Write()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	sig := r.signature()
	author := sig
	if c.Author != nil {
		author.Name, author.Email = c.Author.Name, c.Author.Email
	}
	return gitobj.StoreCommit(pending, &object.Commit{Author: author, Committer: sig, Message: r.message(c), TreeHash: tree, ParentHashes: []plumbing.Hash{parent}})
}

// message is the commit message with the change's trailers.
func (r *Repo) message(c Change) string {
	msg := strings.TrimRight(c.Message, "\n")
	if msg == "" {
		msg = "deployer: edit " + c.Path
	}
	keys := make([]string, 0, len(c.Trailers))
	for k := range c.Trailers {
		if k != TrailerChange {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(msg)
	b.WriteString("\n")
	if len(keys) > 0 || c.ID != "" {
		b.WriteString("\n")
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, c.Trailers[k])
	}
	if c.ID != "" {
		fmt.Fprintf(&b, "%s: %s\n", TrailerChange, c.ID)
	}
	return b.String()
}

// backoff waits before attempt a: 100 ms doubling, with ±50% jitter, at most 5 s.
func (r *Repo) backoff(ctx context.Context, a int) error {
	d := 100 * time.Millisecond << (a - 2)
	if d > 5*time.Second {
		d = 5 * time.Second
	}
	d = d/2 + time.Duration(rand.Int64N(int64(d)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return r.remoteError("write-back", ctx.Err())
	case <-t.C:
		return nil
	}
}
