package syncer

import (
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
)

// treeUpdate is a new blob for a path, or its deletion.
type treeUpdate struct {
	Hash   plumbing.Hash
	Mode   filemode.FileMode
	Delete bool
}

// buildTree returns the hash of the tree base with updates applied (slash paths), writing only
// the trees on the updated paths. Directories that become empty are dropped. empty reports an
// empty result.
func buildTree(st storage.Storer, base plumbing.Hash, updates map[string]treeUpdate) (h plumbing.Hash, empty bool, err error) {
	var entries []object.TreeEntry
	if !base.IsZero() {
		t, err := object.GetTree(st, base)
		if err != nil {
			return plumbing.ZeroHash, false, fmt.Errorf("read tree %s: %w", base, err)
		}
		entries = append(entries, t.Entries...)
	}
	direct := map[string]treeUpdate{}
	sub := map[string]map[string]treeUpdate{}
	for p, u := range updates {
		if i := strings.IndexByte(p, '/'); i >= 0 {
			if sub[p[:i]] == nil {
				sub[p[:i]] = map[string]treeUpdate{}
			}
			sub[p[:i]][p[i+1:]] = u
		} else {
			direct[p] = u
		}
	}
	pos := make(map[string]int, len(entries))
	for i, e := range entries {
		pos[e.Name] = i
	}
	set := func(e object.TreeEntry, del bool) {
		i, ok := pos[e.Name]
		switch {
		case del && ok:
			entries[i].Name = ""
		case del:
		case ok:
			entries[i] = e
		default:
			pos[e.Name] = len(entries)
			entries = append(entries, e)
		}
	}
	for name, u := range direct {
		set(object.TreeEntry{Name: name, Mode: u.Mode, Hash: u.Hash}, u.Delete)
	}
	for name, ups := range sub {
		var subBase plumbing.Hash
		if i, ok := pos[name]; ok && entries[i].Mode == filemode.Dir {
			subBase = entries[i].Hash
		}
		sh, subEmpty, err := buildTree(st, subBase, ups)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		set(object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: sh}, subEmpty)
	}
	kept := entries[:0]
	for _, e := range entries {
		if e.Name != "" {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		return plumbing.ZeroHash, true, nil
	}
	sort.Slice(kept, func(i, j int) bool { return treeName(kept[i]) < treeName(kept[j]) })
	h, err = storeTree(st, kept)
	return h, false, err
}

// treeName is the key git sorts tree entries by: directories sort as if their name ended in "/".
func treeName(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

func storeTree(st storage.Storer, entries []object.TreeEntry) (plumbing.Hash, error) {
	t := &object.Tree{Entries: entries}
	obj := st.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}

// storeBlob writes data as a blob and returns its hash.
func storeBlob(st storage.Storer, data []byte) (plumbing.Hash, error) {
	obj := st.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}

// storeCommit writes a commit and returns its hash.
func storeCommit(st storage.Storer, c *object.Commit) (plumbing.Hash, error) {
	obj := st.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}
