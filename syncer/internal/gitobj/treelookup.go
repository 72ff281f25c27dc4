package gitobj

import (
	"bytes"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// LookupPath finds slash path p under tree root and returns its entry's hash and mode; ok is
// false when there is no such entry. It reads raw trees (from cache when it holds them,
// without adding to it; nil: no cache; or from the trees this process wrote last) and scans
// their bytes for each name: a lookup in a 5,000-entry directory is one pass over its bytes,
// where object.Tree.FindEntry decodes every entry into strings and a map, per lookup.
func LookupPath(s storer.EncodedObjectStorer, cache *TreeCache, root plumbing.Hash, p string) (plumbing.Hash, filemode.FileMode, bool, error) {
	h, mode := root, filemode.Dir
	dir := ""
	if strings.Trim(p, "/") == "" {
		return plumbing.ZeroHash, 0, false, nil
	}
	for _, name := range strings.Split(p, "/") {
		if name == "" {
			continue // as FindEntry: "a//b" is "a/b"
		}
		if mode != filemode.Dir {
			return plumbing.ZeroHash, 0, false, nil
		}
		t, err := lookupTree(s, cache, h, dir)
		if err != nil {
			return plumbing.ZeroHash, 0, false, err
		}
		if m, ok := bigTrees.index(h, t, dir); ok {
			e, found := m[name]
			if !found {
				return plumbing.ZeroHash, 0, false, nil
			}
			h, mode = e.hash, e.mode
			dir = joinPath(dir, name)
			continue
		}
		found := false
		for rest := t; len(rest) > 0; {
			var e rawEntry
			if e, rest, err = nextEntry(rest, dir); err != nil {
				return plumbing.ZeroHash, 0, false, err
			}
			if len(e.name) == len(name) && bytes.Equal(e.name, []byte(name)) {
				h, mode, found = e.hash(), e.mode, true
				break
			}
		}
		if !found {
			return plumbing.ZeroHash, 0, false, nil
		}
		dir = joinPath(dir, name)
	}
	return h, mode, true, nil
}

// lookupTree is the raw content of tree h, from cache or the trees written last when they
// hold it (neither is changed), else from s.
func lookupTree(s storer.EncodedObjectStorer, cache *TreeCache, h plumbing.Hash, dir string) ([]byte, error) {
	if cache != nil {
		cache.mu.Lock()
		b, ok := cache.trees[h]
		cache.mu.Unlock()
		if ok {
			return b, nil
		}
	}
	if b, ok := recentTrees.get(h); ok {
		return b, nil
	}
	return readTree(s, nil, h, dir, false)
}

// bigTrees indexes large trees by entry name for LookupPath: a deployment reads each
// instance's file at the commit its bucket started from, so the 5,000-entry instances/ tree
// of that commit was scanned once per instance (the scan's cost per instance grew with the
// directory). A tree of at least bigTree bytes is indexed on its second lookup in a row; the
// last few indexes are kept. Trees are content-addressed: one cache serves every repository.
var bigTrees = &treeIndexes{max: 4}

const bigTree = 32 << 10

type treeIndexes struct {
	mu    sync.Mutex
	max   int
	last  plumbing.Hash // the large tree looked up last without an index
	order []plumbing.Hash
	m     map[plumbing.Hash]map[string]indexedEntry
}

type indexedEntry struct {
	hash plumbing.Hash
	mode filemode.FileMode
}

// index returns the index of tree h (raw content t, at dir) when it has one or makes one now;
// ok is false when the caller should scan t itself.
func (c *treeIndexes) index(h plumbing.Hash, t []byte, dir string) (map[string]indexedEntry, bool) {
	if len(t) < bigTree {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.m[h]; ok {
		return m, true
	}
	if c.last != h {
		c.last = h
		return nil, false
	}
	m := make(map[string]indexedEntry, len(t)/40)
	for rest := t; len(rest) > 0; {
		e, r, err := nextEntry(rest, dir)
		if err != nil {
			return nil, false // the scan reports it
		}
		rest = r
		if _, dup := m[string(e.name)]; !dup { // the scan finds the first
			m[string(e.name)] = indexedEntry{hash: e.hash(), mode: e.mode}
		}
	}
	if c.m == nil {
		c.m = map[plumbing.Hash]map[string]indexedEntry{}
	}
	c.m[h] = m
	c.order = append(c.order, h)
	if len(c.order) > c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.last = plumbing.ZeroHash
	return m, true
}
