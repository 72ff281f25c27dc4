package gitobj

import (
	"path"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
)

// TreeBatch is a tree being edited in memory across many commits: each directory on an
// edited path is decoded once, and each write encodes only the directories changed since the
// last write. WriteBack's commits (one per change, each on the previous) go through one
// batch, so 200 changes in a 10,000-entry directory decode that directory once, not 400 times.
type TreeBatch struct {
	st   storage.Storer
	root plumbing.Hash
	dirs map[string]*batchDir // by slash path; "" is the root
}

type batchDir struct {
	entries []object.TreeEntry // deleted entries have Name ""
	pos     map[string]int
	dirty   bool // changed since the last write
	unsort  bool // entries need sorting before encoding
	// enc is the last encoding of entries (starts: each entry's offset in it), and touched
	// the entries changed in place since (same name, same place in git's order): the next
	// encoding copies enc and rewrites their modes and hashes, where encoding a 5,000-entry
	// directory anew per commit cost more per instance the larger the directory.
	enc     []byte
	starts  []int32
	touched []int
}

func NewTreeBatch(st storage.Storer, root plumbing.Hash) *TreeBatch {
	return &TreeBatch{st: st, root: root, dirs: map[string]*batchDir{}}
}

// dir returns the directory at p, decoding it on first use; a directory that does not
// exist (or is a file) is empty.
func (b *TreeBatch) dir(p string) (*batchDir, error) {
	if d, ok := b.dirs[p]; ok {
		return d, nil
	}
	h := b.root
	if p != "" {
		parent, err := b.dir(parentDir(p))
		if err != nil {
			return nil, err
		}
		h = plumbing.ZeroHash
		if e, ok := parent.get(path.Base(p)); ok && e.Mode == filemode.Dir {
			h = e.Hash
		}
	}
	d := &batchDir{pos: map[string]int{}}
	if !h.IsZero() {
		t, err := object.GetTree(b.st, h)
		if err != nil {
			return nil, err
		}
		d.entries = append(make([]object.TreeEntry, 0, len(t.Entries)+1), t.Entries...)
		for i, e := range d.entries {
			d.pos[e.Name] = i
		}
	}
	b.dirs[p] = d
	return d, nil
}

func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func (d *batchDir) get(name string) (object.TreeEntry, bool) {
	i, ok := d.pos[name]
	if !ok {
		return object.TreeEntry{}, false
	}
	return d.entries[i], true
}

func (d *batchDir) put(e object.TreeEntry) {
	i, ok := d.pos[e.Name]
	switch {
	case !ok:
		d.pos[e.Name] = len(d.entries)
		d.entries = append(d.entries, e)
		d.unsort = true
	case treeName(d.entries[i]) != treeName(e):
		d.entries[i] = e
		d.unsort = true
	default:
		d.entries[i] = e
		d.touched = append(d.touched, i)
	}
	d.dirty = true
}

func (d *batchDir) remove(name string) {
	if i, ok := d.pos[name]; ok {
		d.entries[i].Name = ""
		delete(d.pos, name)
		d.unsort, d.dirty = true, true
	}
}

// lookup returns the entry at the slash path p.
func (b *TreeBatch) Lookup(p string) (object.TreeEntry, bool, error) {
	d, err := b.dir(parentDir(p))
	if err != nil {
		return object.TreeEntry{}, false, err
	}
	e, ok := d.get(path.Base(p))
	return e, ok, nil
}

// set puts a blob at p (del: removes p), marking the directories above it changed.
func (b *TreeBatch) Set(p string, u TreeUpdate) error {
	dp := parentDir(p)
	d, err := b.dir(dp)
	if err != nil {
		return err
	}
	if u.Delete {
		d.remove(path.Base(p))
	} else {
		d.put(object.TreeEntry{Name: path.Base(p), Mode: u.Mode, Hash: u.Hash})
	}
	for dp != "" { // every ancestor changes too
		dp = parentDir(dp)
		a, err := b.dir(dp)
		if err != nil {
			return err
		}
		a.dirty = true
	}
	return nil
}

// write stores the changed directories, deepest first, and returns the root tree. A
// directory left empty is dropped from its parent; an empty root is stored as the empty tree.
func (b *TreeBatch) Write() (plumbing.Hash, error) {
	var changed []string
	for p, d := range b.dirs {
		if d.dirty {
			changed = append(changed, p)
		}
	}
	sort.Slice(changed, func(i, j int) bool { return depth(changed[i]) > depth(changed[j]) })
	for _, p := range changed {
		h, empty, err := b.dirs[p].store(b.st, p)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if p == "" {
			b.root = h
			continue
		}
		parent := b.dirs[parentDir(p)] // loaded and dirty: set marked every ancestor
		if empty {
			parent.remove(path.Base(p))
		} else {
			parent.put(object.TreeEntry{Name: path.Base(p), Mode: filemode.Dir, Hash: h})
		}
	}
	return b.root, nil
}

func depth(p string) int {
	if p == "" {
		return 0
	}
	return strings.Count(p, "/") + 1
}

// store encodes d, the directory at p (compacted and sorted as git sorts), and writes it;
// an empty directory other than the root is not written.
func (d *batchDir) store(st storage.Storer, p string) (plumbing.Hash, bool, error) {
	keepEmpty := p == ""
	if d.unsort { // entries move: the last encoding cannot be patched
		d.enc, d.starts, d.touched = nil, nil, nil
		kept := d.entries[:0]
		for _, e := range d.entries {
			if e.Name != "" {
				kept = append(kept, e)
			}
		}
		sort.Slice(kept, func(i, j int) bool { return treeName(kept[i]) < treeName(kept[j]) })
		d.entries = kept
		clear(d.pos)
		for i, e := range d.entries {
			d.pos[e.Name] = i
		}
		d.unsort = false
	}
	d.dirty = false
	if len(d.entries) == 0 && !keepEmpty {
		d.enc, d.starts, d.touched = nil, nil, nil
		return plumbing.ZeroHash, true, nil
	}
	buf, starts, ok := d.patch()
	if !ok {
		buf, starts = encodeTree(d.entries)
	}
	d.enc, d.starts, d.touched = buf, starts, nil
	h, err := storeEncodedTree(st, p, buf, starts)
	return h, false, err
}

// patch is d's encoding made from the last one when only entries changed in place since
// (their mode's text as long as before); ok is false otherwise.
func (d *batchDir) patch() ([]byte, []int32, bool) {
	if d.enc == nil || d.starts == nil || len(d.starts) != len(d.entries) {
		return nil, nil, false
	}
	buf := append([]byte(nil), d.enc...)
	var mode [8]byte
	for _, i := range d.touched {
		e := d.entries[i]
		m := appendMode(mode[:0], e.Mode)
		off := int(d.starts[i])
		end := len(buf)
		if i+1 < len(d.starts) {
			end = int(d.starts[i+1])
		}
		// mode, ' ', name, 0, hash: the same name, so the same length if the mode's is.
		if end-off != len(m)+1+len(e.Name)+1+len(e.Hash) || buf[off+len(m)] != ' ' {
			return nil, nil, false
		}
		copy(buf[off:], m)
		copy(buf[end-len(e.Hash):end], e.Hash[:])
	}
	return buf, d.starts, true
}
