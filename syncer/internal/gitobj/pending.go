package gitobj

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage"
)

// PendingObjects holds the objects of a write-back's chain of commits in memory and writes
// them to the store when flushed: as one pack, with each tree a delta of the tree written
// before it at the same path, when the chain is long enough (packMinCommits); as loose
// objects otherwise.
//
// A write-back commits one instance at a time, and each commit has a new tree of the
// instances' directory: as loose objects, a 5,000-instance deployment wrote 5,000 trees of
// 190 KB (950 MB, each through zlib and a file of its own), and the cost per instance grew
// with the repository (the writes, and the file system's work for them, slowed everything
// else the daemon did on that disk). In a pack the 49 trees after a bucket's first are
// deltas of a few hundred bytes.
//
// Reads through it see the pending objects; everything else passes to the store.
type PendingObjects struct {
	storage.Storer
	store   *IndexingStorage // nil: the store is not a checkout on disk, objects go through storeObject
	objs    []pendingObj
	byHash  map[plumbing.Hash]int
	lastAt  map[string]int // path → index of the last tree written there
	commits int
}

type pendingObj struct {
	hash plumbing.Hash
	typ  plumbing.ObjectType
	data []byte
	base int // index of the tree this one is a delta of; -1: none
}

// packMinCommits is the shortest chain flushed as a pack: below it loose objects cost little,
// and a pack per short write-back would grow the store by a pack per run (see Maintain).
const packMinCommits = 8

// NewPendingObjects returns an empty set over st.
func NewPendingObjects(st storage.Storer) *PendingObjects {
	p := &PendingObjects{Storer: st, byHash: map[plumbing.Hash]int{}, lastAt: map[string]int{}}
	p.store, _ = st.(*IndexingStorage)
	return p
}

// add keeps object (typ, data), a tree written at path dir or (dir "") anything else, and
// returns its hash. A tree's or commit's hash is crypto/sha1's, not go-git's
// collision-detecting one: this process encodes them (entries of trees it holds, commits it
// writes), and the collision check made hashing a 190 KB tree 1.7 times as slow. A blob's
// content comes from a step or an edit of repository content: it keeps the check.
func (p *PendingObjects) add(typ plumbing.ObjectType, data []byte, dir string) plumbing.Hash {
	var h plumbing.Hash
	if typ == plumbing.BlobObject {
		h = plumbing.ComputeHash(typ, data)
	} else {
		h = ownHash(typ, data)
	}
	if _, ok := p.byHash[h]; ok {
		return h
	}
	o := pendingObj{hash: h, typ: typ, data: data, base: -1}
	if typ == plumbing.TreeObject {
		if i, ok := p.lastAt[dir]; ok {
			o.base = i
		}
		p.lastAt[dir] = len(p.objs)
	}
	if typ == plumbing.CommitObject {
		p.commits++
	}
	p.byHash[h] = len(p.objs)
	p.objs = append(p.objs, o)
	return h
}

// ownHash is the object id of (typ, data) by crypto/sha1.
func ownHash(typ plumbing.ObjectType, data []byte) plumbing.Hash {
	s := sha1.New()
	var hdr [32]byte
	b := append(append(append(hdr[:0], typ.Bytes()...), ' '), strconv.Itoa(len(data))...)
	s.Write(append(b, 0))
	s.Write(data)
	var h plumbing.Hash
	s.Sum(h[:0])
	return h
}

// EncodedObject returns a pending object, or asks the store.
func (p *PendingObjects) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if i, ok := p.byHash[h]; ok && (t == plumbing.AnyObject || t == p.objs[i].typ) {
		return memoryObject(p.objs[i].typ, p.objs[i].data), nil
	}
	return p.Storer.EncodedObject(t, h)
}

// HasEncodedObject reports a pending object, or asks the store.
func (p *PendingObjects) HasEncodedObject(h plumbing.Hash) error {
	if _, ok := p.byHash[h]; ok {
		return nil
	}
	return p.Storer.HasEncodedObject(h)
}

// Flush writes the pending objects to the store and forgets them.
func (p *PendingObjects) Flush() error {
	objs, commits := p.objs, p.commits
	p.objs, p.commits = nil, 0
	clear(p.byHash)
	clear(p.lastAt)
	if len(objs) == 0 {
		return nil
	}
	if p.store == nil || commits < packMinCommits {
		for _, o := range objs {
			if _, err := storeObject(p.Storer, o.typ, o.data); err != nil {
				return err
			}
		}
		return nil
	}
	return writePack(p.store.packDir, objs)
}

// writePack writes objs as a pack and its index into dir: the pack first, under its final
// name, then the index (readers find packs by their index). A tree with a base is written
// as an offset delta of it when the delta is less than half its size; whole trees are
// stored (zlib without compression: a tree is mostly hashes), the rest at zlib level 1.
func writePack(dir string, objs []pendingObj) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	var hdr [12]byte
	copy(hdr[:], "PACK")
	binary.BigEndian.PutUint32(hdr[4:], 2)
	binary.BigEndian.PutUint32(hdr[8:], uint32(len(objs)))
	buf.Write(hdr[:])
	entries := make([]packObj, len(objs))
	stored, _ := zlib.NewWriterLevel(&buf, zlib.NoCompression)
	fast, _ := zlib.NewWriterLevel(&buf, zlib.BestSpeed)
	for i, o := range objs {
		start := buf.Len()
		entries[i] = packObj{offset: int64(start), hash: o.hash, typ: o.typ}
		data, zw, whole := o.data, fast, true
		if o.typ == plumbing.TreeObject {
			zw = stored
		}
		if o.base >= 0 {
			if d := spliceDelta(objs[o.base].data, o.data); len(d) < len(o.data)/2 {
				var h [16]byte
				n := packEntryHeader(h[:], plumbing.OFSDeltaObject, uint64(len(d)))
				buf.Write(h[:n])
				buf.Write(ofsDeltaOffset(int64(start) - entries[o.base].offset))
				data, zw, whole = d, fast, false
			}
		}
		if whole {
			var h [16]byte
			n := packEntryHeader(h[:], o.typ, uint64(len(o.data)))
			buf.Write(h[:n])
		}
		zw.Reset(&buf)
		if _, err := zw.Write(data); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		entries[i].crc = crc32.ChecksumIEEE(buf.Bytes()[start:])
	}
	sum := sha1.Sum(buf.Bytes())
	buf.Write(sum[:])
	checksum := plumbing.Hash(sum)
	f, err := os.CreateTemp(dir, "tmp_pack_")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(buf.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	base := filepath.Join(dir, "pack-"+checksum.String())
	if err == nil {
		_ = os.Chmod(tmp, 0o444)
		err = os.Rename(tmp, base+".pack")
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write pack: %w", err)
	}
	if err := writeIdx(base+".idx", entries, checksum); err != nil {
		_ = os.Remove(base + ".idx")
		return fmt.Errorf("write pack index: %w", err)
	}
	return nil
}

// ofsDeltaOffset encodes the distance back to an offset delta's base as git does: 7 bits a
// byte, most significant first, each continued byte's value one less.
func ofsDeltaOffset(d int64) []byte {
	var b [10]byte
	i := len(b) - 1
	b[i] = byte(d & 0x7f)
	for d >>= 7; d > 0; d >>= 7 {
		d--
		i--
		b[i] = 0x80 | byte(d&0x7f)
	}
	return b[i:]
}
