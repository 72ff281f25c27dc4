package gitobj

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// WorktreeBases lets the bases of a thin pack's deltas be read from the checkout's files
// instead of the object store. The server makes a changed file's new version a delta against
// the version we have, the one in HEAD, which the checkout's file holds: reading it there
// (one small read) is much cheaper than from the pack of a clone, where the tip's version of
// a file is often at the end of a chain of fifty deltas (sync_2000's bases: 2,000 files, a
// chain each). The index says which file had which blob; a file is used only when it is a
// regular file whose content hashes to the base, so a file edited, replaced or swapped for a
// symlink or a FIFO since is never taken for the base: the store is read instead.
//
// Trees, when set, is the syncer's cache of the deployed commit's trees: a thin pack's tree
// deltas are against those (a 10,000-entry directory's tree at the end of a delta chain in
// the clone's pack, again), and the cache holds them already decoded and hashed.
type WorktreeBases struct {
	Dir   string
	Index *index.Index
	Trees *TreeCache

	once  sync.Once
	paths map[plumbing.Hash]string
}

// BasesFromWorktree counts the bases read from the checkout's files, for the tests.
var BasesFromWorktree atomic.Int64

// maxWorktreeBase bounds the size of a file read as a base.
const maxWorktreeBase = 64 << 20

func (w *WorktreeBases) path(h plumbing.Hash) (string, bool) {
	w.once.Do(func() {
		w.paths = make(map[plumbing.Hash]string, len(w.Index.Entries))
		for _, e := range w.Index.Entries {
			// Stage 0: a file without conflict (go-git's index.Merged is 1, git's stage 0).
			if e.Stage == 0 && (e.Mode == filemode.Regular || e.Mode == filemode.Executable) {
				w.paths[e.Hash] = e.Name
			}
		}
	})
	p, ok := w.paths[h]
	return p, ok
}

// tree returns the content of tree h if the tree cache holds it (content-addressed: each was
// hashed when it was read from the store).
func (w *WorktreeBases) tree(h plumbing.Hash) ([]byte, bool) {
	if w == nil {
		return nil, false
	}
	b, ok := w.Trees.Peek(h)
	if ok {
		TreeBasesFromCache.Add(1)
	}
	return b, ok
}

// ReadCheckoutBlob returns the content of blob h from the file name of the checkout in dir
// when it is a regular file whose content hashes to h (see ReadRegularFile): one read of a
// small file instead of a blob at the end of a delta chain in a pack.
func ReadCheckoutBlob(dir, name string, h plumbing.Hash) ([]byte, bool) {
	data, err := ReadRegularFile(filepath.Join(dir, filepath.FromSlash(name)), maxWorktreeBase)
	if err != nil || plumbing.ComputeHash(plumbing.BlobObject, data) != h {
		return nil, false
	}
	return data, true
}

// TreeBasesFromCache counts the bases taken from the tree cache, for the tests.
var TreeBasesFromCache atomic.Int64

// read returns the content of blob h from the checkout's file that the index names for it,
// if that file is a regular file whose content hashes to h.
func (w *WorktreeBases) read(h plumbing.Hash) ([]byte, bool) {
	if w == nil || w.Index == nil {
		return nil, false
	}
	name, ok := w.path(h)
	if !ok {
		return nil, false
	}
	data, ok := ReadCheckoutBlob(w.Dir, name, h)
	if ok {
		BasesFromWorktree.Add(1)
	}
	return data, ok
}

// ErrNotRegular is the error of ReadRegularFile for a path that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ReadRegularFile reads the file at p if it is a regular file of at most max bytes: it does
// not follow a symlink (O_NOFOLLOW), does not wait on a FIFO put in a file's place
// (O_NONBLOCK: the open returns at once, and fstat says what it is), and does not read a
// device or a file larger than max (a symlink to /dev/zero, a file grown without bound).
// Files of a checkout are read with it wherever a hand edit could have put something else.
func ReadRegularFile(p string, max int64) ([]byte, error) {
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: p, Err: ErrNotRegular}
	}
	if fi.Size() > max {
		return nil, &os.PathError{Op: "read", Path: p, Err: fmt.Errorf("%d bytes, more than %d", fi.Size(), max)}
	}
	data := make([]byte, fi.Size())
	n, err := io.ReadFull(f, data)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return data[:n], nil
}
