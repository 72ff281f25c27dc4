package syncer

import (
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/index"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
	"github.com/sre-tools/deployer/syncer/internal/watch"
)

// DefaultFullScanEvery is how often the dirty check scans every tracked file even though
// inotify reported nothing (Options.FullScanEvery): the safety net for what inotify cannot
// see (a write through a shared memory mapping, a mount bound inside the checkout).
const DefaultFullScanEvery = time.Hour

// dirtyWatch is the incremental dirty check's state. The source of truth is the full scan
// (gitobj.ScanDirty: one lstat per tracked file against the index). Between full scans, an
// inotify watcher on the checkout (syncer/internal/watch) says which paths were touched, and
// only those, with the paths found dirty last time, are checked, the same way. A full scan
// happens at Open, when there is no watcher (inotify unavailable or out of instances or
// watches), when events were lost (queue overflow, the checkout moved), when the index was
// read from its file again (someone else wrote it, or an error made us drop our copy), and
// every Options.FullScanEvery. TestIncrementalDirtyAgreesWithFullScan holds the two to the
// same answer over 1,000 random edit sequences.
type dirtyWatch struct {
	w        *watch.Watcher
	gen      uint64          // the index's decode generation at the last check
	known    map[string]bool // dirty at the last check: checked again every time
	lastFull time.Time
	noWatch  string // why there is no watcher, logged once per reason
	fulls    int    // full scans so far (for the tests)
	lastWhy  string // why the last full scan happened
}

func (r *Repo) fullScanEvery() time.Duration {
	if r.opts.FullScanEvery == 0 {
		return DefaultFullScanEvery
	}
	return r.opts.FullScanEvery
}

// scanDirty is the dirty check of every operation that may act on the worktree.
func (r *Repo) scanDirty() ([]gitobj.DirtyFile, error) {
	d := &r.dirty
	if d.w == nil {
		return r.fullScan("no watcher")
	}
	if every := r.fullScanEvery(); every < 0 || r.opts.Now().Sub(d.lastFull) >= every {
		return r.fullScan("periodic")
	}
	ch := d.w.Take()
	if ch.Lost != "" {
		return r.fullScan(ch.Lost)
	}
	if _, err := r.idx.Load(r.repo.Storer); err != nil {
		r.stopWatch()
		return nil, err
	}
	if r.idx.Gen() != d.gen {
		return r.fullScan("the index was read from disk")
	}
	dirty, _, err := gitobj.CheckDirty(r.repo.Storer, r.idx, r.opts.Dir, func(es []*index.Entry) []*index.Entry {
		return pickTouched(es, ch, d.known)
	})
	if err != nil {
		r.stopWatch()
		return nil, err
	}
	d.gen = r.idx.Gen()
	d.known = dirtySet(dirty)
	return dirty, nil
}

// fullScan starts a new watcher (before the scan, so that nothing after the scan is missed),
// then scans every tracked file.
func (r *Repo) fullScan(why string) ([]gitobj.DirtyFile, error) {
	d := &r.dirty
	r.stopWatch()
	if r.fullScanEvery() >= 0 {
		w, err := watch.New(r.opts.Dir, ".git")
		if err != nil {
			if d.noWatch != err.Error() {
				r.log.Warn().Err(err).Msg("no inotify watch on the checkout: every dirty check scans every tracked file")
				d.noWatch = err.Error()
			}
		} else {
			d.w, d.noWatch = w, ""
		}
	}
	d.fulls++
	d.lastWhy = why
	if why != "no watcher" && why != "periodic" {
		r.log.Debug().Str("why", why).Msg("full dirty scan")
	}
	dirty, _, err := gitobj.ScanDirty(r.repo.Storer, r.idx, r.opts.Dir)
	if err != nil {
		r.stopWatch()
		return nil, err
	}
	d.gen = r.idx.Gen()
	d.known = dirtySet(dirty)
	d.lastFull = r.opts.Now()
	return dirty, nil
}

// stopWatch drops the watcher: the next check scans in full.
func (r *Repo) stopWatch() {
	if r.dirty.w != nil {
		_ = r.dirty.w.Close()
		r.dirty.w = nil
	}
}

func dirtySet(dirty []gitobj.DirtyFile) map[string]bool {
	m := make(map[string]bool, len(dirty))
	for _, f := range dirty {
		m[f.Name] = true
	}
	return m
}

// pickTouched returns the entries (sorted by name) that ch touched or that were dirty: each
// touched path's entry and every entry below it, found by binary search, not by a walk of
// the index.
func pickTouched(es []*index.Entry, ch watch.Changes, known map[string]bool) []*index.Entry {
	if _, all := ch.Paths[""]; all {
		return es
	}
	seen := map[int]bool{}
	var out []*index.Entry
	add := func(i int) {
		if !seen[i] {
			seen[i] = true
			out = append(out, es[i])
		}
	}
	find := func(p string) int {
		return sort.Search(len(es), func(i int) bool { return es[i].Name >= p })
	}
	for p := range ch.Paths {
		i := find(p)
		if i < len(es) && es[i].Name == p {
			add(i)
		}
		// everything below p: names starting with p + "/", contiguous in sorted order
		for j := find(p + "/"); j < len(es) && strings.HasPrefix(es[j].Name, p+"/"); j++ {
			add(j)
		}
	}
	for p := range known {
		if i := find(p); i < len(es) && es[i].Name == p {
			add(i)
		}
	}
	return out
}
