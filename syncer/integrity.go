package syncer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// This file holds the checks that tell a damaged object store from a normal one: the cheap
// ones Open runs, and the tree diff that fails on a lost tree instead of reading it as empty.

// checkPacks checks that each pack in dir ends with the checksum its index names: a pack cut
// short or emptied (a full disk, a bad copy) fails here, before go-git reads it as "object
// not found". It reads 60 bytes per pack.
func checkPacks(dir string) error {
	idxs, err := filepath.Glob(filepath.Join(dir, "pack-*.idx"))
	if err != nil {
		return err
	}
	for _, idx := range idxs {
		pack := strings.TrimSuffix(idx, ".idx") + ".pack"
		if err := checkPack(idx, pack); err != nil {
			return fmt.Errorf("%w: pack %s: %v", errBrokenPack, filepath.Base(pack), err)
		}
	}
	return nil
}

// errBrokenPack is wrapped by checkPacks' errors.
var errBrokenPack = errors.New("broken pack")

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

// missingParts names the parts of a git directory that are missing from the checkout in dir
// (" (.git/HEAD is missing)"), or "": what on-call needs to read from "repository does not
// exist".
func missingParts(dir string) string {
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

// diffTrees is object.DiffTree (from may be nil: everything in to is new) that fails on a
// tree it cannot read. go-git's tree walker skips an entry whose tree object is missing, as it
// would a submodule, so its diff reads a lost directory as an empty one: a move would delete
// that directory's files, or miss its changes, and report success. The trees checked are
// exactly those the diff reads, and go-git's object cache serves them to the diff again.
func diffTrees(s storer.EncodedObjectStorer, from, to *object.Tree) (object.Changes, error) {
	if err := requireSubtrees(s, from, to, ""); err != nil {
		return nil, err
	}
	return object.DiffTree(from, to)
}

// requireSubtrees reads every subtree where a and b differ (either may be nil), recursively.
func requireSubtrees(s storer.EncodedObjectStorer, a, b *object.Tree, dir string) error {
	type pair struct{ a, b plumbing.Hash }
	subs := map[string]pair{}
	if a != nil {
		for _, e := range a.Entries {
			if e.Mode == filemode.Dir {
				subs[e.Name] = pair{a: e.Hash}
			}
		}
	}
	if b != nil {
		for _, e := range b.Entries {
			if e.Mode == filemode.Dir {
				p := subs[e.Name]
				p.b = e.Hash
				subs[e.Name] = p
			}
		}
	}
	for name, p := range subs {
		if p.a == p.b {
			continue
		}
		full := path.Join(dir, name)
		ta, err := getTree(s, p.a, full)
		if err != nil {
			return err
		}
		tb, err := getTree(s, p.b, full)
		if err != nil {
			return err
		}
		if err := requireSubtrees(s, ta, tb, full); err != nil {
			return err
		}
	}
	return nil
}

// getTree reads tree h (nil for the zero hash), saying which directory it is.
func getTree(s storer.EncodedObjectStorer, h plumbing.Hash, dir string) (*object.Tree, error) {
	if h.IsZero() {
		return nil, nil
	}
	t, err := object.GetTree(s, h)
	if err != nil {
		return nil, fmt.Errorf("read tree %s of %s/: %w", h, dir, err)
	}
	return t, nil
}
