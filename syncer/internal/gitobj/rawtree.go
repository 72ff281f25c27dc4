package gitobj

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// The tree diff works on raw tree objects: the entries of two trees are merged straight from
// their bytes, an entry whose mode and hash are the same on both sides (a file, or a whole
// subtree) is skipped without a string, a map or a decoded object, and only a differing
// entry becomes an object.Change. A 10,000-entry directory with one changed file costs a
// walk of its bytes, not 10,000 decoded entries per side. A TreeCache keeps the raw trees of
// the deployed commit between diffs, so that the next diff reads only the new side.

// TreeCache keeps raw tree objects by hash (content-addressed: an entry is never stale).
// A diff adds the trees it read of its new side and drops those of its old side that it
// replaced, so that what stays is, by and large, the trees of the commit deployed last. It
// holds at most maxTreeCache bytes. Safe for concurrent use.
type TreeCache struct {
	mu    sync.Mutex
	trees map[plumbing.Hash][]byte
	old   map[plumbing.Hash]bool // the old side's trees of the diff in progress
	size  int
}

// maxTreeCache bounds the bytes a TreeCache keeps.
const maxTreeCache = 64 << 20

// NewTreeCache returns an empty cache.
func NewTreeCache() *TreeCache {
	return &TreeCache{trees: map[plumbing.Hash][]byte{}, old: map[plumbing.Hash]bool{}}
}

// Reset empties the cache.
func (c *TreeCache) Reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trees, c.old, c.size = map[plumbing.Hash][]byte{}, map[plumbing.Hash]bool{}, 0
}

// Len is the number of trees kept.
func (c *TreeCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.trees)
}

func (c *TreeCache) get(h plumbing.Hash, newSide bool) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !newSide {
		c.old[h] = true
	}
	b, ok := c.trees[h]
	return b, ok
}

// Peek returns tree h's raw content if the cache holds it, without counting it as read by a
// diff. The caller must not modify it.
func (c *TreeCache) Peek(h plumbing.Hash) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.trees[h]
	return b, ok
}

func (c *TreeCache) put(h plumbing.Hash, b []byte, newSide bool) {
	if c == nil || !newSide {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.trees[h]; ok || c.size+len(b) > maxTreeCache {
		return
	}
	c.trees[h] = b
	c.size += len(b)
}

// settle drops the old side's trees of the last diff (those not on its new side too).
func (c *TreeCache) settle(keep map[plumbing.Hash]bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for h := range c.old {
		if b, ok := c.trees[h]; ok && !keep[h] {
			delete(c.trees, h)
			c.size -= len(b)
		}
	}
	c.old = map[plumbing.Hash]bool{}
}

// Warm reads the trees of root (recursively, up to the cache's bound) into the cache, as the
// trees of the deployed commit.
func (c *TreeCache) Warm(s storer.EncodedObjectStorer, root plumbing.Hash) error {
	var walk func(h plumbing.Hash, dir string) error
	walk = func(h plumbing.Hash, dir string) error {
		b, err := readTree(s, c, h, dir, true)
		if err != nil {
			return err
		}
		for rest := b; len(rest) > 0; {
			var e rawEntry
			if e, rest, err = nextEntry(rest, dir); err != nil {
				return err
			}
			if e.mode == filemode.Dir {
				if c.full() {
					return nil
				}
				if err := walk(e.hash(), joinPath(dir, string(e.name))); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if root.IsZero() {
		return nil
	}
	return walk(root, "")
}

func (c *TreeCache) full() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size >= maxTreeCache
}

// readTree returns the raw content of tree h (nil for the zero hash), from the cache if it is
// there; keep marks it as one to keep (the new side of a diff).
func readTree(s storer.EncodedObjectStorer, c *TreeCache, h plumbing.Hash, dir string, keep bool) ([]byte, error) {
	if h.IsZero() {
		return nil, nil
	}
	if b, ok := c.get(h, keep); ok {
		return b, nil
	}
	// A tree this process wrote last (a write-back's): the move to the write-back's commit
	// read each from its pack, at the end of a chain of up to 49 deltas of the instances'
	// directory, and hashed it again. The store must still have it: a lost object is found
	// here, not later (the sync re-clones).
	if b, ok := recentTrees.get(h); ok && s.HasEncodedObject(h) == nil {
		c.put(h, b, keep)
		return b, nil
	}
	obj, err := s.EncodedObject(plumbing.TreeObject, h)
	if err != nil {
		return nil, fmt.Errorf("read tree %s of %s/: %w", h, dir, err)
	}
	rd, err := obj.Reader()
	if err != nil {
		return nil, fmt.Errorf("read tree %s of %s/: %w", h, dir, err)
	}
	defer rd.Close()
	b := make([]byte, 0, obj.Size())
	buf := bytes.NewBuffer(b)
	if _, err := io.Copy(buf, rd); err != nil {
		return nil, fmt.Errorf("read tree %s of %s/: %w", h, dir, err)
	}
	c.put(h, buf.Bytes(), keep)
	return buf.Bytes(), nil
}

// rawEntry is one entry of a raw tree; name and the hash bytes point into the tree.
type rawEntry struct {
	mode filemode.FileMode
	name []byte
	h    []byte
}

func (e rawEntry) hash() (h plumbing.Hash) {
	copy(h[:], e.h)
	return h
}

func (e rawEntry) isDir() bool { return e.mode == filemode.Dir }

func (e rawEntry) treeEntry() object.TreeEntry {
	return object.TreeEntry{Name: string(e.name), Mode: e.mode, Hash: e.hash()}
}

// nextEntry parses the entry at the start of b: "<octal mode> <name>\0<20-byte hash>".
func nextEntry(b []byte, dir string) (rawEntry, []byte, error) {
	var e rawEntry
	i := 0
	var mode uint32
	for ; i < len(b) && b[i] != ' '; i++ {
		c := b[i]
		if c < '0' || c > '7' || i > 7 {
			return e, nil, fmt.Errorf("tree of %s/: malformed entry mode: %w", dir, plumbing.ErrObjectNotFound)
		}
		mode = mode<<3 | uint32(c-'0')
	}
	if i == 0 || i >= len(b) {
		return e, nil, fmt.Errorf("tree of %s/: malformed entry: %w", dir, plumbing.ErrObjectNotFound)
	}
	rest := b[i+1:]
	nul := bytes.IndexByte(rest, 0)
	if nul < 0 || len(rest) < nul+1+20 {
		return e, nil, fmt.Errorf("tree of %s/: truncated entry: %w", dir, plumbing.ErrObjectNotFound)
	}
	e.mode, e.name, e.h = filemode.FileMode(mode), rest[:nul], rest[nul+1:nul+21]
	return e, rest[nul+21:], nil
}

// cmpKey compares two entries in git's tree order, in which a directory sorts as its name
// followed by "/".
func cmpKey(a, b rawEntry) int {
	n := min(len(a.name), len(b.name))
	if c := bytes.Compare(a.name[:n], b.name[:n]); c != 0 {
		return c
	}
	ca, oka := keyByte(a, n)
	cb, okb := keyByte(b, n)
	switch {
	case !oka && !okb:
		return 0
	case !oka:
		return -1
	case !okb:
		return 1
	case ca != cb:
		if ca < cb {
			return -1
		}
		return 1
	}
	// both continue: one is a directory whose "/" matched a "/"? Names hold no "/", so a
	// "/" here is a directory's end on both sides only if both end here.
	ca2, oka2 := keyByte(a, n+1)
	cb2, okb2 := keyByte(b, n+1)
	switch {
	case !oka2 && !okb2:
		return 0
	case !oka2:
		return -1
	case !okb2:
		return 1
	case ca2 < cb2:
		return -1
	case ca2 > cb2:
		return 1
	}
	return bytes.Compare(a.name, b.name) // not reached for valid names
}

func keyByte(e rawEntry, i int) (byte, bool) {
	switch {
	case i < len(e.name):
		return e.name[i], true
	case i == len(e.name) && e.isDir():
		return '/', true
	}
	return 0, false
}

// DiffTreeHashes is DiffTrees on tree hashes (the zero hash is an empty tree), reading raw
// trees through cache (nil: none), which then keeps the trees of to that it read.
func DiffTreeHashes(s storer.EncodedObjectStorer, cache *TreeCache, from, to plumbing.Hash) (object.Changes, error) {
	d := treeDiff{s: s, cache: cache}
	d.newSide = map[plumbing.Hash]bool{}
	err := d.walk(from, to, "")
	cache.settle(d.newSide)
	if err != nil {
		return nil, err
	}
	return append(d.deleted, d.written...), nil
}

type treeDiff struct {
	s                storer.EncodedObjectStorer
	cache            *TreeCache
	deleted, written object.Changes
	newSide          map[plumbing.Hash]bool // the new side's trees read
}

// walk merges the entries of trees a and b (either may be zero) in git's order. Every entry
// of b that is not the same (name, mode, hash) as one of a is checked (its name, its path's
// length); b's order and the uniqueness of its names are checked for every entry.
func (d *treeDiff) walk(ha, hb plumbing.Hash, dir string) error {
	if ha == hb {
		return nil
	}
	ta, err := readTree(d.s, d.cache, ha, dir, false)
	if err != nil {
		return err
	}
	tb, err := readTree(d.s, d.cache, hb, dir, true)
	if err != nil {
		return err
	}
	d.newSide[hb] = true
	var ea, eb rawEntry
	var okA, okB bool
	restA, restB := ta, tb
	nextA := func() error {
		okA = len(restA) > 0
		if okA {
			ea, restA, err = nextEntry(restA, dir)
		}
		return err
	}
	var prevB rawEntry
	var havePrev bool
	offsB := []int{}
	nextB := func() error {
		okB = len(restB) > 0
		if !okB {
			return nil
		}
		off := len(tb) - len(restB)
		if eb, restB, err = nextEntry(restB, dir); err != nil {
			return err
		}
		if havePrev {
			switch c := cmpKey(prevB, eb); {
			case c == 0:
				return &PathError{Path: joinPath(dir, string(eb.name)), Rule: RuleDuplicate}
			case c > 0:
				return &PathError{Path: joinPath(dir, string(eb.name)), Rule: RuleOrder}
			}
		}
		if len(dir)+1+len(eb.name) > maxPathLen {
			return &PathError{Path: joinPath(dir, string(eb.name)), Rule: RulePathLong}
		}
		if eb.isDir() && fileBefore(tb, offsB, eb) {
			return &PathError{Path: joinPath(dir, string(eb.name)), Rule: RuleDuplicate}
		}
		offsB = append(offsB, off)
		prevB, havePrev = eb, true
		return nil
	}
	if err := nextA(); err != nil {
		return err
	}
	if err := nextB(); err != nil {
		return err
	}
	for okA || okB {
		c := 0
		switch {
		case !okB:
			c = -1
		case !okA:
			c = 1
		default:
			c = cmpKey(ea, eb)
		}
		switch {
		case c < 0: // only in a: deleted
			if err := d.side(ea, dir, true); err != nil {
				return err
			}
			if err := nextA(); err != nil {
				return err
			}
		case c > 0: // only in b: inserted
			if err := d.side(eb, dir, false); err != nil {
				return err
			}
			if err := nextB(); err != nil {
				return err
			}
		default: // the same name and kind on both sides
			if eb.mode != ea.mode || !bytes.Equal(ea.h, eb.h) {
				if err := d.changed(ea, eb, dir); err != nil {
					return err
				}
			}
			if err := nextA(); err != nil {
				return err
			}
			if err := nextB(); err != nil {
				return err
			}
		}
	}
	return nil
}

// fileBefore reports whether a non-directory entry named as directory e comes before it in
// tree t (offs: the offsets of the entries before e). A file "d" and a directory "d" sort
// apart, with only names "d" + a byte below "/" between them.
func fileBefore(t []byte, offs []int, e rawEntry) bool {
	for k := len(offs) - 1; k >= 0; k-- {
		p, _, err := nextEntry(t[offs[k]:], "")
		if err != nil || !bytes.HasPrefix(p.name, e.name) {
			return false
		}
		if len(p.name) == len(e.name) {
			return !p.isDir()
		}
		if p.name[len(e.name)] >= '/' {
			return false
		}
	}
	return false
}

// changed records an entry whose mode or hash differs on the two sides.
func (d *treeDiff) changed(x, y rawEntry, dir string) error {
	full := joinPath(dir, string(y.name))
	if rule := entryRule(string(y.name)); rule != "" {
		return &PathError{Path: full, Rule: rule}
	}
	if !x.isDir() {
		d.written = append(d.written, &object.Change{
			From: object.ChangeEntry{Name: full, TreeEntry: x.treeEntry()},
			To:   object.ChangeEntry{Name: full, TreeEntry: y.treeEntry()},
		})
		return nil
	}
	return d.walk(x.hash(), y.hash(), full)
}

// side records an entry present on one side only: deleted (from a) or inserted (into b),
// with every file below it for a directory.
func (d *treeDiff) side(e rawEntry, dir string, deleted bool) error {
	full := joinPath(dir, string(e.name))
	if rule := entryRule(string(e.name)); rule != "" {
		return &PathError{Path: full, Rule: rule}
	}
	if e.isDir() {
		if deleted {
			return d.walkOne(e.hash(), full, true)
		}
		return d.walk(plumbing.ZeroHash, e.hash(), full)
	}
	ce := object.ChangeEntry{Name: full, TreeEntry: e.treeEntry()}
	if deleted {
		d.deleted = append(d.deleted, &object.Change{From: ce})
	} else {
		d.written = append(d.written, &object.Change{To: ce})
	}
	return nil
}

// walkOne lists every file of a deleted tree.
func (d *treeDiff) walkOne(h plumbing.Hash, dir string, deleted bool) error {
	t, err := readTree(d.s, d.cache, h, dir, false)
	if err != nil {
		return err
	}
	for rest := t; len(rest) > 0; {
		var e rawEntry
		if e, rest, err = nextEntry(rest, dir); err != nil {
			return err
		}
		if err := d.side(e, dir, deleted); err != nil {
			return err
		}
	}
	return nil
}
