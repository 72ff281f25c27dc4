package gitobj

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// This file holds the checks that tell a damaged object store from a normal one: the cheap
// ones Open runs, and the tree diff that fails on a lost tree instead of reading it as empty.

// CheckPacks checks that each pack in dir ends with the checksum its index names: a pack cut
// short or emptied (a full disk, a bad copy) fails here, before go-git reads it as "object
// not found". It reads 60 bytes per pack.
func CheckPacks(dir string) error {
	idxs, err := filepath.Glob(filepath.Join(dir, "pack-*.idx"))
	if err != nil {
		return err
	}
	for _, idx := range idxs {
		pack := strings.TrimSuffix(idx, ".idx") + ".pack"
		if err := checkPack(idx, pack); err != nil {
			return fmt.Errorf("%w: pack %s: %v", ErrBrokenPack, filepath.Base(pack), err)
		}
	}
	return nil
}

// ErrBrokenPack is wrapped by the errors of CheckPacks and CheckIndexBlobs about a pack.
var ErrBrokenPack = errors.New("broken pack")

func checkPack(idx, pack string) error {
	want, err := readTail(idx, 2*hashLen, 0)
	if err != nil {
		return fmt.Errorf("read index: %w", err)
	}
	got, err := readTail(pack, hashLen, packHeaderLen)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want[:hashLen]) {
		return errors.New("its trailer does not match its index (truncated or overwritten)")
	}
	return nil
}

const (
	hashLen       = 20 // SHA-1
	packHeaderLen = 12 // "PACK", version, object count
)

// readTail returns the last n bytes of the file at p, which must hold at least n+atLeast bytes.
func readTail(p string, n, atLeast int) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < int64(n+atLeast) {
		return nil, fmt.Errorf("%d bytes, too short", st.Size())
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, st.Size()-int64(n)); err != nil {
		return nil, err
	}
	return b, nil
}

// CheckIndexBlobs checks that the objects directory (.git/objects) has every blob the index
// names: the files runs deploy from, and the base of every write-back. A loose object is
// checked by name (one directory read per object directory), a packed one in its pack's
// index; no object is read.
func CheckIndexBlobs(objects string, idx *index.Index) error {
	loose, err := looseObjects(objects)
	if err != nil {
		return err
	}
	var packs []*packIDs
	for _, e := range idx.Entries {
		if e.Mode == filemode.Submodule || loose[e.Hash] {
			continue
		}
		if packs == nil {
			if packs, err = packIndexes(filepath.Join(objects, "pack")); err != nil {
				return err
			}
		}
		if !inPacks(packs, e.Hash) {
			return fmt.Errorf("blob %s of %s (in the index): %w", e.Hash, e.Name, plumbing.ErrObjectNotFound)
		}
	}
	return nil
}

// packIDs is the sorted object ids of one pack's index (version 2, as git and go-git write
// it), searched in place: no decoding of the offsets Open does not need.
type packIDs struct {
	fanout [256]uint32
	names  []byte // count x hashLen, sorted
}

// packIndexes reads the index of every pack in dir.
func packIndexes(dir string) ([]*packIDs, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "pack-*.idx"))
	if err != nil {
		return nil, err
	}
	out := make([]*packIDs, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read pack index: %w", err)
		}
		ids, err := parsePackIDs(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBrokenPack, filepath.Base(p), err)
		}
		out = append(out, ids)
	}
	return out, nil
}

var idxMagic = []byte{0xff, 't', 'O', 'c', 0, 0, 0, 2}

func parsePackIDs(b []byte) (*packIDs, error) {
	const head = 8 + 256*4
	if len(b) < head || !bytes.Equal(b[:8], idxMagic) {
		return nil, errors.New("not a version 2 pack index")
	}
	ids := &packIDs{}
	for i := range ids.fanout {
		ids.fanout[i] = binary.BigEndian.Uint32(b[8+4*i:])
	}
	n := int(ids.fanout[255])
	if len(b) < head+n*hashLen {
		return nil, errors.New("pack index cut short")
	}
	ids.names = b[head : head+n*hashLen]
	return ids, nil
}

func (p *packIDs) contains(h plumbing.Hash) bool {
	lo := 0
	if h[0] > 0 {
		lo = int(p.fanout[h[0]-1])
	}
	hi := int(p.fanout[h[0]])
	i := lo + sort.Search(hi-lo, func(i int) bool {
		return bytes.Compare(p.names[(lo+i)*hashLen:(lo+i+1)*hashLen], h[:]) >= 0
	})
	return i < hi && bytes.Equal(p.names[i*hashLen:(i+1)*hashLen], h[:])
}

func inPacks(packs []*packIDs, h plumbing.Hash) bool {
	for _, p := range packs {
		if p.contains(h) {
			return true
		}
	}
	return false
}

// looseObjects returns the ids of the loose objects under the objects directory dir.
func looseObjects(dir string) (map[plumbing.Hash]bool, error) {
	dirs, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list loose objects: %w", err)
	}
	out := map[plumbing.Hash]bool{}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(dir, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("list loose objects: %w", err)
		}
		for _, e := range ents {
			if id := d.Name() + e.Name(); plumbing.IsHash(id) {
				out[plumbing.NewHash(id)] = true
			}
		}
	}
	return out, nil
}

// MissingParts names the parts of a git directory that are missing from the checkout in dir
// (" (.git/HEAD is missing)"), or "": what on-call needs to read from "repository does not
// exist".
func MissingParts(dir string) string {
	var gone []string
	for _, p := range []string{".git", ".git/HEAD", ".git/objects", ".git/refs"} {
		if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p))); errors.Is(err, os.ErrNotExist) {
			gone = append(gone, p)
			if p == ".git" {
				break
			}
		}
	}
	if len(gone) == 0 {
		return ""
	}
	return " (" + strings.Join(gone, ", ") + " missing)"
}

// DiffTrees lists the files that differ between two trees (from may be nil: everything in to
// is new), as object.DiffTree would without rename detection: a deletion has no To, an
// insertion no From, a modification the same name on both Sides. Deletions come first, so a
// path that turns from a directory into a file (or back) is removed before it is written.
//
// It walks both trees itself, reading each differing subtree once, and fails on a tree it
// cannot read. go-git's walker skips an entry whose tree object is missing, as it would a
// submodule, so its diff read a lost directory as an empty one: a move would delete that
// directory's files, or miss its changes, and report success. Walking ourselves also decodes
// a large directory (10,000 instance files) once per side instead of twice.
func DiffTrees(s storer.EncodedObjectStorer, from, to *object.Tree) (object.Changes, error) {
	var f, t plumbing.Hash
	if from != nil {
		f = from.Hash
	}
	if to != nil {
		t = to.Hash
	}
	return DiffTreeHashes(s, nil, f, t)
}

// joinPath joins a checked directory path and an entry name.
func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
