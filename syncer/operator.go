package syncer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Rescue keeps the checkout's uncommitted changes on a rescue ref and
// restores the files from HEAD, whatever Options.OnDirty says: an
// operator's resolution of a sync-dirty intervention. Nothing is discarded.
func (r *Repo) Rescue(ctx context.Context) (Result, error) {
	if r.closed {
		return Result{}, ErrClosed
	}
	head := r.Head()
	res := Result{State: StateClean, Before: head, Head: head}
	dirty, _, err := r.scanDirty()
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
func (r *Repo) Adopt(ctx context.Context) (Result, error) {
	if r.closed {
		return Result{}, ErrClosed
	}
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
	s, err := r.compare(before, up)
	if err != nil && !errors.Is(err, errWalkTooLong) {
		return res, internalf("adopt", err)
	}
	if s != nil {
		res.Ours = r.ourChangeIDs(s.ours)
	}
	return r.resetTo(res, before, up)
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

// Commits lists up to limit commits after from (exclusive) up to to that
// changed path, newest first, following first parents. It visits at most
// maxLogWalk commits: it is for evidence, not for history.
func (r *Repo) Commits(from, to, path string, limit int) ([]CommitInfo, error) {
	c, err := r.commit(to)
	if err != nil {
		return nil, err
	}
	stop := plumbing.NewHash(from)
	var out []CommitInfo
	for i := 0; i < maxLogWalk && len(out) < limit && c.Hash != stop; i++ {
		changed, parent, err := r.touches(c, path)
		if err != nil {
			return out, err
		}
		if changed {
			out = append(out, CommitInfo{Hash: c.Hash.String(), Author: fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
				Subject: firstLine(c.Message), When: c.Author.When})
		}
		if parent == nil {
			break
		}
		c = parent
	}
	return out, nil
}

// touches reports whether c changed path against its first parent, and returns that parent.
func (r *Repo) touches(c *object.Commit, path string) (bool, *object.Commit, error) {
	blob := func(c *object.Commit) plumbing.Hash {
		t, err := c.Tree()
		if err != nil {
			return plumbing.ZeroHash
		}
		e, err := t.FindEntry(path)
		if err != nil {
			return plumbing.ZeroHash
		}
		return e.Hash
	}
	if c.NumParents() == 0 {
		return blob(c) != plumbing.ZeroHash, nil, nil
	}
	p, err := c.Parent(0)
	if err != nil {
		return false, nil, err
	}
	return blob(c) != blob(p), p, nil
}
