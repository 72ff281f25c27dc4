package syncer

import (
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// CountBehind counts the commits reachable from to and not from from (what
// `git rev-list --count from..to` prints), up to limit: more reports that
// there are over limit of them. from "" counts to's whole history. It is the
// status page's "behind by N": to is the upstream tip, from the deployed
// commit. The walk stops at the merge base, so it reads only the commits it
// counts (and, on an unrelated or rewritten history, at most gitobj.MaxWalk,
// which is then "more").
func (r *Repo) CountBehind(from, to string, limit int) (n int, more bool, err error) {
	if r.closed {
		return 0, false, ErrClosed
	}
	if from == to {
		return 0, false, nil
	}
	tip, err := r.commit(to)
	if err != nil {
		return 0, false, fmt.Errorf("count behind: %w", err)
	}
	if from == "" {
		return r.countHistory(tip.Hash, limit)
	}
	base, err := r.commit(from)
	if err != nil {
		return 0, false, fmt.Errorf("count behind: %w", err)
	}
	s, err := gitobj.Compare(r.repo.Storer, base.Hash, tip.Hash)
	if errors.Is(err, gitobj.ErrWalkTooLong) {
		return limit, true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("count behind %s..%s: %w", short(from), short(to), err)
	}
	if len(s.Theirs) > limit {
		return limit, true, nil
	}
	return len(s.Theirs), false, nil
}

// countHistory counts the commits of tip's history, visiting at most
// limit+1 of them.
func (r *Repo) countHistory(tip plumbing.Hash, limit int) (int, bool, error) {
	seen := map[plumbing.Hash]bool{tip: true}
	queue := []plumbing.Hash{tip}
	for len(queue) > 0 {
		if len(seen) > limit {
			return limit, true, nil
		}
		h := queue[0]
		queue = queue[1:]
		c, err := r.repo.CommitObject(h)
		if err != nil {
			return 0, false, fmt.Errorf("count behind: read commit %s: %w", h, err)
		}
		for _, p := range c.ParentHashes {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return len(seen), false, nil
}
