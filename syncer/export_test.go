package syncer

import (
	"time"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// DirtyBoth runs the dirty check as Sync does (incremental when it can be) and then a full
// scan, and returns the dirty paths of each ("D " before a deleted one) and why the first
// was a full scan ("" when it was incremental).
func (r *Repo) DirtyBoth() (inc, full []string, fullWhy string, err error) {
	before := r.dirty.fulls
	a, err := r.scanDirty()
	if err != nil {
		return nil, nil, "", err
	}
	if r.dirty.fulls != before {
		fullWhy = r.dirty.lastWhy
	}
	b, _, err := gitobj.ScanDirty(r.repo.Storer, r.idx, r.opts.Dir)
	return dirtyNames(a), dirtyNames(b), fullWhy, err
}

func dirtyNames(fs []gitobj.DirtyFile) []string {
	out := []string{}
	for _, f := range fs {
		if f.Deleted {
			out = append(out, "D "+f.Name)
		} else {
			out = append(out, f.Name)
		}
	}
	return out
}

// HoldWatch stops the reading of inotify events until the returned function is called.
func (r *Repo) HoldWatch() func() {
	if r.dirty.w == nil {
		return func() {}
	}
	return r.dirty.w.Hold()
}

// Watching reports whether the incremental dirty check has a watcher, and if not, why.
func (r *Repo) Watching() (bool, string) { return r.dirty.w != nil, r.dirty.noWatch }

// PacksIndexed is how many packs syncer's own indexer indexed in this process.
func PacksIndexed() int64 { return gitobj.PacksIndexed.Load() }

// ThinBases counts the delta bases read from the store to store a thin fetched pack.
func ThinBases() int64 { return gitobj.ThinBases.Load() }

// PacksUnpacked counts the fetched packs stored as loose objects.
func PacksUnpacked() int64 { return gitobj.PacksUnpacked.Load() }

// BasesFromWorktree counts the thin-pack delta bases read from the checkout's files.
func BasesFromWorktree() int64 { return gitobj.BasesFromWorktree.Load() }

// NoThinTreeBases keeps the tree cache from giving thin bases until the test ends.
func NoThinTreeBases(t interface{ Cleanup(func()) }) {
	noThinTreeBases.Store(true)
	t.Cleanup(func() { noThinTreeBases.Store(false) })
}

// TreeBasesFromCache counts the thin bases taken from the tree cache.
func TreeBasesFromCache() int64 { return gitobj.TreeBasesFromCache.Load() }

// ThinRetries counts the fetches made again without a thin pack.
func ThinRetries() int64 { return thinRetries.Load() }

// SetCloseWait sets how long a fetch waits for the remote's session to end, and returns the
// previous value.
func SetCloseWait(d time.Duration) time.Duration { old := closeWait; closeWait = d; return old }
