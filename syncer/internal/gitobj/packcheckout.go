package gitobj

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing"
)

// packLayout is what the indexer learnt of a pack it indexed: every object's offset, type,
// delta base and hash, in pack order, and which deltas are made against which base. A
// clone's storage keeps it for the clone's checkout (see walkBlobs) until DropLayout: about
// 100 bytes an object, never their contents.
//
// Why: in the packs git serves, most blobs of the tip are deltas against other blobs (on
// the benchmark's 5,000-file repository 4,902 of 5,001, in chains up to 50 deep). Read one
// by one by path through go-git, each read resolved its chain through go-git's object
// cache, which had to be large (32 MiB) to keep the checkout fast, and with the garbage
// collector's headroom that cache doubled the clone's peak RSS (98 MB against git's 46).
// Walked from the bases down, each object a checkout needs is decoded once and only the
// chain being walked is held.
type packLayout struct {
	path string
	objs []packObj
	tree *deltaTree
}

// layoutSource is a store that may keep the layout of the last pack it indexed
// (IndexingStorage of a clone).
type layoutSource interface {
	packLayout() *packLayout
}

func (s *IndexingStorage) packLayout() *packLayout { return s.layout }

// DropLayout forgets the layout of the last pack indexed.
func (s *IndexingStorage) DropLayout() { s.layout = nil }

// DropLayout forgets the layout st kept of the last pack it indexed, if it keeps one.
func DropLayout(st any) {
	if s, ok := st.(*IndexingStorage); ok {
		s.DropLayout()
	}
}

// walkBlobs calls fn once with the content of each blob of want that the pack holds, on
// GOMAXPROCS goroutines (fn must be safe for that; it must not keep or modify data). Each
// delta tree that leads to a wanted blob is walked depth first from its base, decoding only
// the objects on the way to wanted blobs, each once. Blobs of want not in the pack are not
// reported: the caller reads them otherwise.
func (l *packLayout) walkBlobs(want map[plumbing.Hash]bool, fn func(h plumbing.Hash, data []byte) error) error {
	objs := l.objs
	wanted := make([]bool, len(objs))
	needed := make([]bool, len(objs))
	seen := make(map[plumbing.Hash]bool, len(want))
	var byHash map[plumbing.Hash]int // REF delta bases, made at the first one
	for i := range objs {
		h := objs[i].hash
		if !want[h] || seen[h] {
			continue
		}
		seen[h] = true
		wanted[i] = true
		// Mark the way up to the base, stopping where an earlier blob's way joined it.
		for j := i; j >= 0 && !needed[j]; {
			needed[j] = true
			switch o := &objs[j]; o.typ {
			case plumbing.OFSDeltaObject:
				j = objAt(objs, o.parentOff)
			case plumbing.REFDeltaObject:
				if byHash == nil {
					byHash = make(map[plumbing.Hash]int, len(objs))
					for k := range objs {
						if _, ok := byHash[objs[k].hash]; !ok {
							byHash[objs[k].hash] = k
						}
					}
				}
				k, ok := byHash[o.parentRef]
				if !ok {
					k = -1
				}
				j = k
			default:
				j = -1
			}
		}
	}
	roots := make(chan int, 64)
	workers := runtime.GOMAXPROCS(0)
	errs := make(chan error, workers)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- l.walkWorker(roots, wanted, needed, &failed, fn)
		}()
	}
	for i := range objs {
		if needed[i] && !objs[i].isDelta() && objs[i].typ == plumbing.BlobObject {
			if failed.Load() {
				break
			}
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
	return nil
}

func (l *packLayout) walkWorker(roots <-chan int, wanted, needed []bool, failed *atomic.Bool, fn func(plumbing.Hash, []byte) error) (err error) {
	f, err := os.Open(l.path)
	if err != nil {
		failed.Store(true)
		for range roots {
		}
		return err
	}
	defer f.Close()
	rs, err := newResolver(f, l.objs, l.tree)
	if err != nil {
		failed.Store(true)
		for range roots {
		}
		return err
	}
	for i := range roots {
		if err != nil {
			continue // drain
		}
		var data []byte
		if data, err = rs.inflate(i); err == nil {
			err = rs.walk(i, data, wanted, needed, fn)
		}
		if err != nil {
			failed.Store(true)
		}
	}
	return err
}

// walk reports object i (content data, a buffer of the resolver's that it gives back) if
// wanted and goes down to its needed deltas, depth first; as in children, the last one
// continues the loop, so a chain holds one object's content at a time.
func (rs *resolver) walk(i int, data []byte, wanted, needed []bool, fn func(plumbing.Hash, []byte) error) error {
	for {
		o := &rs.objs[i]
		if wanted[i] {
			if err := fn(o.hash, data); err != nil {
				return err
			}
		}
		last := -1
		for _, c := range rs.tree.children(i, o.hash) {
			if !needed[c] {
				continue
			}
			if last >= 0 {
				content, err := rs.apply(last, data)
				if err != nil {
					return err
				}
				if err := rs.walk(last, content, wanted, needed, fn); err != nil {
					return err
				}
			}
			last = int(c)
		}
		if last < 0 {
			rs.put(data)
			return nil
		}
		content, err := rs.apply(last, data)
		if err != nil {
			return err
		}
		rs.put(data)
		i, data = last, content
	}
}
