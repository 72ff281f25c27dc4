package salvage

import (
	"encoding/binary"
	"fmt"
	"os"
)

// rawDB reads a bbolt file's B+trees with plain, bounds-checked reads. It
// validates the structure before bbolt maps the file (bbolt trusts page
// contents: a bad offset in a page makes it build pointers outside its
// memory map, which crashes the garbage collector, beyond any recover),
// and it reads what it can from a damaged file for salvage, skipping only
// the subtrees under bad pages.
type rawDB struct {
	f        *os.File
	size     int64
	pageSize uint64
	hwm      uint64
	seen     map[uint64]bool
	problems []string
	collect  bool // keep pairs (salvage) or only check (validation)
}

const (
	branchPageFlag    = 0x01
	branchElementSize = 16
)

// rawBucket is one bucket as read by rawDB.
type rawBucket struct {
	seq     uint64
	pairs   []pair                // plain key/values, in key order
	subs    map[string]*rawBucket // nested buckets
	damaged bool
}

// rawElem is one parsed page element.
type rawElem struct {
	bucket bool
	key    []byte
	value  []byte // leaf
	child  uint64 // branch
}

func newRawDB(f *os.File, m *bootMeta, collect bool) *rawDB {
	fi, _ := f.Stat()
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	return &rawDB{f: f, size: size, pageSize: m.pageSize, hwm: m.hwm, seen: map[uint64]bool{}, collect: collect}
}

func (r *rawDB) problem(format string, args ...any) {
	if len(r.problems) < MaxProblems {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// page reads page id with its overflow pages after checking its header.
func (r *rawDB) page(id uint64) ([]byte, error) {
	if id < 2 || id >= r.hwm {
		return nil, fmt.Errorf("page %d outside [2, %d)", id, r.hwm)
	}
	if r.seen[id] {
		return nil, fmt.Errorf("page %d: multiple references", id)
	}
	r.seen[id] = true
	head := make([]byte, pageHeaderSize)
	if _, err := r.f.ReadAt(head, int64(id*r.pageSize)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(head); got != id {
		return nil, fmt.Errorf("page %d: header says page %d", id, got)
	}
	overflow := uint64(le.Uint32(head[12:]))
	if id+overflow >= r.hwm {
		return nil, fmt.Errorf("page %d: overflow %d past the end", id, overflow)
	}
	buf := make([]byte, (overflow+1)*r.pageSize)
	if _, err := r.f.ReadAt(buf, int64(id*r.pageSize)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	for i := uint64(1); i <= overflow; i++ {
		r.seen[id+i] = true
	}
	return buf, nil
}

// parsePage checks and splits a branch or leaf page held in p.
func parsePage(p []byte) (branch bool, elems []rawElem, err error) {
	le := binary.LittleEndian
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	switch flags {
	case branchPageFlag:
		branch = true
	case leafPageFlag:
	default:
		return false, nil, fmt.Errorf("flags %#x: not a branch or leaf page", flags)
	}
	if pageHeaderSize+count*leafElementSize > len(p) {
		return branch, nil, fmt.Errorf("%d elements do not fit", count)
	}
	for i := 0; i < count; i++ {
		at := pageHeaderSize + i*leafElementSize
		e, err := parseElem(p, at, branch)
		if err != nil {
			return branch, nil, fmt.Errorf("element %d: %w", i, err)
		}
		elems = append(elems, e)
	}
	return branch, elems, nil
}

func parseElem(p []byte, at int, branch bool) (rawElem, error) {
	le := binary.LittleEndian
	if branch { // pos u32, ksize u32, pgid u64
		pos, ksize := uint64(le.Uint32(p[at:])), uint64(le.Uint32(p[at+4:]))
		if uint64(at)+pos+ksize > uint64(len(p)) {
			return rawElem{}, fmt.Errorf("key outside the page")
		}
		start := uint64(at) + pos
		return rawElem{key: p[start : start+ksize], child: le.Uint64(p[at+8:])}, nil
	}
	flags := le.Uint32(p[at:])
	pos, ksize, vsize := uint64(le.Uint32(p[at+4:])), uint64(le.Uint32(p[at+8:])), uint64(le.Uint32(p[at+12:]))
	if uint64(at)+pos+ksize+vsize > uint64(len(p)) {
		return rawElem{}, fmt.Errorf("key or value outside the page")
	}
	start := uint64(at) + pos
	return rawElem{bucket: flags&bucketLeafFlag != 0, key: p[start : start+ksize], value: p[start+ksize : start+ksize+vsize]}, nil
}

// readRoot reads the whole tree from the root bucket page.
func (r *rawDB) readRoot(root uint64) *rawBucket {
	b := &rawBucket{subs: map[string]*rawBucket{}}
	r.readNode(root, b, "root", 0)
	return b
}

// readNode reads page id of bucket b (named for messages), recursing into
// children and nested buckets; a bad page marks b damaged and is skipped.
func (r *rawDB) readNode(id uint64, b *rawBucket, name string, depth int) {
	if depth > 64 {
		b.damaged = true
		r.problem("bucket %s: tree deeper than 64 levels", name)
		return
	}
	p, err := r.page(id)
	var branch bool
	var elems []rawElem
	if err == nil {
		branch, elems, err = parsePage(p)
	}
	if err != nil {
		b.damaged = true
		r.problem("bucket %s: page %d: %v", name, id, err)
		return
	}
	for _, e := range elems {
		if branch {
			r.readNode(e.child, b, name, depth+1)
			continue
		}
		r.readElem(e, b, name)
	}
}

func (r *rawDB) readElem(e rawElem, b *rawBucket, name string) {
	if !e.bucket {
		if r.collect {
			b.pairs = append(b.pairs, pair{k: e.key, v: e.value})
		}
		return
	}
	sub := &rawBucket{subs: map[string]*rawBucket{}}
	subName := fmt.Sprintf("%s/%q", name, e.key)
	if len(e.value) < inBucketSize {
		b.damaged = true
		r.problem("bucket %s: header too short", subName)
		return
	}
	root := binary.LittleEndian.Uint64(e.value)
	sub.seq = binary.LittleEndian.Uint64(e.value[8:])
	if root != 0 {
		r.readNode(root, sub, subName, 0)
	} else {
		r.readInline(e.value[inBucketSize:], sub, subName)
	}
	b.subs[string(e.key)] = sub
	if sub.damaged && !r.collect {
		b.damaged = true
	}
}

// readInline reads a bucket stored inside its parent's value.
func (r *rawDB) readInline(p []byte, b *rawBucket, name string) {
	if len(p) < pageHeaderSize {
		b.damaged = true
		r.problem("bucket %s: inline page too short", name)
		return
	}
	branch, elems, err := parsePage(p)
	if err == nil && branch {
		err = fmt.Errorf("inline page is a branch")
	}
	if err != nil {
		b.damaged = true
		r.problem("bucket %s: inline page: %v", name, err)
		return
	}
	for _, e := range elems {
		r.readElem(e, b, name)
	}
}

// checkFreelistIDs checks that the freelist names only pages inside the
// file, once each, and none that the tree uses.
func (r *rawDB) checkFreelistIDs(m *bootMeta) {
	if m.freelist == pgidNoFreelist {
		return
	}
	p, err := r.page(m.freelist)
	if err != nil {
		r.problem("freelist: %v", err)
		return
	}
	le := binary.LittleEndian
	count, at := uint64(le.Uint16(p[10:])), uint64(pageHeaderSize)
	if count == pageCountSentinel {
		count, at = le.Uint64(p[pageHeaderSize:]), at+8
	}
	if at+count*8 > uint64(len(p)) {
		r.problem("freelist: %d ids do not fit", count)
		return
	}
	free := map[uint64]bool{}
	for i := uint64(0); i < count; i++ {
		id := le.Uint64(p[at+i*8:])
		if id < 2 || id >= r.hwm || free[id] || r.seen[id] {
			r.problem("freelist: page %d is out of range, listed twice or in use", id)
			return
		}
		free[id] = true
	}
}

// validate walks the whole file structurally; nil means bbolt can map it
// without meeting a bad offset.
func validate(f *os.File, m *bootMeta) error {
	r := newRawDB(f, m, false)
	r.readRoot(m.root)
	r.checkFreelistIDs(m)
	if len(r.problems) > 0 {
		return damaged(r.problems...)
	}
	return nil
}
