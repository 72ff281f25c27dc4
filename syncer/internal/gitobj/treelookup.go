package gitobj

import (
	"bytes"
	"strings"

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
