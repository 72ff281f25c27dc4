package gitobj

import (
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
)

// recentTrees keeps the content of the trees this process wrote last, by hash. A write-back
// commits one instance at a time, each commit with a new tree of the instances' directory,
// and its push then reads those trees back (BuildPack): from a loose object that is an open,
// an inflate and a hash of a tree as large as the directory, per commit, which made a
// deployment's cost per instance grow with the repository's size. Content-addressed, so one
// cache serves every repository; bounded in bytes.
var recentTrees = &treeRing{max: 32 << 20, data: map[plumbing.Hash][]byte{}}

type treeRing struct {
	mu    sync.Mutex
	max   int
	size  int
	order []plumbing.Hash // oldest first
	data  map[plumbing.Hash][]byte
	// starts are the offsets of each kept tree's entries, as its encoder wrote them: the
	// push's tree walk skips the entries two versions share without parsing them.
	starts map[plumbing.Hash][]int32
}

// put keeps b, the content of tree h, and starts, the offset of each of its entries (nil:
// not known); neither may change afterwards.
func (r *treeRing) put(h plumbing.Hash, b []byte, starts []int32) {
	if len(b) > r.max/4 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.data[h]; ok {
		return
	}
	r.data[h] = b
	if starts != nil {
		if r.starts == nil {
			r.starts = map[plumbing.Hash][]int32{}
		}
		r.starts[h] = starts
	}
	r.order = append(r.order, h)
	r.size += len(b) + 4*len(starts)
	for r.size > r.max && len(r.order) > 0 {
		old := r.order[0]
		r.order = r.order[1:]
		r.size -= len(r.data[old]) + 4*len(r.starts[old])
		delete(r.data, old)
		delete(r.starts, old)
	}
}

// entryStarts returns the offsets of kept tree h's entries, when known.
func (r *treeRing) entryStarts(h plumbing.Hash) ([]int32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.starts[h]
	return s, ok
}

// get returns the content of tree h if it is kept; the caller must not change it.
func (r *treeRing) get(h plumbing.Hash) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.data[h]
	return b, ok
}
