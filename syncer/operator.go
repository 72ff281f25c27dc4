package syncer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// Rescue keeps the checkout's uncommitted changes on a rescue ref and
// restores the files from HEAD, whatever Options.OnDirty says: an
// operator's resolution of a sync-dirty intervention. Nothing is discarded.
func (r *Repo) Rescue(ctx context.Context) (Result, error) {
	if r.closed {
		return Result{}, ErrClosed
	}
	res, err := r.rescue()
	return r.settle("rescue", res, err)
}

func (r *Repo) rescue() (Result, error) {
	head := r.Head()
	res := Result{State: StateClean, Before: head, Head: head}
	dirty, err := r.scanDirty()
	if err != nil {
		return res, internalf("rescue", err)
	}
	if len(dirty) == 0 {
		return res, nil
	}
	hc, err := r.headCommit()
	if err != nil {
		return res, internalf("rescue", err)
	}
	for _, d := range dirty {
		res.Files = append(res.Files, d.Name)
	}
	res.Detail = r.dirtySummary(hc, dirty)
	if res.Rescue, err = r.rescueDirty(hc, dirty); err != nil {
		return res, internalf("rescue", err)
	}
	r.log.Warn().Strs("files", res.Files).Str("rescue", res.Rescue).Msg("uncommitted changes kept on a rescue ref")
	return res, nil
}

// Adopt fetches and moves the checkout to the upstream tip after keeping
// HEAD on a rescue ref, whatever Options.OnRewrite says: an operator's
// resolution of sync-diverged or upstream-rewritten. Result.Ours lists the
// change ids of our commits that upstream lacks, for the caller to
// re-apply with WriteBack.
//
// A checkout found broken on the way is re-cloned as Sync does (StateCorrupt, no error).
//
// Uncommitted changes are handled first as Options.OnDirty says: with the
// default (intervene) Adopt returns a KindDirty *Error and moves nothing, so
// a hand edit is never overwritten; call Rescue first to keep them.
func (r *Repo) Adopt(ctx context.Context) (Result, error) {
	if r.closed {
		return Result{}, ErrClosed
	}
	res, err := r.adopt(ctx)
	return r.settle("adopt", res, err)
}

func (r *Repo) adopt(ctx context.Context) (Result, error) {
	before, err := r.headHash()
	if err != nil {
		return Result{}, internalf("adopt", err)
	}
	res := Result{State: StateClean, Before: before.String(), Head: before.String()}
	if err := r.fetch(ctx); err != nil {
		return res, r.remoteError("fetch", err)
	}
	up, err := r.upstreamHash()
	if err != nil {
		return res, internalf("adopt", err)
	}
	res.Upstream = up.String()
	if up == before {
		return res, nil
	}
	dirty, err := r.scanDirty()
	if err != nil {
		return res, internalf("adopt", err)
	}
	if len(dirty) > 0 {
		if res, err = r.handleDirty(res, dirty); err != nil {
			return res, err
		}
	}
	s, err := gitobj.Compare(r.repo.Storer, before, up)
	if err != nil && !errors.Is(err, gitobj.ErrWalkTooLong) {
		if isCorrupt(err) {
			return r.recover(ctx, res, "", err)
		}
		return res, internalf("adopt", err)
	}
	if s != nil {
		res.Ours = r.ourChangeIDs(s.Ours)
	}
	res, err = r.resetTo(res, before, up)
	if KindOf(err) == KindInternal && isCorrupt(err) {
		// The store lost an object the move needed: re-clone, which lands at upstream too.
		return r.recover(ctx, res, "", err)
	}
	return res, err
}

// CommitInfo names a commit and who made it.
type CommitInfo struct {
	Hash    string
	Author  string
	Subject string
	When    time.Time
}

// maxLogWalk bounds the commits Commits visits.
const maxLogWalk = 1000

// Commits lists up to limit commits after from (exclusive; "" means from the
// start of history) up to to that changed path (added, modified or removed
// it), newest first, following first parents. It visits at most maxLogWalk
// commits: it is for evidence, not for history.
func (r *Repo) Commits(from, to, path string, limit int) ([]CommitInfo, error) {
	if r.closed {
		return nil, ErrClosed
	}
	stop := plumbing.ZeroHash
	if from != "" {
		if !plumbing.IsHash(from) {
			return nil, fmt.Errorf("commits of %s: %q is not a commit id", path, from)
		}
		stop = plumbing.NewHash(from)
	}
	c, err := r.commit(to)
	if err != nil {
		return nil, fmt.Errorf("commits of %s: %w", path, err)
	}
	cur, err := r.blobAt(c, path)
	if err != nil {
		return nil, fmt.Errorf("commits of %s: %w", path, err)
	}
	var out []CommitInfo
	for i := 0; i < maxLogWalk && len(out) < limit && c.Hash != stop; i++ {
		var parent *object.Commit
		prev := plumbing.ZeroHash
		if c.NumParents() > 0 {
			if parent, err = c.Parent(0); err != nil {
				return out, fmt.Errorf("commits of %s: %w", path, err)
			}
			if prev, err = r.blobAt(parent, path); err != nil {
				return out, fmt.Errorf("commits of %s: %w", path, err)
			}
		}
		if cur != prev {
			out = append(out, CommitInfo{Hash: c.Hash.String(), Author: fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
				Subject: firstLine(c.Message), When: c.Author.When})
		}
		if parent == nil {
			break
		}
		c, cur = parent, prev
	}
	return out, nil
}

// blobAt returns the hash of path's entry at commit c, or the zero hash when c has no such
// path. A tree that cannot be read is an error, not an absent path.
func (r *Repo) blobAt(c *object.Commit, path string) (plumbing.Hash, error) {
	t, err := c.Tree()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read tree of %s: %w", c.Hash, err)
	}
	e, err := t.FindEntry(path)
	if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("find %s in %s: %w", path, c.Hash, err)
	}
	return e.Hash, nil
}
