package gitobj

import (
	"container/heap"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// MaxWalk bounds every ancestry walk. The walk stops at the merge base, so it only reaches
// this on unrelated histories, which are then treated as not related.
const MaxWalk = 1_000_000

// ErrWalkTooLong is returned by a walk that visited MaxWalk commits.
var ErrWalkTooLong = errors.New("ancestry walk exceeded its bound")

const (
	flagOurs uint8 = 1 << iota
	flagTheirs
	flagStale
)

// Sides is the result of painting two commits' histories down to their merge bases, as git's
// merge-base does: it visits only the commits newer than the merge base (in commit-date order),
// never all of history.
type Sides struct {
	Ours   []*object.Commit // reachable from ours, not from theirs, newest first
	Theirs []*object.Commit // reachable from theirs, not from ours, newest first
	Bases  []plumbing.Hash
}

// Compare paints the histories of ours and theirs down to their merge bases (see Sides),
// reading commits from s.
func Compare(s storer.EncodedObjectStorer, ours, theirs plumbing.Hash) (*Sides, error) {
	w := &painter{s: s, flags: map[plumbing.Hash]uint8{}, commits: map[plumbing.Hash]*object.Commit{}}
	if err := w.add(ours, flagOurs); err != nil {
		return nil, err
	}
	if err := w.add(theirs, flagTheirs); err != nil {
		return nil, err
	}
	if err := w.run(); err != nil {
		return nil, err
	}
	return w.result(), nil
}

// IsAncestor reports whether a is an ancestor of (or equal to) b.
func IsAncestor(st storer.EncodedObjectStorer, a, b plumbing.Hash) (bool, error) {
	if a == b {
		return true, nil
	}
	s, err := Compare(st, a, b)
	if err != nil {
		return false, err
	}
	return len(s.Ours) == 0, nil
}

// Reaches reports whether target is an ancestor of (or equal to) from by walking every
// commit of from's history (at most MaxWalk), without reading target itself: any other
// commit on the way that cannot be read is an error. It is the check for a commit the store
// does not have: only a walk that reads the whole history can tell "not an ancestor" from "an
// ancestor the store lost".
func Reaches(s storer.EncodedObjectStorer, from, target plumbing.Hash) (bool, error) {
	if from == target {
		return true, nil
	}
	seen := map[plumbing.Hash]bool{from: true}
	stack := []plumbing.Hash{from}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		c, err := object.GetCommit(s, h)
		if err != nil {
			return false, fmt.Errorf("read commit %s: %w", h, err)
		}
		for _, p := range c.ParentHashes {
			if p == target {
				return true, nil
			}
			if seen[p] {
				continue
			}
			if len(seen) >= MaxWalk {
				return false, ErrWalkTooLong
			}
			seen[p] = true
			stack = append(stack, p)
		}
	}
	return false, nil
}

type painter struct {
	s       storer.EncodedObjectStorer
	flags   map[plumbing.Hash]uint8
	commits map[plumbing.Hash]*object.Commit
	order   []plumbing.Hash
	queue   commitQueue
	bases   []plumbing.Hash
	seq     int
}

func (w *painter) add(h plumbing.Hash, f uint8) error {
	old, seen := w.flags[h]
	if seen && old&f == f {
		return nil
	}
	w.flags[h] = old | f
	if seen {
		// already queued or visited: re-queue so the new flag propagates
		w.push(w.commits[h])
		return nil
	}
	c, err := object.GetCommit(w.s, h)
	if err != nil {
		return fmt.Errorf("read commit %s: %w", h, err)
	}
	w.commits[h] = c
	w.order = append(w.order, h)
	if len(w.order) > MaxWalk {
		return ErrWalkTooLong
	}
	w.push(c)
	return nil
}

func (w *painter) push(c *object.Commit) {
	w.seq++
	heap.Push(&w.queue, queued{c: c, seq: w.seq})
}

func (w *painter) interesting() bool {
	for _, q := range w.queue {
		if w.flags[q.c.Hash]&flagStale == 0 {
			return true
		}
	}
	return false
}

func (w *painter) run() error {
	for w.queue.Len() > 0 && w.interesting() {
		c := heap.Pop(&w.queue).(queued).c
		f := w.flags[c.Hash] & (flagOurs | flagTheirs | flagStale)
		if f&(flagOurs|flagTheirs) == flagOurs|flagTheirs {
			if f&flagStale == 0 {
				w.bases = append(w.bases, c.Hash)
			}
			f |= flagStale
			w.flags[c.Hash] |= flagStale
		}
		for _, p := range c.ParentHashes {
			if w.flags[p]&f == f {
				continue
			}
			if err := w.add(p, f); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *painter) result() *Sides {
	w.propagateCommon()
	s := &Sides{Bases: w.bases}
	for _, h := range w.order {
		switch w.flags[h] & (flagOurs | flagTheirs) {
		case flagOurs:
			s.Ours = append(s.Ours, w.commits[h])
		case flagTheirs:
			s.Theirs = append(s.Theirs, w.commits[h])
		}
	}
	return s
}

// propagateCommon marks every visited ancestor of a common commit as common.
// The walk stops once only stale commits are queued, which can leave an older
// commit flagged with one side only when committer dates tie (commits made in
// the same second): without this it would be reported as that side's own.
func (w *painter) propagateCommon() {
	var stack []plumbing.Hash
	for _, h := range w.order {
		if w.flags[h]&(flagOurs|flagTheirs) == flagOurs|flagTheirs {
			stack = append(stack, h)
		}
	}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, p := range w.commits[h].ParentHashes {
			f, seen := w.flags[p]
			if !seen || f&(flagOurs|flagTheirs) == flagOurs|flagTheirs {
				continue
			}
			w.flags[p] = f | flagOurs | flagTheirs | flagStale
			stack = append(stack, p)
		}
	}
}

type queued struct {
	c   *object.Commit
	seq int
}

// commitQueue pops the newest commit first (committer date, then insertion order).
type commitQueue []queued

func (q commitQueue) Len() int { return len(q) }
func (q commitQueue) Less(i, j int) bool {
	ti, tj := q[i].c.Committer.When, q[j].c.Committer.When
	if !ti.Equal(tj) {
		return ti.After(tj)
	}
	return q[i].seq < q[j].seq
}
func (q commitQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *commitQueue) Push(x any)   { *q = append(*q, x.(queued)) }
func (q *commitQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
