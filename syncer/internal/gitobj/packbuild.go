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
	zw        *zlib.Writer // default level: blobs
	zwFast    *zlib.Writer // level 1: trees and deltas
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
	if base, ok := b.prev[e.base]; ok && len(base) > 0 && typ == plumbing.TreeObject {
		if delta := spliceDelta(base, data); len(delta) < len(data)/2 {
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
			return b.deflate(delta, true)
		}
	}
	if err := b.head(typ, int64(len(data))); err != nil {
		return err
	}
	return b.deflate(data, typ == plumbing.TreeObject)
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

// deflate compresses one object's data, reusing one zlib writer per level (a new one
// allocates about 600 KB of state: per object, that was a 1,000-file push's time and
// memory). fast is level 1, for what is mostly hashes and gains little from more effort: a
// tree (the 10,000-file directory's 380 KB tree: 21-25 ms at the default level for 239 KB,
// 5 ms at level 1 for 251 KB; sent whole by a one-commit push, where it was a fifth of the
// push's time) or a delta; blobs get the default level.
func (b *packBuilder) deflate(data []byte, fast bool) error {
	zw, level := &b.zw, zlib.DefaultCompression
	if fast {
		zw, level = &b.zwFast, zlib.BestSpeed
	}
	if *zw == nil {
		*zw, _ = zlib.NewWriterLevel(b.w, level)
	} else {
		(*zw).Reset(b.w)
	}
	if _, err := (*zw).Write(data); err != nil {
		return err
	}
	return (*zw).Close()
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
		if err := treeDelta(st, parentTree, c.TreeHash, "", add); err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	return groups, nil
}

// treeDelta adds tree newT (with oldT as its delta base) and every tree and blob under it that
// oldT does not have at the same path; subtrees with equal hashes are skipped unread. It works
// on the raw trees (the trees this process wrote last are kept: a write-back's): the entries
// of the bytes the two trees share at their start and their end are skipped by a compare, and
// only those in between are merged, in git's order. A commit that changes one file of a
// 5,000-entry directory costs a compare of its bytes and the parse of the entries before the
// change, not two decoded 5,000-entry trees.
func treeDelta(st storer.EncodedObjectStorer, oldT, newT plumbing.Hash, dir string, add func(h, base plumbing.Hash)) error {
	if oldT == newT {
		return nil
	}
	add(newT, oldT)
	nb, err := lookupTree(st, nil, newT, dir)
	if err != nil {
		return err
	}
	var ob []byte
	if !oldT.IsZero() {
		if ob, err = lookupTree(st, nil, oldT, dir); err != nil {
			return err
		}
	}
	pre := commonPrefix(ob, nb)
	suf := commonSuffix(ob[pre:], nb[pre:])
	restA, restB := ob, nb
	// The entries wholly inside the common start are the same on both sides, at the same
	// offsets: found from the entries' offsets when this process wrote the new tree, else
	// by parsing them.
	if starts, ok := recentTrees.entryStarts(newT); ok {
		j := sort.Search(len(starts), func(i int) bool { return entryEnd(starts, i, len(nb)) > pre })
		done := len(nb)
		if j < len(starts) {
			done = int(starts[j])
		}
		restA, restB = ob[done:], nb[done:]
	}
	for len(restB) > 0 {
		_, next, err := nextEntry(restB, dir)
		if err != nil {
			return err
		}
		done := len(nb) - len(next)
		if done > pre {
			break
		}
		restA, restB = ob[done:], next
	}
	var ea, eb rawEntry
	for len(restA) > 0 || len(restB) > 0 {
		if len(restA) == len(restB) && len(restB) <= suf {
			return nil // the rest is the common end: the same entries
		}
		c := 0
		switch {
		case len(restB) == 0:
			c = -1
		case len(restA) == 0:
			c = 1
		default:
			if ea, _, err = nextEntry(restA, dir); err != nil {
				return err
			}
			if eb, _, err = nextEntry(restB, dir); err != nil {
				return err
			}
			c = cmpKey(ea, eb)
		}
		switch {
		case c < 0: // only in the old tree: nothing to send
			if _, restA, err = nextEntry(restA, dir); err != nil {
				return err
			}
			continue
		case c > 0: // only in the new tree
			if eb, restB, err = nextEntry(restB, dir); err != nil {
				return err
			}
			if err := addEntry(st, plumbing.ZeroHash, eb, dir, add); err != nil {
				return err
			}
		default:
			_, restA, _ = nextEntry(restA, dir)
			_, restB, _ = nextEntry(restB, dir)
			if bytes.Equal(ea.h, eb.h) {
				continue
			}
			var base plumbing.Hash
			if ea.isDir() {
				base = ea.hash()
			}
			if err := addEntry(st, base, eb, dir, add); err != nil {
				return err
			}
		}
	}
	return nil
}

// entryEnd is where entry i of a tree of size n ends, given its entries' starts.
func entryEnd(starts []int32, i, n int) int {
	if i+1 < len(starts) {
		return int(starts[i+1])
	}
	return n
}

// addEntry adds new entry e of directory dir: a tree (with base, the old tree at its path,
// or zero) and what is new under it, or a blob.
func addEntry(st storer.EncodedObjectStorer, base plumbing.Hash, e rawEntry, dir string, add func(h, base plumbing.Hash)) error {
	switch e.mode {
	case filemode.Dir:
		return treeDelta(st, base, e.hash(), joinPath(dir, string(e.name)), add)
	case filemode.Submodule:
		return nil
	}
	add(e.hash(), plumbing.ZeroHash)
	return nil
}

// commonPrefix is the length of the longest common start of a and b.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+64 <= n && bytes.Equal(a[i:i+64], b[i:i+64]); i += 64 {
	}
	for ; i < n && a[i] == b[i]; i++ {
	}
	return i
}

// commonSuffix is the length of the longest common end of a and b.
func commonSuffix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+64 <= n && bytes.Equal(a[len(a)-i-64:len(a)-i], b[len(b)-i-64:len(b)-i]); i += 64 {
	}
	for ; i < n && a[len(a)-1-i] == b[len(b)-1-i]; i++ {
	}
	return i
}

// spliceDelta is a git delta that makes target from base by copying their common start and
// end from base and inserting what lies between: for two versions of a tree that differ by
// an entry or a few, as small as a delta search would make it, at the cost of a compare (the
// search, packfile.DiffDelta, indexed the whole base tree per commit).
func spliceDelta(base, target []byte) []byte {
	pre := commonPrefix(base, target)
	suf := commonSuffix(base[pre:], target[pre:])
	mid := target[pre : len(target)-suf]
	d := make([]byte, 0, 32+len(mid)+len(mid)/127)
	d = appendDeltaSize(d, len(base))
	d = appendDeltaSize(d, len(target))
	d = appendDeltaCopy(d, 0, pre)
	for len(mid) > 0 {
		n := min(len(mid), 0x7f)
		d = append(append(d, byte(n)), mid[:n]...)
		mid = mid[n:]
	}
	return appendDeltaCopy(d, len(base)-suf, suf)
}

func appendDeltaSize(d []byte, n int) []byte {
	for n >= 0x80 {
		d = append(d, byte(n)|0x80)
		n >>= 7
	}
	return append(d, byte(n))
}

// appendDeltaCopy appends copy instructions of size bytes of the base from off, in pieces of
// at most 64 KB (a piece's size is 3 bytes, and git reads 0 as 64 KB).
func appendDeltaCopy(d []byte, off, size int) []byte {
	for size > 0 {
		n := min(size, 0x10000)
		cmd := byte(0x80)
		at := len(d)
		d = append(d, 0)
		for k := 0; k < 4; k++ {
			if b := byte(off >> (8 * k)); b != 0 {
				cmd |= 1 << k
				d = append(d, b)
			}
		}
		for k := 0; k < 3; k++ {
			if b := byte(n >> (8 * k)); b != 0 {
				cmd |= 0x10 << k
				d = append(d, b)
			}
		}
		d[at] = cmd
		off, size = off+n, size-n
	}
	return d
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
