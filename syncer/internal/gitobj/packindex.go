package gitobj

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// This file replaces go-git's pack indexing for clone. go-git's parser keeps every delta base
// it decoded in a 96 MiB cache that no option can shrink, and indexes on one goroutine: on the
// benchmark repository that was most of a clone's 260 MB peak. Here, as git index-pack does,
// the first pass streams the pack to disk while hashing the whole objects and noting where
// each delta points; the second pass resolves each delta tree depth first from its base,
// holding only the chain it is on, on GOMAXPROCS goroutines. Clone packs are never thin, so a
// delta whose base is not in the pack is an error.

// IndexingStorage is a filesystem storage whose PackfileWriter indexes packs as above.
type IndexingStorage struct {
	*filesystem.Storage
	packDir string
	// minObjects, when not 0, sends packs of fewer objects to go-git's writer: its index of
	// a small pack is added to the open store as is, where ours makes go-git read every
	// pack index again.
	minObjects uint32
	// keepFresh, when not 0, keeps up to that many bytes of the blobs the indexer decoded
	// from the last pack (see Fresh): a checkout move after a large fetch writes them
	// without decoding them again from the pack.
	keepFresh int
	fresh     *freshBlobs
}

// freshBlobs are blob contents the indexer decoded, by hash, up to a total size; each was
// hashed from its content as it was decoded.
type freshBlobs struct {
	mu    sync.Mutex
	m     map[plumbing.Hash][]byte
	size  int
	limit int
}

// add keeps data as the content of blob h if the total stays within the limit.
func (f *freshBlobs) add(h plumbing.Hash, data []byte) {
	if f == nil {
		return
	}
	f.mu.Lock()
	if f.size+len(data) <= f.limit {
		if _, ok := f.m[h]; !ok {
			f.m[h] = data
			f.size += len(data)
		}
	}
	f.mu.Unlock()
}

// Fresh returns the content of blob h if the indexer decoded it from the last pack it
// indexed and kept it; the caller must not modify it. Only a Repo's storage keeps blobs
// (NewRepoStorage), and only until DropFresh.
func (s *IndexingStorage) Fresh(h plumbing.Hash) ([]byte, bool) {
	f := s.fresh
	if f == nil {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.m[h]
	return b, ok
}

// DropFresh forgets the blobs kept from the last pack.
func (s *IndexingStorage) DropFresh() { s.fresh = nil }

// freshSource is a store that may hold blobs decoded while indexing (IndexingStorage).
type freshSource interface {
	Fresh(h plumbing.Hash) ([]byte, bool)
}

// DropFresh forgets the blobs st kept while indexing its last pack, if it keeps any.
func DropFresh(st any) {
	if s, ok := st.(*IndexingStorage); ok {
		s.DropFresh()
	}
}

// PacksIndexed counts the packs indexed here (not by go-git) in this process, for the tests.
var PacksIndexed atomic.Int64

// LargeFetch is how many objects a fetched pack has, at least, for a Repo's store to index it
// here (on all cores) rather than with go-git's single-threaded parser.
const LargeFetch = 1000

// NewRepoStorage returns the storage of an open checkout's git directory dot: go-git's
// object cache, and packs of LargeFetch objects or more (a clone, a large fetch) indexed as
// above.
func NewRepoStorage(dot billy.Filesystem) *IndexingStorage {
	return &IndexingStorage{
		// Pack files kept open between reads (go-git opens and closes the pack per object
		// read otherwise: a quarter of the reads of a 2,000-file sync); Repo.Close closes them.
		Storage:    filesystem.NewStorageWithOptions(dot, cache.NewObjectLRUDefault(), filesystem.Options{MaxOpenDescriptors: 16}),
		packDir:    filepath.Join(dot.Root(), "objects", "pack"),
		minObjects: LargeFetch,
		keepFresh:  freshLimit,
	}
}

// freshLimit bounds the blob contents a Repo's storage keeps from its last large fetch:
// 2,000 files of 6 KB are 12 MB.
const freshLimit = 32 << 20

// NewCloneStorage returns the storage for a clone into the git directory dot (a checkout's
// .git): packs indexed as above, and an object cache of cloneCache for writing the checkout.
func NewCloneStorage(dot billy.Filesystem) *IndexingStorage {
	return &IndexingStorage{
		Storage: filesystem.NewStorage(dot, cache.NewObjectLRU(cloneCache)),
		packDir: filepath.Join(dot.Root(), "objects", "pack"),
	}
}

// PackfileWriter implements storer.PackfileWriter.
func (s *IndexingStorage) PackfileWriter() (io.WriteCloser, error) {
	if s.minObjects > 0 {
		return &choosingWriter{s: s}, nil
	}
	return s.indexingWriter()
}

// choosingWriter reads a pack's header (12 bytes: signature, version, object count) and
// hands the pack to our indexer or to go-git's writer by its object count.
type choosingWriter struct {
	s    *IndexingStorage
	head []byte
	w    io.WriteCloser
}

func (c *choosingWriter) Write(p []byte) (int, error) {
	if c.w != nil {
		return c.w.Write(p)
	}
	need := 12 - len(c.head)
	if len(p) < need {
		c.head = append(c.head, p...)
		return len(p), nil
	}
	c.head = append(c.head, p[:need]...)
	if err := c.choose(); err != nil {
		return 0, err
	}
	if _, err := c.w.Write(c.head); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p[need:])
	return need + n, err
}

func (c *choosingWriter) choose() error {
	var err error
	if len(c.head) == 12 && bytes.Equal(c.head[:4], []byte("PACK")) && binary.BigEndian.Uint32(c.head[8:]) >= c.s.minObjects {
		c.w, err = c.s.indexingWriter()
	} else {
		c.w, err = c.s.Storage.PackfileWriter()
	}
	return err
}

func (c *choosingWriter) Close() error {
	if c.w == nil {
		if len(c.head) == 0 {
			return nil
		}
		if err := c.choose(); err != nil {
			return err
		}
		if _, err := c.w.Write(c.head); err != nil {
			_ = c.w.Close()
			return err
		}
	}
	return c.w.Close()
}

func (s *IndexingStorage) indexingWriter() (io.WriteCloser, error) {
	if err := os.MkdirAll(s.packDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.packDir, "tmp_pack_")
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	s.fresh = nil
	var fresh *freshBlobs
	if s.keepFresh > 0 {
		fresh = &freshBlobs{m: map[plumbing.Hash][]byte{}, limit: s.keepFresh}
	}
	w := &packWriter{f: f, pw: pw, done: make(chan error, 1), dir: s.packDir, fresh: fresh}
	w.onSaved = func() {
		s.Reindex()
		s.fresh = w.fresh
	}
	go func() {
		err := w.scan(pr)
		_ = pr.CloseWithError(err) // unblock Write if scanning failed
		if err == nil {
			_, _ = io.Copy(io.Discard, pr)
		}
		w.done <- err
	}()
	return w, nil
}

// packObj is what the indexer keeps per object: about 80 bytes, never its content.
type packObj struct {
	offset    int64
	parentOff int64         // base offset of an OFS delta; 0 otherwise
	parentRef plumbing.Hash // base of a REF delta
	hash      plumbing.Hash // zero until known
	typ       plumbing.ObjectType
	crc       uint32
}

func (o *packObj) isDelta() bool {
	return o.typ == plumbing.OFSDeltaObject || o.typ == plumbing.REFDeltaObject
}

// packWriter writes the pack to a temporary file and scans it as it arrives (first pass).
type packWriter struct {
	f       *os.File
	pw      *io.PipeWriter
	done    chan error
	dir     string
	onSaved func()
	written int64

	objs     []packObj
	checksum plumbing.Hash
	fresh    *freshBlobs // blobs decoded here, kept for the checkout; nil keeps none
}

func (w *packWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if err != nil {
		return n, err
	}
	if _, err := w.pw.Write(p); err != nil {
		return n, fmt.Errorf("index pack: %w", err)
	}
	return n, nil
}

// Close finishes the pack: second pass, index file, rename into place. An empty pack (nothing
// written) leaves nothing behind.
func (w *packWriter) Close() error {
	_ = w.pw.Close()
	scanErr := <-w.done
	tmp := w.f.Name()
	if err := w.f.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if w.written == 0 || errors.Is(scanErr, packfile.ErrEmptyPackfile) {
		return os.Remove(tmp)
	}
	if err := w.finish(tmp, scanErr); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("index pack: %w", err)
	}
	return nil
}

func (w *packWriter) finish(tmp string, scanErr error) error {
	if scanErr != nil {
		return scanErr
	}
	if err := resolveDeltas(tmp, w.objs, w.fresh); err != nil {
		return err
	}
	base := filepath.Join(w.dir, "pack-"+w.checksum.String())
	if err := writeIdx(base+".idx", w.objs, w.checksum); err != nil {
		return err
	}
	if err := os.Rename(tmp, base+".pack"); err != nil {
		return err
	}
	_ = os.Chmod(base+".pack", 0o444)
	PacksIndexed.Add(1)
	w.onSaved()
	return nil
}

// maxPrealloc bounds the slice capacity taken from a pack's declared object count.
const maxPrealloc = 1 << 20

// scan is the first pass: every object's offset, CRC and delta base, and the hash of each
// whole object, reading the pack once as it streams in.
func (w *packWriter) scan(r io.Reader) error {
	sc := packfile.NewScanner(r)
	_, count, err := sc.Header()
	if err != nil {
		return err
	}
	w.objs = make([]packObj, 0, min(int(count), maxPrealloc))
	for i := uint32(0); i < count; i++ {
		h, err := sc.NextObjectHeader()
		if err != nil {
			return err
		}
		o := packObj{offset: h.Offset, typ: h.Type}
		switch h.Type {
		case plumbing.OFSDeltaObject:
			o.parentOff = h.OffsetReference
			_, o.crc, err = sc.NextObject(io.Discard)
		case plumbing.REFDeltaObject:
			o.parentRef = h.Reference
			_, o.crc, err = sc.NextObject(io.Discard)
		case plumbing.BlobObject:
			if w.fresh == nil {
				o.hash, o.crc, err = hashObject(sc, h)
				break
			}
			var buf bytes.Buffer
			buf.Grow(int(min(h.Length, maxFreshBlob)))
			hasher := plumbing.NewHasher(h.Type, h.Length)
			_, o.crc, err = sc.NextObject(io.MultiWriter(hasher, &buf))
			o.hash = hasher.Sum()
			if err == nil {
				w.fresh.add(o.hash, buf.Bytes())
			}
		default:
			o.hash, o.crc, err = hashObject(sc, h)
		}
		if err != nil {
			return err
		}
		w.objs = append(w.objs, o)
	}
	w.checksum, err = sc.Checksum()
	return err
}

// maxFreshBlob is the preallocation bound for a kept blob's buffer.
const maxFreshBlob = 1 << 20

func hashObject(sc *packfile.Scanner, h *packfile.ObjectHeader) (plumbing.Hash, uint32, error) {
	hasher := plumbing.NewHasher(h.Type, h.Length)
	_, crc, err := sc.NextObject(hasher)
	return hasher.Sum(), crc, err
}

// deltaTree maps each base to the deltas made against it.
type deltaTree struct {
	byOffset map[int64][]int32
	byHash   map[plumbing.Hash][]int32
}

func newDeltaTree(objs []packObj) *deltaTree {
	t := &deltaTree{byOffset: map[int64][]int32{}, byHash: map[plumbing.Hash][]int32{}}
	for i := range objs {
		switch objs[i].typ {
		case plumbing.OFSDeltaObject:
			t.byOffset[objs[i].parentOff] = append(t.byOffset[objs[i].parentOff], int32(i))
		case plumbing.REFDeltaObject:
			t.byHash[objs[i].parentRef] = append(t.byHash[objs[i].parentRef], int32(i))
		}
	}
	return t
}

func (t *deltaTree) children(o *packObj) []int32 {
	c := t.byOffset[o.offset]
	if r := t.byHash[o.hash]; len(r) > 0 {
		c = append(c[:len(c):len(c)], r...)
	}
	return c
}

// resolveDeltas is the second pass: from each whole object with deltas against it, depth
// first, on GOMAXPROCS goroutines each with its own file handle.
func resolveDeltas(path string, objs []packObj, fresh *freshBlobs) error {
	tree := newDeltaTree(objs)
	roots := make(chan int, 64)
	workers := runtime.GOMAXPROCS(0)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- resolveWorker(path, objs, tree, roots, fresh)
		}()
	}
	for i := range objs {
		if !objs[i].isDelta() && len(tree.children(&objs[i])) > 0 {
			roots <- i
		}
	}
	close(roots)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	for i := range objs {
		if objs[i].hash.IsZero() {
			return fmt.Errorf("delta at offset %d: base not in the pack", objs[i].offset)
		}
	}
	return nil
}

func resolveWorker(path string, objs []packObj, tree *deltaTree, roots <-chan int, fresh *freshBlobs) (err error) {
	f, err := os.Open(path)
	if err != nil {
		for range roots {
		}
		return err
	}
	defer f.Close()
	rs := &resolver{sc: packfile.NewScanner(f), objs: objs, tree: tree, fresh: fresh}
	for i := range roots {
		if err != nil {
			continue // drain
		}
		var data []byte
		if data, err = rs.inflate(objs[i].offset); err == nil {
			err = rs.children(&objs[i], objs[i].typ, data)
		}
	}
	return err
}

type resolver struct {
	sc    *packfile.Scanner
	objs  []packObj
	tree  *deltaTree
	buf   bytes.Buffer
	fresh *freshBlobs
}

// inflate returns the inflated data of the object at offset (a delta's instructions).
func (rs *resolver) inflate(offset int64) ([]byte, error) {
	if _, err := rs.sc.SeekObjectHeader(offset); err != nil {
		return nil, err
	}
	rs.buf.Reset()
	if _, _, err := rs.sc.NextObject(&rs.buf); err != nil {
		return nil, err
	}
	return bytes.Clone(rs.buf.Bytes()), nil
}

// children resolves the deltas against the object o (of type typ, content data), depth
// first. The last delta of each object continues the loop instead of recursing, so a linear
// chain holds one object's content at a time, not the whole chain. Each object has one base,
// so no two goroutines ever write the same entry.
func (rs *resolver) children(o *packObj, typ plumbing.ObjectType, data []byte) error {
	for {
		kids := rs.tree.children(o)
		if len(kids) == 0 {
			return nil
		}
		for _, ci := range kids[:len(kids)-1] {
			c := &rs.objs[ci]
			content, err := rs.patch(c, typ, data)
			if err != nil {
				return err
			}
			if err := rs.children(c, typ, content); err != nil {
				return err
			}
		}
		last := &rs.objs[kids[len(kids)-1]]
		content, err := rs.patch(last, typ, data)
		if err != nil {
			return err
		}
		o, data = last, content
	}
}

// patch applies the delta c to base and records c's hash.
func (rs *resolver) patch(c *packObj, typ plumbing.ObjectType, base []byte) ([]byte, error) {
	delta, err := rs.inflate(c.offset)
	if err != nil {
		return nil, err
	}
	content, err := packfile.PatchDelta(base, delta)
	if err != nil {
		return nil, fmt.Errorf("delta at offset %d: %w", c.offset, err)
	}
	c.hash = plumbing.ComputeHash(typ, content)
	if typ == plumbing.BlobObject {
		rs.fresh.add(c.hash, content)
	}
	return content, nil
}

func writeIdx(path string, objs []packObj, checksum plumbing.Hash) error {
	var w idxfile.Writer
	if err := w.OnHeader(uint32(len(objs))); err != nil {
		return err
	}
	for i := range objs {
		w.Add(objs[i].hash, uint64(objs[i].offset), objs[i].crc)
	}
	if err := w.OnFooter(checksum); err != nil {
		return err
	}
	idx, err := w.Index()
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := idxfile.NewEncoder(f).Encode(idx); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chmod(path, 0o444)
}

// cloneCache is the object cache of the storage a clone writes its checkout from (go-git's
// default is 96 MiB). Delta bases shared between files make a cache worth having: on the
// benchmark repository 8 MiB doubled the checkout's time, 32 MiB matched 96 MiB's.
const cloneCache cache.FileSize = 32 << 20
