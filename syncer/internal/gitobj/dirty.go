package gitobj

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/storage"
)

// DirtyFile is a tracked path whose worktree content differs from the index.
type DirtyFile struct {
	Name    string
	Deleted bool
}

// ScanDirty compares every tracked file of the worktree in dir with the index (through ic, in
// st): one lstat each, and a content hash only where the stat data differs or the entry is
// racily clean. Untracked files are ignored. Entries whose content turned out equal are
// refreshed in the index (refreshed reports it).
func ScanDirty(st storage.Storer, ic *IndexCache, dir string) (dirty []DirtyFile, refreshed bool, err error) {
	idx, err := ic.Load(st)
	if err != nil {
		return nil, false, err
	}
	return checkEntries(st, ic, dir, idx, idx.Entries)
}

// CheckDirty is ScanDirty for the tracked paths pick selects only (pick is given the index's
// entries, sorted by name, and returns those to check): the incremental dirty check, where
// pick is what changed since the last check.
func CheckDirty(st storage.Storer, ic *IndexCache, dir string, pick func([]*index.Entry) []*index.Entry) (dirty []DirtyFile, refreshed bool, err error) {
	idx, err := ic.Load(st)
	if err != nil {
		return nil, false, err
	}
	return checkEntries(st, ic, dir, idx, pick(idx.Entries))
}

func checkEntries(st storage.Storer, ic *IndexCache, dir string, idx *index.Index, entries []*index.Entry) (dirty []DirtyFile, refreshed bool, err error) {
	racy := ic.Mtime()
	n := len(entries)
	real := realDirs(dir, entries)
	workers := runtime.GOMAXPROCS(0)
	if n < 512 {
		workers = 1
	}
	type result struct {
		dirty []DirtyFile
		fresh []*index.Entry
	}
	results := make([]result, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w * n / workers; i < (w+1)*n/workers; i++ {
				e := entries[i]
				var d *DirtyFile
				var fresh *index.Entry
				if !real[path.Dir(e.Name)] {
					d = &DirtyFile{Name: e.Name, Deleted: true}
				} else {
					d, fresh = checkEntry(dir, e, racy)
				}
				if d != nil {
					results[w].dirty = append(results[w].dirty, *d)
				} else if fresh != nil {
					results[w].fresh = append(results[w].fresh, fresh)
				}
			}
		}(w)
	}
	wg.Wait()
	var fresh []*index.Entry
	for _, res := range results {
		dirty = append(dirty, res.dirty...)
		fresh = append(fresh, res.fresh...)
	}
	sort.Slice(dirty, func(i, j int) bool { return dirty[i].Name < dirty[j].Name })
	if len(fresh) > 0 {
		ed := NewIndexEditor(idx)
		for _, e := range fresh {
			ed.Set(e)
		}
		if err := ic.Store(st, ed.Finish()); err != nil {
			ic.Reset()
			return nil, false, err
		}
		refreshed = true
	}
	return dirty, refreshed, nil
}

// realDirs reports, for the parent directory of each entry, whether it and every directory
// above it are real directories of the checkout. A tracked file below a symlink or a file is
// deleted, as git says ("beyond a symbolic link"): its lstat would follow the link out of the
// checkout, and what is there is not the checkout's. Each directory is checked once.
func realDirs(root string, entries []*index.Entry) map[string]bool {
	ok := map[string]bool{".": true}
	var check func(d string) bool
	check = func(d string) bool {
		if v, seen := ok[d]; seen {
			return v
		}
		v := check(path.Dir(d))
		if v {
			fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(d)))
			v = err == nil && fi.IsDir()
		}
		ok[d] = v
		return v
	}
	for _, e := range entries {
		check(path.Dir(e.Name))
	}
	return ok
}

// checkEntry returns a DirtyFile when e's file differs, or a refreshed entry when only its
// stat data changed.
func checkEntry(dir string, e *index.Entry, racy time.Time) (*DirtyFile, *index.Entry) {
	if e.Stage != 0 || e.SkipWorktree || e.Mode == filemode.Submodule {
		return nil, nil
	}
	full := filepath.Join(dir, filepath.FromSlash(e.Name))
	fi, err := os.Lstat(full)
	if err != nil {
		return &DirtyFile{Name: e.Name, Deleted: errors.Is(err, os.ErrNotExist)}, nil
	}
	if !modeMatches(e.Mode, fi) {
		return &DirtyFile{Name: e.Name}, nil
	}
	if statMatches(e, fi) && fi.ModTime().Before(racy) {
		return nil, nil
	}
	if int64(e.Size) != fi.Size() && e.Mode != filemode.Symlink {
		return &DirtyFile{Name: e.Name}, nil
	}
	h, err := hashWorktree(full, e.Mode)
	if err != nil || h != e.Hash {
		return &DirtyFile{Name: e.Name}, nil
	}
	if statMatches(e, fi) {
		return nil, nil
	}
	fresh, err := statEntry(full, e.Name, e.Hash, e.Mode)
	if err != nil {
		return &DirtyFile{Name: e.Name}, nil
	}
	return nil, fresh
}

func modeMatches(m filemode.FileMode, fi os.FileInfo) bool {
	switch m {
	case filemode.Symlink:
		return fi.Mode()&os.ModeSymlink != 0
	case filemode.Executable:
		return fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
	default:
		return fi.Mode().IsRegular() && fi.Mode()&0o111 == 0
	}
}

func statMatches(e *index.Entry, fi os.FileInfo) bool {
	if !fi.ModTime().Equal(e.ModifiedAt) || int64(e.Size) != fi.Size() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	return uint32(st.Ino) == e.Inode && st.Ctim.Sec == e.CreatedAt.Unix() && st.Ctim.Nsec == int64(e.CreatedAt.Nanosecond())
}

// maxWorktreeFile bounds a checkout file the dirty check hashes.
const maxWorktreeFile = 1 << 30

func hashWorktree(full string, m filemode.FileMode) (plumbing.Hash, error) {
	var data []byte
	var err error
	if m == filemode.Symlink {
		var t string
		t, err = os.Readlink(full)
		data = []byte(t)
	} else {
		// Not os.ReadFile: the file was a regular one at lstat, but a FIFO or a symlink to a
		// device swapped in since must not hang or exhaust the sync.
		data, err = ReadRegularFile(full, maxWorktreeFile)
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return plumbing.ComputeHash(plumbing.BlobObject, data), nil
}
