package gitobj

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"hash"
	"io"
	"sort"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/revlist"
	"github.com/go-git/go-git/v5/plumbing/storer"
	gitbinary "github.com/go-git/go-git/v5/utils/binary"
)

// packEntry is one object of a push pack, with the object it may be sent as a delta of: the
// tree at the same path in the parent commit, when that tree is in the same pack.
type packEntry struct {
	hash plumbing.Hash
	base plumbing.Hash
}

// packBuilder writes a pack (version 2) of whole objects and deltas against earlier objects
// of the same pack: OFS deltas, or REF deltas when the server lacks ofs-delta. Only trees get
// deltas. A write-back of 200 commits changes one entry of the 10,000-entry instances/ tree
// per commit: as deltas of each other those trees cost bytes, not 370 KB each of zlib.
type packBuilder struct {
	buf       bytes.Buffer
	sum       hash.Hash
	w         io.Writer
	refDeltas bool
	zw        *zlib.Writer
	offsets   map[plumbing.Hash]int64
	// trees of the previous and current commit, the only possible delta bases
	prev, cur map[plumbing.Hash][]byte
}

func newPackBuilder(count int, refDeltas bool) *packBuilder {
	b := &packBuilder{sum: sha1.New(), refDeltas: refDeltas, offsets: map[plumbing.Hash]int64{},
		prev: map[plumbing.Hash][]byte{}, cur: map[plumbing.Hash][]byte{}}
	b.w = io.MultiWriter(&b.buf, b.sum)
	var hdr [12]byte
	copy(hdr[:], "PACK")
	binary.BigEndian.PutUint32(hdr[4:], 2)
	binary.BigEndian.PutUint32(hdr[8:], uint32(count))
	_, _ = b.w.Write(hdr[:])
	return b
}

// nextCommit starts a new commit's objects: its trees' bases are the previous commit's trees.
func (b *packBuilder) nextCommit() {
	b.prev, b.cur = b.cur, map[plumbing.Hash][]byte{}
}

// add appends one object (typ, data) as a delta of e.base when that helps.
func (b *packBuilder) add(e packEntry, typ plumbing.ObjectType, data []byte) error {
	offset := int64(b.buf.Len())
	b.offsets[e.hash] = offset
	if typ == plumbing.TreeObject {
		b.cur[e.hash] = data
	}
	if base, ok := b.prev[e.base]; ok && typ == plumbing.TreeObject {
		if delta := packfile.DiffDelta(base, data); len(delta) < len(data)/2 {
			if b.refDeltas {
				if err := b.head(plumbing.REFDeltaObject, int64(len(delta))); err != nil {
					return err
				}
				_, err := b.w.Write(e.base[:])
				if err != nil {
					return err
				}
			} else {
				if err := b.head(plumbing.OFSDeltaObject, int64(len(delta))); err != nil {
					return err
				}
				if err := gitbinary.WriteVariableWidthInt(b.w, offset-b.offsets[e.base]); err != nil {
					return err
				}
			}
			return b.deflate(delta)
		}
	}
	if err := b.head(typ, int64(len(data))); err != nil {
		return err
	}
	return b.deflate(data)
}

// head writes an object header: type and size, 4 bits then 7 bits a byte.
func (b *packBuilder) head(typ plumbing.ObjectType, size int64) error {
	hdr := []byte{byte(typ)<<4 | byte(size&0x0f)}
	for size >>= 4; size > 0; size >>= 7 {
		hdr[len(hdr)-1] |= 0x80
		hdr = append(hdr, byte(size&0x7f))
	}
	_, err := b.w.Write(hdr)
	return err
}

// deflate compresses one object's data, reusing one zlib writer (a new one allocates about
// 600 KB of state: per object, that was a 1,000-file push's time and memory).
func (b *packBuilder) deflate(data []byte) error {
	if b.zw == nil {
		b.zw = zlib.NewWriter(b.w)
	} else {
		b.zw.Reset(b.w)
	}
	if _, err := b.zw.Write(data); err != nil {
		return err
	}
	return b.zw.Close()
}

// finish appends the trailer (SHA-1 of everything before it) and returns the pack.
func (b *packBuilder) finish() *bytes.Buffer {
	b.buf.Write(b.sum.Sum(nil))
	return &b.buf
}

// BuildPack encodes the objects of st that old..new adds: whole objects, and each changed tree as a
// delta of the same path's tree in the previous commit when that one is in the pack too. There
// is no delta search (on instance files a search costs far more than it saves on the wire).
func BuildPack(st storer.EncodedObjectStorer, old, new plumbing.Hash, refDeltas bool) (*bytes.Buffer, error) {
	groups, err := newObjects(st, old, new)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, g := range groups {
		n += len(g)
	}
	b := newPackBuilder(n, refDeltas)
	for _, g := range groups {
		b.nextCommit()
		for _, e := range g {
			typ, data, err := readObject(st, e.hash)
			if err != nil {
				return nil, err
			}
			if err := b.add(e, typ, data); err != nil {
				return nil, err
			}
		}
	}
	return b.finish(), nil
}

// newObjects lists, per commit of old..new (oldest first), the commit and the trees and
// blobs that differ from its first parent. With old zero (an empty remote) it lists
// everything reachable, as one group.
func newObjects(st storer.EncodedObjectStorer, old, new plumbing.Hash) ([][]packEntry, error) {
	if old.IsZero() {
		hs, err := revlist.Objects(st, []plumbing.Hash{new}, nil)
		if err != nil {
			return nil, err
		}
		g := make([]packEntry, len(hs))
		for i, h := range hs {
			g[i].hash = h
		}
		return [][]packEntry{g}, nil
	}
	s, err := Compare(st, new, old)
	if err != nil {
		return nil, err
	}
	seen := map[plumbing.Hash]bool{}
	trees := &treeMemo{st: st, cur: map[plumbing.Hash]*object.Tree{}}
	var groups [][]packEntry
	for i := len(s.Ours) - 1; i >= 0; i-- {
		c := s.Ours[i]
		var g []packEntry
		add := func(h, base plumbing.Hash) {
			if !seen[h] {
				seen[h] = true
				g = append(g, packEntry{hash: h, base: base})
			}
		}
		add(c.Hash, plumbing.ZeroHash)
		var parentTree plumbing.Hash
		if len(c.ParentHashes) > 0 {
			p, err := object.GetCommit(st, c.ParentHashes[0])
			if err != nil {
				return nil, err
			}
			parentTree = p.TreeHash
		}
		trees.next()
		if err := trees.delta(parentTree, c.TreeHash, add); err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	return groups, nil
}

// treeMemo decodes trees, keeping those of the current and previous commit: commit k's
// parent trees are commit k-1's trees, so each tree of a chain of commits is decoded once.
type treeMemo struct {
	st        storer.EncodedObjectStorer
	prev, cur map[plumbing.Hash]*object.Tree
}

func (m *treeMemo) next() { m.prev, m.cur = m.cur, map[plumbing.Hash]*object.Tree{} }

func (m *treeMemo) get(h plumbing.Hash) (*object.Tree, error) {
	if t, ok := m.cur[h]; ok {
		return t, nil
	}
	t, ok := m.prev[h]
	if !ok {
		t, ok = recentTree(h)
	}
	if !ok {
		var err error
		if t, err = object.GetTree(m.st, h); err != nil {
			return nil, err
		}
	}
	m.cur[h] = t
	return t, nil
}

// delta adds tree newT (with oldT as its delta base) and every tree and blob under it that
// oldT does not have at the same path; subtrees with equal hashes are skipped unread. Both
// entry lists are in git's order, so one merge walk pairs them.
func (m *treeMemo) delta(oldT, newT plumbing.Hash, add func(h, base plumbing.Hash)) error {
	if oldT == newT {
		return nil
	}
	add(newT, oldT)
	nt, err := m.get(newT)
	if err != nil {
		return err
	}
	var olds []object.TreeEntry
	if !oldT.IsZero() {
		ot, err := m.get(oldT)
		if err != nil {
			return err
		}
		olds = ot.Entries
	}
	j := 0
	for _, e := range nt.Entries {
		key := treeName(e)
		for j < len(olds) && treeName(olds[j]) < key {
			j++
		}
		var o object.TreeEntry
		had := false
		if j < len(olds) && olds[j].Name == e.Name {
			o, had = olds[j], true
		} else if k := findEntry(olds, e); k >= 0 { // a file became a directory or back
			o, had = olds[k], true
		}
		if had && o.Hash == e.Hash {
			continue
		}
		switch e.Mode {
		case filemode.Dir:
			var sub plumbing.Hash
			if had && o.Mode == filemode.Dir {
				sub = o.Hash
			}
			if err := m.delta(sub, e.Hash, add); err != nil {
				return err
			}
		case filemode.Submodule:
		default:
			add(e.Hash, plumbing.ZeroHash)
		}
	}
	return nil
}

// findEntry is the slow path of the merge walk: the index of the entry named like e but of
// the other kind (file or directory), whose sort key differs, or -1.
func findEntry(es []object.TreeEntry, e object.TreeEntry) int {
	other := object.TreeEntry{Name: e.Name, Mode: filemode.Dir}
	if e.Mode == filemode.Dir {
		other.Mode = filemode.Regular
	}
	key := treeName(other)
	i := sort.Search(len(es), func(i int) bool { return treeName(es[i]) >= key })
	if i < len(es) && es[i].Name == e.Name {
		return i
	}
	return -1
}

// readObject returns the type and content of any object.
func readObject(st storer.EncodedObjectStorer, h plumbing.Hash) (plumbing.ObjectType, []byte, error) {
	if b, ok := recentTrees.get(h); ok {
		return plumbing.TreeObject, b, nil
	}
	obj, err := st.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return 0, nil, err
	}
	rd, err := obj.Reader()
	if err != nil {
		return 0, nil, err
	}
	defer rd.Close()
	data := make([]byte, 0, obj.Size())
	buf := bytes.NewBuffer(data)
	if _, err := buf.ReadFrom(rd); err != nil {
		return 0, nil, err
	}
	return obj.Type(), buf.Bytes(), nil
}
