package gitobj

import (
	"compress/zlib"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
)

// TreeUpdate is a new blob for a path, or its deletion.
type TreeUpdate struct {
	Hash   plumbing.Hash
	Mode   filemode.FileMode
	Delete bool
}

// BuildTree returns the hash of the tree base with updates applied (slash paths), writing only
// the trees on the updated paths. Directories that become empty are dropped. empty reports an
// empty result.
func BuildTree(st storage.Storer, base plumbing.Hash, updates map[string]TreeUpdate) (h plumbing.Hash, empty bool, err error) {
	var entries []object.TreeEntry
	if !base.IsZero() {
		t, err := object.GetTree(st, base)
		if err != nil {
			return plumbing.ZeroHash, false, fmt.Errorf("read tree %s: %w", base, err)
		}
		entries = append(entries, t.Entries...)
	}
	direct := map[string]TreeUpdate{}
	sub := map[string]map[string]TreeUpdate{}
	for p, u := range updates {
		if i := strings.IndexByte(p, '/'); i >= 0 {
			if sub[p[:i]] == nil {
				sub[p[:i]] = map[string]TreeUpdate{}
			}
			sub[p[:i]][p[i+1:]] = u
		} else {
			direct[p] = u
		}
	}
	pos := make(map[string]int, len(entries))
	for i, e := range entries {
		pos[e.Name] = i
	}
	set := func(e object.TreeEntry, del bool) {
		i, ok := pos[e.Name]
		switch {
		case del && ok:
			entries[i].Name = ""
		case del:
		case ok:
			entries[i] = e
		default:
			pos[e.Name] = len(entries)
			entries = append(entries, e)
		}
	}
	for name, u := range direct {
		set(object.TreeEntry{Name: name, Mode: u.Mode, Hash: u.Hash}, u.Delete)
	}
	for name, ups := range sub {
		var subBase plumbing.Hash
		if i, ok := pos[name]; ok && entries[i].Mode == filemode.Dir {
			subBase = entries[i].Hash
		}
		sh, subEmpty, err := BuildTree(st, subBase, ups)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		set(object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: sh}, subEmpty)
	}
	kept := entries[:0]
	for _, e := range entries {
		if e.Name != "" {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		return plumbing.ZeroHash, true, nil
	}
	sort.Slice(kept, func(i, j int) bool { return treeName(kept[i]) < treeName(kept[j]) })
	h, err = storeTree(st, "", kept)
	return h, false, err
}

// treeName is the key git sorts tree entries by: directories sort as if their name ended in "/".
func treeName(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

// storeTree writes the tree of entries, at slash path dir (a delta base hint for
// PendingObjects), and returns its hash.
func storeTree(st storage.Storer, dir string, entries []object.TreeEntry) (plumbing.Hash, error) {
	buf, starts := encodeTree(entries)
	return storeEncodedTree(st, dir, buf, starts)
}

// encodeTree encodes entries as object.Tree.Encode does, and returns the offset of each
// entry (nil for a tree of 2 GiB or more).
func encodeTree(entries []object.TreeEntry) ([]byte, []int32) {
	n := 0
	for _, e := range entries {
		n += len(e.Name) + 8 + len(e.Hash)
	}
	buf := make([]byte, 0, n)
	var starts []int32
	if n < 1<<31 {
		starts = make([]int32, 0, len(entries))
	}
	for _, e := range entries {
		if starts != nil {
			starts = append(starts, int32(len(buf)))
		}
		buf = appendMode(buf, e.Mode)
		buf = append(buf, ' ')
		buf = append(buf, e.Name...)
		buf = append(buf, 0)
		buf = append(buf, e.Hash[:]...)
	}
	return buf, starts
}

// storeEncodedTree writes tree content buf (entries at starts) and keeps it in recentTrees;
// neither may change afterwards.
func storeEncodedTree(st storage.Storer, dir string, buf []byte, starts []int32) (plumbing.Hash, error) {
	var h plumbing.Hash
	var err error
	if p, ok := st.(*PendingObjects); ok {
		h = p.add(plumbing.TreeObject, buf, dir)
	} else {
		h, err = storeObject(st, plumbing.TreeObject, buf)
	}
	if err == nil {
		recentTrees.put(h, buf, starts)
	}
	return h, err
}

// appendMode appends mode in octal as a tree entry has it (the common modes from constants:
// formatting them was a third of encoding a 5,000-entry tree).
func appendMode(b []byte, mode filemode.FileMode) []byte {
	switch mode {
	case filemode.Regular:
		return append(b, "100644"...)
	case filemode.Dir:
		return append(b, "40000"...)
	case filemode.Executable:
		return append(b, "100755"...)
	case filemode.Symlink:
		return append(b, "120000"...)
	}
	return strconv.AppendUint(b, uint64(mode), 8)
}

// StoreBlob writes data as a blob and returns its hash.
func StoreBlob(st storage.Storer, data []byte) (plumbing.Hash, error) {
	return storeObject(st, plumbing.BlobObject, data)
}

// StoreCommit writes a commit and returns its hash.
func StoreCommit(st storage.Storer, c *object.Commit) (plumbing.Hash, error) {
	obj := &plumbing.MemoryObject{}
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	rd, err := obj.Reader()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return storeObject(st, plumbing.CommitObject, data)
}

// storeObject writes an object. In a checkout on disk it writes the loose object itself with
// zlib at level 1, git's default for loose objects (core.looseCompression): go-git's writer
// uses the default level, which made zlib most of a 200-change write-back's time (each commit
// stores its 370 KB instances/ tree). Any other storage gets go-git's writer.
func storeObject(st storage.Storer, typ plumbing.ObjectType, data []byte) (plumbing.Hash, error) {
	if p, ok := st.(*PendingObjects); ok {
		return p.add(typ, data, ""), nil
	}
	fsys, ok := st.(interface{ Filesystem() billy.Filesystem })
	if !ok {
		return storeEncoded(st, typ, data)
	}
	h := plumbing.ComputeHash(typ, data)
	_, err := writeLooseFile(fsys.Filesystem().Root(), h, typ, data)
	return h, err
}

// storeLoose writes object h (type typ, content data) as a loose object of the checkout's
// store st (see storeObject), unless it is there.
func storeLoose(st *IndexingStorage, h plumbing.Hash, typ plumbing.ObjectType, data []byte) error {
	_, err := writeLooseFile(st.Filesystem().Root(), h, typ, data)
	return err
}

// writeLooseFile writes object h as a loose object under the git directory gitDir, unless it
// is there, and returns the file it created ("" when it was there).
func writeLooseFile(gitDir string, h plumbing.Hash, typ plumbing.ObjectType, data []byte) (string, error) {
	hex := h.String()
	dir := filepath.Join(gitDir, "objects", hex[:2])
	final := filepath.Join(dir, hex[2:])
	if _, err := os.Lstat(final); err == nil {
		return "", nil
	}
	// The temporary file goes in objects/, as go-git's and git's do: creating it in the
	// objects/xx/ directory itself measured several times slower here.
	f, err := os.CreateTemp(filepath.Dir(dir), "tmp_obj_")
	if err != nil {
		return "", err
	}
	if err := writeLoose(f, typ, data); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	_ = os.Chmod(f.Name(), 0o444)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	if err := os.Rename(f.Name(), final); err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return final, nil
}

// looseWriters reuses zlib writers: a new one allocates about 600 KB of state.
var looseWriters = sync.Pool{New: func() any {
	zw, _ := zlib.NewWriterLevel(io.Discard, zlib.BestSpeed)
	return zw
}}

// storedWriters write zlib without compression, for loose trees: a tree is mostly binary
// hashes, which do not compress, and a write-back writes one tree of the instances'
// directory per commit, so deflating it (at any level) cost more per instance the larger the
// repository (a third of a 3,000-instance deployment's CPU). Git reads stored blocks as any
// other zlib stream; the pack a push sends is deflated as before.
var storedWriters = sync.Pool{New: func() any {
	zw, _ := zlib.NewWriterLevel(io.Discard, zlib.NoCompression)
	return zw
}}

func writeLoose(w io.Writer, typ plumbing.ObjectType, data []byte) error {
	pool := &looseWriters
	if typ == plumbing.TreeObject {
		pool = &storedWriters
	}
	zw := pool.Get().(*zlib.Writer)
	defer pool.Put(zw)
	zw.Reset(w)
	if _, err := fmt.Fprintf(zw, "%s %d\x00", typ, len(data)); err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	return zw.Close()
}

func storeEncoded(st storage.Storer, typ plumbing.ObjectType, data []byte) (plumbing.Hash, error) {
	obj := st.NewEncodedObject()
	obj.SetType(typ)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}
