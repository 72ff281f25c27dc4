package gitobj

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
	"golang.org/x/sys/unix"
)

// CheckoutTree writes every file of tree under dir and an index with their stat data. Every
// path of the tree is checked first (DiffTrees): a tree with a path the checkout refuses
// writes nothing and returns its *PathError. dir is a new clone's, with nothing but .git: the
// files whose blobs the storage's last pack holds are created, never replaced (something
// already at one of their paths fails the checkout), which saves an unlink per file.
func CheckoutTree(st storage.Storer, dir string, tree *object.Tree) error {
	changes, err := DiffTrees(st, nil, tree)
	if err != nil {
		return err
	}
	mk := NewDirMaker(dir)
	defer mk.Close()
	files := make([]*object.Change, 0, len(changes))
	for _, c := range changes {
		if c.To.TreeEntry.Mode != filemode.Submodule {
			files = append(files, c)
		}
	}
	entries := make([]*index.Entry, len(files))
	if l, ok := st.(layoutSource); ok && l.packLayout() != nil {
		if err := checkoutFromPack(l.packLayout(), mk, dir, files, entries); err != nil {
			return err
		}
	}
	for i, c := range files {
		if entries[i] != nil {
			continue
		}
		e := c.To.TreeEntry
		ent, err := WriteEntry(st, mk, dir, c.To.Name, e.Hash, e.Mode)
		if err != nil {
			return err
		}
		entries[i] = ent
	}
	sortEntries(entries)
	idx := &index.Index{Version: 2, Entries: entries}
	return st.SetIndex(idx)
}

// checkoutFromPack writes the files whose blobs the pack of layout l holds, walking its delta
// trees (packLayout.walkBlobs), and sets their entries; the others' entries stay nil.
func checkoutFromPack(l *packLayout, mk *DirMaker, dir string, files []*object.Change, entries []*index.Entry) error {
	byHash := make(map[plumbing.Hash][]int32, len(files))
	want := make(map[plumbing.Hash]bool, len(files))
	for i, c := range files {
		if err := CheckPath(c.To.Name); err != nil {
			return err
		}
		if err := mk.parent(c.To.Name); err != nil {
			return err
		}
		h := c.To.TreeEntry.Hash
		byHash[h] = append(byHash[h], int32(i))
		want[h] = true
	}
	// Each hash is reported once, so no two goroutines write the same file or entry.
	return l.walkBlobs(want, func(h plumbing.Hash, data []byte) error {
		for _, i := range byHash[h] {
			c := files[i]
			d, err := mk.acquire(path.Dir(c.To.Name), true)
			if err != nil {
				return err
			}
			st, err := createAt(d, path.Base(c.To.Name), filepath.Join(dir, filepath.FromSlash(c.To.Name)), data, c.To.TreeEntry.Mode, mk.umask)
			mk.release(d)
			if err != nil {
				return err
			}
			entries[i] = entryFromStat(c.To.Name, h, c.To.TreeEntry.Mode, &st)
		}
		return nil
	})
}

func sortEntries(entries []*index.Entry) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
}

// WriteEntry writes one blob to dir/name (a file or a symlink) and returns its index entry.
// name must have passed CheckPath (DiffTrees checks every path it returns); it is checked
// again here, as every write into the checkout is.
func WriteEntry(st storage.Storer, mk *DirMaker, dir, name string, h plumbing.Hash, mode filemode.FileMode) (*index.Entry, error) {
	if err := CheckPath(name); err != nil {
		return nil, err
	}
	d, err := mk.acquire(path.Dir(name), true)
	if err != nil {
		return nil, err
	}
	defer mk.release(d)
	data, err := checkoutBlob(st, h)
	if err != nil {
		return nil, fmt.Errorf("read blob %s for %s: %w", h, name, err)
	}
	stt, err := writeAt(d, path.Base(name), filepath.Join(dir, filepath.FromSlash(name)), data, mode, mk.umask)
	if err != nil {
		return nil, err
	}
	return entryFromStat(name, h, mode, &stt), nil
}

// gitPerm is the permission git gives a checkout file of mode (a regular file).
func gitPerm(mode filemode.FileMode) uint32 {
	if mode == filemode.Executable {
		return 0o755
	}
	return 0o644
}

// readUmask returns the process's file mode creation mask as /proc/self/status reports it,
// or -1 when it cannot be read.
func readUmask() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return int64(m)
			}
		}
	}
	return -1
}

// writeAll writes data to fd (the file at name).
func writeAll(fd int, name string, data []byte) error {
	for len(data) > 0 {
		n, err := syscall.Write(fd, data)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "write", Path: name, Err: err}
		}
		if n == 0 {
			return &os.PathError{Op: "write", Path: name, Err: io.ErrShortWrite}
		}
		data = data[n:]
	}
	return nil
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// checkoutBlob returns the content of blob h for writing it into the checkout: from the
// blobs the indexer decoded from the last fetched pack when st kept it
// (IndexingStorage.Fresh), else from the store. The caller must not modify it.
func checkoutBlob(st storage.Storer, h plumbing.Hash) ([]byte, error) {
	if f, ok := st.(freshSource); ok {
		if b, ok := f.Fresh(h); ok {
			return b, nil
		}
	}
	return ReadBlob(st, h)
}

// ReadBlob returns the content of blob h from st, a fresh copy the caller may modify.
func ReadBlob(st storage.Storer, h plumbing.Hash) ([]byte, error) {
	obj, err := st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	rd, err := obj.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	buf := make([]byte, 0, obj.Size())
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// statEntry builds the index entry for the file at full with git's stat data.
func statEntry(full, name string, h plumbing.Hash, mode filemode.FileMode) (*index.Entry, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Lstat(full, &st) }); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: full, Err: err}
	}
	return entryFromStat(name, h, mode, &st), nil
}

// ApplyTreeDiff moves the worktree in dir and its index (through ic) along changes
// (DiffTrees' list, every path checked), touching only those paths and reading blobs from
// st. The worktree must be clean for them (the caller checked). Removals come first, in
// order; then the blobs are read here (go-git's store is not for concurrent use) and the
// files written by GOMAXPROCS goroutines when there are many.
func ApplyTreeDiff(st storage.Storer, ic *IndexCache, dir string, changes object.Changes) ([]string, error) {
	idx, err := ic.Load(st)
	if err != nil {
		return nil, err
	}
	ed := NewIndexEditor(idx)
	mk := NewDirMaker(dir)
	defer mk.Close()
	var paths []string
	var writes []*object.Change
	for _, c := range changes {
		if c.To.Name == "" || c.From.Name != "" && c.From.Name != c.To.Name {
			if err := mk.RemovePath(ed, c.From.Name); err != nil {
				return nil, err
			}
			paths = append(paths, c.From.Name)
		}
		if c.To.Name == "" || c.To.TreeEntry.Mode == filemode.Submodule {
			continue
		}
		writes = append(writes, c)
		paths = append(paths, c.To.Name)
	}
	ents, err := writeEntries(st, mk, dir, writes)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		ed.Set(e)
	}
	if err := ic.Store(st, ed.Finish()); err != nil {
		return nil, err
	}
	return paths, nil
}

// writeBatch and writeBatchBytes bound a batch of files handed to a writer goroutine.
const (
	writeBatch      = 32
	writeBatchBytes = 1 << 20
)

// parallelWrites is how many files a checkout move writes before it writes them on several
// goroutines.
const parallelWrites = 64

// writeEntries writes the To side of each change and returns their index entries. Blobs
// are read on this goroutine, in order; the files are written by workers.
func writeEntries(st storage.Storer, mk *DirMaker, dir string, writes []*object.Change) ([]*index.Entry, error) {
	ents := make([]*index.Entry, len(writes))
	workers := runtime.GOMAXPROCS(0)
	if len(writes) < parallelWrites || workers < 2 {
		for i, c := range writes {
			e, err := WriteEntry(st, mk, dir, c.To.Name, c.To.TreeEntry.Hash, c.To.TreeEntry.Mode)
			if err != nil {
				return nil, err
			}
			ents[i] = e
		}
		return ents, nil
	}
	// Files go to the workers in batches: a channel hand-off per file woke a worker per
	// file, scheduler work that a 2,000-file move paid 2,000 times.
	type file struct {
		i    int
		data []byte
		dir  *dirFD // acquired by this goroutine, released by the writer
	}
	jobs := make(chan []file, workers*2)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for batch := range jobs {
				for _, j := range batch {
					if failed.Load() {
						mk.release(j.dir)
						continue
					}
					c := writes[j.i]
					full := filepath.Join(dir, filepath.FromSlash(c.To.Name))
					st, err := writeAt(j.dir, path.Base(c.To.Name), full, j.data, c.To.TreeEntry.Mode, mk.umask)
					mk.release(j.dir)
					if err == nil {
						ents[j.i] = entryFromStat(c.To.Name, c.To.TreeEntry.Hash, c.To.TreeEntry.Mode, &st)
					}
					if err != nil && errs[w] == nil {
						errs[w] = err
						failed.Store(true)
					}
				}
			}
		}(w)
	}
	var err error
	var batch []file
	size := 0
	for i, c := range writes {
		if failed.Load() {
			break
		}
		if err = CheckPath(c.To.Name); err != nil {
			break
		}
		var data []byte
		if data, err = checkoutBlob(st, c.To.TreeEntry.Hash); err != nil {
			err = fmt.Errorf("read blob %s for %s: %w", c.To.TreeEntry.Hash, c.To.Name, err)
			break
		}
		var d *dirFD
		if d, err = mk.acquire(path.Dir(c.To.Name), true); err != nil {
			break
		}
		batch = append(batch, file{i: i, data: data, dir: d})
		size += len(data)
		if len(batch) == writeBatch || size >= writeBatchBytes {
			jobs <- batch
			batch, size = nil, 0
		}
	}
	if err == nil && len(batch) > 0 {
		jobs <- batch
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	return ents, nil
}

// IndexEditor replaces and removes entries of a sorted index without a linear scan each.
type IndexEditor struct {
	idx     *index.Index
	pos     map[string]int
	removed bool
	added   bool
}

func NewIndexEditor(idx *index.Index) *IndexEditor {
	pos := make(map[string]int, len(idx.Entries))
	for i, e := range idx.Entries {
		if e.Stage == 0 {
			pos[e.Name] = i
		}
	}
	return &IndexEditor{idx: idx, pos: pos}
}

func (ed *IndexEditor) Set(e *index.Entry) {
	if i, ok := ed.pos[e.Name]; ok && ed.idx.Entries[i] != nil {
		ed.idx.Entries[i] = e
		return
	}
	ed.pos[e.Name] = len(ed.idx.Entries)
	ed.idx.Entries = append(ed.idx.Entries, e)
	ed.added = true
}

func (ed *IndexEditor) Remove(name string) {
	if i, ok := ed.pos[name]; ok {
		ed.idx.Entries[i] = nil
		delete(ed.pos, name)
		ed.removed = true
	}
}

func (ed *IndexEditor) Finish() *index.Index {
	if ed.removed {
		kept := ed.idx.Entries[:0]
		for _, e := range ed.idx.Entries {
			if e != nil {
				kept = append(kept, e)
			}
		}
		ed.idx.Entries = kept
	}
	if ed.added || ed.removed {
		sortEntries(ed.idx.Entries)
	}
	// Cached trees describe the old entries: drop them rather than leave them stale.
	ed.idx.Cache = nil
	ed.idx.ResolveUndo = nil
	return ed.idx
}

// IndexCache keeps the decoded index while the index file is the one we last read or wrote.
type IndexCache struct {
	path  string
	idx   *index.Index
	mtime time.Time
	size  int64
	gen   uint64
}

// NewIndexCache returns a cache of the index file at path (a checkout's .git/index).
func NewIndexCache(path string) *IndexCache { return &IndexCache{path: path} }

// Reset forgets the decoded index: the next Load reads the file.
func (c *IndexCache) Reset() { c.idx = nil }

// Load returns the index of st, decoded again only when the file changed since the last Load
// or Store.
func (c *IndexCache) Load(st storage.Storer) (*index.Index, error) {
	fi, err := os.Stat(c.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if c.idx != nil && err == nil && fi.ModTime().Equal(c.mtime) && fi.Size() == c.size {
		return c.idx, nil
	}
	idx, err := st.Index()
	if err != nil {
		return nil, err
	}
	c.idx = idx
	c.gen++
	if fi != nil {
		c.mtime, c.size = fi.ModTime(), fi.Size()
	}
	return idx, nil
}

// Gen counts the times the index was decoded from its file (the first Load, and every Load
// after Reset or after the file changed under us): an index that Store did not write.
func (c *IndexCache) Gen() uint64 { return c.gen }

// Mtime is the index file's modification time: a file modified at or after it may have
// changed without its stat data showing it ("racy git").
func (c *IndexCache) Mtime() time.Time { return c.mtime }

// Store writes idx as the index of st and keeps it. When st is a filesystem storage whose
// index file is the cache's, the file is written here as git writes it: EncodeIndex's bytes
// (go-git's, faster) into index.lock, created exclusively, renamed over index; an index.lock
// that exists fails the write with an *IndexLockError and leaves the index as it was. Other
// storages write it with their SetIndex. A failed write forgets the kept index (idx may be
// the one Load returned, edited): the next Load reads the file.
func (c *IndexCache) Store(st storage.Storer, idx *index.Index) error {
	var err error
	if indexFileOf(st, c.path) {
		err = writeIndexFile(c.path, idx)
	} else {
		err = st.SetIndex(idx)
	}
	if err != nil {
		c.idx = nil
		return err
	}
	fi, err := os.Stat(c.path)
	if err != nil {
		c.idx = nil
		return err
	}
	c.idx, c.mtime, c.size = idx, fi.ModTime(), fi.Size()
	return nil
}
