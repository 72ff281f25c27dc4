package gitobj

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// This file stores what a fetch receives. A fetch asks for a thin pack (its deltas may be
// made against objects the checkout already has, not in the pack): a one-file commit to a
// 10,000-file directory is then about a kilobyte instead of the directory's whole 240 KB tree,
// which the server had to compress and we had to inflate and hash. A pack of fewer than
// UnpackLimit objects is stored as loose objects (as git's fetch does below
// fetch.unpackLimit): adding a pack to go-git's open store makes it read every pack index
// again, 13 ms for the benchmark's 60,000-object pack. A larger one is completed with the
// bases it lacks ("fix thin", as git index-pack --fix-thin) and indexed on all cores.

// UnpackLimit is the number of objects from which a fetched pack is kept as a pack.
const UnpackLimit = 100

// maxUnpackBytes bounds the size of a pack stored as loose objects, read in memory whole, and
// maxUnpackContent the total size of its objects once inflated and resolved (what a few
// compressed bytes declare can be large): past either, whatever its object count, the pack
// goes to disk and is indexed as a pack, whose reads are bounded per object.
const (
	maxUnpackBytes   = 32 << 20
	maxUnpackContent = 128 << 20
)

// errUnpackLarge says a small pack's content is too large to unpack in memory.
var errUnpackLarge = errors.New("pack content too large to unpack in memory")

// ThinBases counts the delta bases read from the store to store a thin pack, and
// PacksUnpacked the fetched packs stored as loose objects, in this process, for the tests.
var ThinBases, PacksUnpacked atomic.Int64

// ErrMissingBase is wrapped by the error of a thin pack's delta whose base is neither in the
// pack nor in the store. The server made it against an object it believed we have (reachable
// from a commit we said we have): the syncer treats it as a pack that does not parse and
// checks the local store before anything else is concluded.
var ErrMissingBase = errors.New("delta base missing")

type errThinBase struct{ base plumbing.Hash }

func (e errThinBase) Error() string {
	return fmt.Sprintf("fetched pack: delta base %s is neither in the pack nor in the local store", e.base)
}

func (e errThinBase) Unwrap() error { return ErrMissingBase }

// StoreFetched stores the pack a fetch received (a thin pack, see above) from r: as loose
// objects when small, as a completed pack otherwise. The bases of its deltas are read from
// the checkout's files when wt (which may be nil) has them, else from the store. Nothing is
// left behind when the pack does not parse. An empty stream stores nothing.
func (s *IndexingStorage) StoreFetched(r io.Reader, wt *WorktreeBases) error {
	s.fresh = nil
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(12)
	if len(head) == 0 && errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fetched pack: %w", err)
	}
	if !bytes.Equal(head[:4], []byte("PACK")) {
		return fmt.Errorf("fetched pack: %w: bad signature", packfile.ErrMalformedPackFile)
	}
	if v := binary.BigEndian.Uint32(head[4:]); v != 2 && v != 3 {
		return fmt.Errorf("fetched pack: %w: version %d", packfile.ErrMalformedPackFile, v)
	}
	count := binary.BigEndian.Uint32(head[8:])
	var data []byte
	if count < UnpackLimit {
		data, err = io.ReadAll(io.LimitReader(br, maxUnpackBytes+1))
		if err != nil {
			return fmt.Errorf("fetched pack: %w", err)
		}
		if len(data) <= maxUnpackBytes {
			if err := s.unpack(data, int(count), wt); !errors.Is(err, errUnpackLarge) {
				return err
			}
		}
	}
	w, err := s.thinWriter(wt)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, io.MultiReader(bytes.NewReader(data), br)); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

// thinWriter is indexingWriter for a fetched pack: deltas against objects of the store are
// resolved by appending those bases to the pack.
func (s *IndexingStorage) thinWriter(wt *WorktreeBases) (io.WriteCloser, error) {
	w, err := s.indexingWriter()
	if err != nil {
		return nil, err
	}
	pw := w.(*packWriter)
	pw.store, pw.wt = s, wt
	return pw, nil
}

// readObject returns the type and content of object h, the base of a thin pack's delta: from
// the checkout's file that holds it (rd.wt), else from the store read with rd, checked
// against its hash either way. An object the store does not have is
// errThinBase.
func (s *IndexingStorage) readObject(rd *objReader, h plumbing.Hash) (plumbing.ObjectType, []byte, error) {
	ThinBases.Add(1)
	if data, ok := rd.wt.read(h); ok {
		return plumbing.BlobObject, data, nil // hashed by read: its content is h's
	}
	if data, ok := rd.wt.tree(h); ok {
		return plumbing.TreeObject, data, nil
	}
	typ, data, err := rd.read(h, 0)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return 0, nil, errThinBase{base: h}
	}
	if err != nil {
		return 0, nil, err
	}
	if got := plumbing.ComputeHash(typ, data); got != h {
		return 0, nil, fmt.Errorf("object %s of the store is corrupt: its content hashes to %s", h, got)
	}
	return typ, data, nil
}

// unpacked is one object of a pack being unpacked.
type unpacked struct {
	offset  int64
	typ     plumbing.ObjectType // the object's type once resolved; a delta's until then
	ofs     int64               // an OFS delta's base offset
	ref     plumbing.Hash       // a REF delta's base
	data    []byte              // content once resolved; a delta's instructions until then
	hash    plumbing.Hash
	pending bool
}

// unpack stores the count objects of the whole pack data as loose objects, after checking
// the pack's checksum and resolving every delta (against the pack or the store).
func (s *IndexingStorage) unpack(data []byte, count int, wt *WorktreeBases) error {
	if len(data) < 32 {
		return fmt.Errorf("fetched pack: %w: %d bytes", packfile.ErrMalformedPackFile, len(data))
	}
	body, trailer := data[:len(data)-20], data[len(data)-20:]
	if sum := sha1.Sum(body); !bytes.Equal(sum[:], trailer) {
		return fmt.Errorf("fetched pack: %w: checksum mismatch", packfile.ErrMalformedPackFile)
	}
	objs := make([]unpacked, 0, count)
	byOffset := make(map[int64]int, count)
	pos := 12
	var br bytes.Reader
	var zr io.ReadCloser
	budget := maxUnpackContent
	for i := 0; i < count; i++ {
		o, n, err := parseEntry(body, pos, &br, &zr, &budget)
		if err != nil {
			if errors.Is(err, errUnpackLarge) {
				return err
			}
			return fmt.Errorf("fetched pack: object %d at offset %d: %w", i, pos, err)
		}
		byOffset[o.offset] = len(objs)
		objs = append(objs, o)
		pos += n
	}
	if pos != len(body) {
		return fmt.Errorf("fetched pack: %w: %d bytes after the last object", packfile.ErrMalformedPackFile, len(body)-pos)
	}
	byHash := map[plumbing.Hash]int{}
	for i := range objs {
		if !objs[i].pending {
			objs[i].hash = plumbing.ComputeHash(objs[i].typ, objs[i].data)
			byHash[objs[i].hash] = i
		}
	}
	// Resolve until nothing is pending: first every delta whose base is a resolved object of
	// the pack; when none is left, one REF delta whose base is in the store (the thin part),
	// then the pack again. A valid pack of n objects takes at most 2n passes.
	var rd *objReader
	defer func() {
		if rd != nil {
			rd.close()
		}
	}()
	for pending := countPending(objs); pending > 0; {
		resolved, err := s.resolvePass(objs, byOffset, byHash, nil, &budget)
		if err == nil && resolved == 0 {
			if rd == nil {
				if rd, err = s.newReader(wt); err != nil {
					return err
				}
			}
			resolved, err = s.resolvePass(objs, byOffset, byHash, rd, &budget)
		}
		if err != nil {
			return err
		}
		if resolved == 0 {
			return fmt.Errorf("fetched pack: %w: %d deltas whose bases are deltas in a cycle", packfile.ErrMalformedPackFile, pending)
		}
		pending -= resolved
	}
	var fresh *freshBlobs
	if s.keepFresh > 0 {
		fresh = &freshBlobs{m: map[plumbing.Hash][]byte{}, limit: s.keepFresh}
	}
	// A pack stored in part is removed: what it added is reachable from nothing yet, and a
	// store on a full disk gets its space back (as a failed pack write's temporary file is
	// removed).
	root := s.Filesystem().Root()
	var created []string
	for i := range objs {
		p, err := writeLooseFile(root, objs[i].hash, objs[i].typ, objs[i].data)
		if err != nil {
			for _, c := range created {
				_ = os.Remove(c)
				_ = os.Remove(filepath.Dir(c)) // if this pack made it and it is empty now
			}
			return err
		}
		if p != "" {
			created = append(created, p)
		}
		if objs[i].typ == plumbing.BlobObject {
			fresh.add(objs[i].hash, objs[i].data)
		}
	}
	s.fresh = fresh
	PacksUnpacked.Add(1)
	return nil
}

func countPending(objs []unpacked) int {
	n := 0
	for i := range objs {
		if objs[i].pending {
			n++
		}
	}
	return n
}

// resolvePass resolves the pending deltas of objs whose base is a resolved object of the pack
// or, with a reader of the store (external), the first REF delta whose base the store has (a
// base that neither the pack nor the store has is an error only when no delta could be
// resolved). It returns how many it resolved.
func (s *IndexingStorage) resolvePass(objs []unpacked, byOffset map[int64]int, byHash map[plumbing.Hash]int, external *objReader, budget *int) (int, error) {
	resolved := 0
	var missing error
	for i := range objs {
		o := &objs[i]
		if !o.pending {
			continue
		}
		var btyp plumbing.ObjectType
		var base []byte
		switch b, ok := byHash[o.ref]; {
		case o.ofs != 0:
			b, ok := byOffset[o.ofs]
			if !ok || b >= i {
				return resolved, fmt.Errorf("fetched pack: %w: delta at offset %d has no object at offset %d", packfile.ErrMalformedPackFile, o.offset, o.ofs)
			}
			if objs[b].pending {
				continue
			}
			btyp, base = objs[b].typ, objs[b].data
		case ok:
			btyp, base = objs[b].typ, objs[b].data
		case external == nil:
			continue
		default:
			t, d, err := s.readObject(external, o.ref)
			if errors.As(err, new(errThinBase)) {
				missing = err
				continue
			}
			if err != nil {
				return resolved, err
			}
			btyp, base = t, d
		}
		// The target's size leads the delta (after the base's): it is checked against
		// what the instructions write, and counts against the budget, before anything is
		// allocated for it.
		src, d, ok := deltaSize(o.data)
		size, d, ok2 := deltaSize(d)
		if !ok || !ok2 || src != uint64(len(base)) || !deltaWrites(d, src, size) {
			return resolved, fmt.Errorf("fetched pack: delta at offset %d: %w", o.offset, packfile.ErrInvalidDelta)
		}
		if size > uint64(*budget) {
			return resolved, errUnpackLarge
		}
		*budget -= int(size)
		content, err := packfile.PatchDelta(base, o.data)
		if err != nil {
			return resolved, fmt.Errorf("fetched pack: delta at offset %d: %w", o.offset, err)
		}
		o.typ, o.data, o.pending = btyp, content, false
		o.hash = plumbing.ComputeHash(o.typ, o.data)
		byHash[o.hash] = i
		resolved++
		if external != nil {
			return resolved, nil
		}
	}
	if resolved == 0 && missing != nil {
		return 0, missing
	}
	return resolved, nil
}

// parseEntry reads the pack entry at pos of body: its header and inflated data. It returns
// the entry and its length in bytes.
func parseEntry(body []byte, pos int, br *bytes.Reader, zr *io.ReadCloser, budget *int) (unpacked, int, error) {
	o := unpacked{offset: int64(pos)}
	if pos >= len(body) {
		return o, 0, fmt.Errorf("%w: truncated", packfile.ErrMalformedPackFile)
	}
	h, err := parseEntryHeader(body[pos:], int64(pos))
	if err != nil {
		return o, 0, err
	}
	o.typ, o.ofs, o.ref = h.typ, h.baseOff, h.baseRef // ofs is 0 but for an OFS delta
	o.pending = h.typ == plumbing.OFSDeltaObject || h.typ == plumbing.REFDeltaObject
	size, k := h.size, pos+h.len
	if size > uint64(*budget) {
		return o, 0, errUnpackLarge
	}
	*budget -= int(size)
	br.Reset(body[k:])
	if *zr == nil {
		*zr, err = zlib.NewReader(br)
	} else {
		err = (*zr).(zlib.Resetter).Reset(br, nil)
	}
	if err != nil {
		return o, 0, fmt.Errorf("%w: %v", packfile.ErrZLib, err)
	}
	o.data = make([]byte, size)
	if _, err := io.ReadFull(*zr, o.data); err != nil {
		return o, 0, fmt.Errorf("%w: %v", packfile.ErrZLib, err)
	}
	var one [1]byte
	if m, err := (*zr).Read(one[:]); m != 0 || !errors.Is(err, io.EOF) {
		return o, 0, fmt.Errorf("%w: inflated size is not %d (%v)", packfile.ErrZLib, size, err)
	}
	consumed := len(body) - k - br.Len()
	return o, k - pos + consumed, nil
}

// entryHeader is the header of a pack entry: type and size, and a delta's base.
type entryHeader struct {
	typ     plumbing.ObjectType
	size    uint64
	baseOff int64         // an OFS delta's base: its offset in the pack
	baseRef plumbing.Hash // a REF delta's base
	len     int           // bytes of the header, base included
}

// parseEntryHeader parses the header of the pack entry at offset off, whose bytes start b: the
// type and size (base 128, 4 bits first), then an OFS delta's base offset (relative, base
// 128 with the +1 of git's encoding) or a REF delta's base hash.
func parseEntryHeader(b []byte, off int64) (entryHeader, error) {
	var h entryHeader
	bad := func(what string) (entryHeader, error) {
		return h, fmt.Errorf("object at offset %d: %w: %s", off, packfile.ErrMalformedPackFile, what)
	}
	k := 0
	c := b[k]
	k++
	h.typ = plumbing.ObjectType((c >> 4) & 7)
	h.size = uint64(c & 0x0f)
	for shift := uint(4); c&0x80 != 0; shift += 7 {
		if k >= len(b) || shift > 60 {
			return bad("bad header")
		}
		c = b[k]
		k++
		h.size |= uint64(c&0x7f) << shift
	}
	switch h.typ {
	case plumbing.CommitObject, plumbing.TreeObject, plumbing.BlobObject, plumbing.TagObject:
	case plumbing.OFSDeltaObject:
		if k >= len(b) {
			return bad("truncated")
		}
		c = b[k]
		k++
		rel := int64(c & 0x7f)
		for c&0x80 != 0 {
			if k >= len(b) || rel > 1<<55 {
				return bad("bad delta offset")
			}
			c = b[k]
			k++
			rel = ((rel + 1) << 7) | int64(c&0x7f)
		}
		if rel <= 0 || rel > off {
			return bad(fmt.Sprintf("delta base %d bytes back, out of the pack", rel))
		}
		h.baseOff = off - rel
	case plumbing.REFDeltaObject:
		if k+hashLen > len(b) {
			return bad("truncated")
		}
		copy(h.baseRef[:], b[k:k+hashLen])
		k += hashLen
	default:
		return bad(fmt.Sprintf("object type %d", h.typ))
	}
	h.len = k
	return h, nil
}
