package executor

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sre-tools/deployer/manifest"
)

// racyWindow is how recent a modification time must be for the stat data
// alone not to be trusted (file system timestamps are coarse).
const racyWindow = 50 * time.Millisecond

// fileStat is what a snapshot keeps of one file.
type fileStat struct {
	size   int64
	mtime  int64
	ctime  int64
	mode   fs.FileMode
	ino    uint64
	hash   [sha256.Size]byte
	hashed bool
}

// snapshot is the state of the files under a repository root, .git excluded.
type snapshot struct {
	root  string
	files map[string]fileStat
}

// takeSnapshot walks root and hashes the files whose modification time is too
// recent to tell a later change apart by stat data.
func takeSnapshot(root string) (*snapshot, error) {
	racy := time.Now().Add(-racyWindow).UnixNano()
	s := &snapshot{root: root, files: map[string]fileStat{}}
	prefix := filepath.Clean(root) + string(filepath.Separator)
	err := filepath.WalkDir(filepath.Clean(root), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		st, err := statFile(path)
		if err != nil {
			return err
		}
		if st.mtime >= racy {
			st.hash, st.hashed = hashFile(path)
		}
		s.files[filepath.ToSlash(path[len(prefix):])] = st
		return nil
	})
	return s, err
}

func statFile(path string) (fileStat, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileStat{}, err
	}
	st := fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
		st.ctime = sys.Ctim.Nano()
	}
	return st, nil
}

func hashFile(path string) ([sha256.Size]byte, bool) {
	var sum [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, false
	}
	copy(sum[:], h.Sum(nil))
	return sum, true
}

// changedSince returns the files that differ between s and a new snapshot.
func (s *snapshot) changedSince() ([]string, error) {
	after, err := takeSnapshot(s.root)
	if err != nil {
		return nil, err
	}
	var changed []string
	for path, b := range s.files {
		a, ok := after.files[path]
		if !ok || s.differs(path, b, a) {
			changed = append(changed, path)
		}
	}
	for path := range after.files {
		if _, ok := s.files[path]; !ok {
			changed = append(changed, path)
		}
	}
	sort.Strings(changed)
	return changed, nil
}

func (s *snapshot) differs(path string, b, a fileStat) bool {
	if b.size != a.size || b.mtime != a.mtime || b.ctime != a.ctime || b.mode != a.mode || b.ino != a.ino {
		return true
	}
	if !b.hashed || !b.mode.IsRegular() {
		return false
	}
	if !a.hashed {
		a.hash, a.hashed = hashFile(filepath.Join(s.root, filepath.FromSlash(path)))
	}
	return a.hash != b.hash
}

// writeCheck is one attempt's writes check: it collects what the step
// changed, through the job's hook, the tree watch, or snapshots.
type writeCheck struct {
	check  func(ctx context.Context, step manifest.Step) ([]string, error)
	watch  *treeWatch
	mark   uint64
	before *snapshot
}

// startWriteCheck prepares the check for one attempt.
func (jr *jobRun) startWriteCheck() (*writeCheck, error) {
	if jr.job.CheckWrites != nil {
		return &writeCheck{check: jr.job.CheckWrites}, nil
	}
	if jr.watch != nil {
		m, err := jr.watch.mark()
		if err == nil {
			return &writeCheck{watch: jr.watch, mark: m}, nil
		}
		jr.log.Warn().Err(err).Msg("tree watch unavailable, comparing snapshots")
	}
	before, err := takeSnapshot(jr.job.RepoRoot)
	if err != nil {
		return nil, err
	}
	return &writeCheck{before: before}, nil
}

func (w *writeCheck) changed(ctx context.Context, step manifest.Step) ([]string, error) {
	switch {
	case w.check != nil:
		return w.check(ctx, step)
	case w.watch != nil:
		return w.watch.changedSince(w.mark)
	}
	return w.before.changedSince()
}

// watches holds one tree watch per repository root for jobs that use the
// default writes check.
type watches map[string]*treeWatch

// watchJobs starts (or, with Options.KeepWatches and keep, reuses) the
// watches jobs need; a root that cannot be watched falls back to snapshots.
// The caller gives them back with releaseWatches.
func (e *Executor) watchJobs(jobs []Job, keep bool) watches {
	ws := watches{}
	for _, j := range jobs {
		if j.CheckWrites != nil || ws[j.RepoRoot] != nil {
			continue
		}
		if _, tried := ws[j.RepoRoot]; tried || e.noWatch {
			continue
		}
		var w *treeWatch
		var err error
		if keep && e.opts.KeepWatches {
			w, err = e.kept.acquire(j.RepoRoot, e.opts.WatchIdle)
		} else {
			w, err = newTreeWatch(j.RepoRoot)
		}
		if err != nil {
			e.log.Warn().Err(err).Str("repo_root", j.RepoRoot).Msg("tree watch unavailable, comparing snapshots")
		}
		ws[j.RepoRoot] = w
	}
	return ws
}

// releaseWatches gives back what watchJobs returned: a kept watch stays for
// the next call, any other is closed.
func (e *Executor) releaseWatches(ws watches) {
	for root, w := range ws {
		if w != nil && !e.kept.release(root, w) {
			w.close()
		}
	}
}

// Close closes the tree watches kept between calls (Options.KeepWatches);
// one in use is closed when its call ends.
func (e *Executor) Close() {
	e.kept.closeAll()
}

// keptWatches are the tree watches kept between calls, by repository root.
type keptWatches struct {
	mu     sync.Mutex
	m      map[string]*keptWatch
	closed bool
}

type keptWatch struct {
	w     *treeWatch
	id    [2]uint64 // the root's device and inode when the watch was set up
	users int
	idle  *time.Timer
	// idleAfter is how long it stays once no call uses it.
	idleAfter time.Duration
}

// acquire returns root's kept watch when it can still tell every change
// (no overflow, the same root directory, its barrier in place), else sets up
// a new one. A kept watch that cannot tell and is in use by another call is
// left to that call, and this one gets a watch of its own (not kept).
func (k *keptWatches) acquire(root string, idle time.Duration) (*treeWatch, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, err := dirID(root)
	if err != nil {
		return nil, fmt.Errorf("watch tree: %w", err)
	}
	c := k.m[root]
	if c != nil {
		switch {
		case c.id == id && c.w.usable():
			c.users++
			if c.idle != nil {
				c.idle.Stop()
				c.idle = nil
			}
			return c.w, nil
		case c.users > 0:
			return newTreeWatch(root)
		}
		delete(k.m, root)
		c.w.close()
	}
	if k.closed {
		return newTreeWatch(root)
	}
	w, err := newTreeWatch(root)
	if err != nil {
		return nil, err
	}
	if k.m == nil {
		k.m = map[string]*keptWatch{}
	}
	k.m[root] = &keptWatch{w: w, id: id, users: 1, idleAfter: idle}
	return w, nil
}

// release gives w back; it reports false when w is not a kept watch. A kept
// watch no call uses is closed after its idle time, or at once when the
// executor is closing.
func (k *keptWatches) release(root string, w *treeWatch) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.m[root]
	if c == nil || c.w != w {
		return false
	}
	if c.users--; c.users > 0 {
		return true
	}
	if k.closed {
		delete(k.m, root)
		w.close()
		return true
	}
	c.idle = time.AfterFunc(c.idleAfter, func() {
		k.mu.Lock()
		if k.m[root] != c || c.users > 0 {
			k.mu.Unlock()
			return
		}
		delete(k.m, root)
		k.mu.Unlock()
		c.w.close()
	})
	return true
}

func (k *keptWatches) closeAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	for root, c := range k.m {
		if c.users > 0 {
			continue
		}
		if c.idle != nil {
			c.idle.Stop()
		}
		delete(k.m, root)
		c.w.close()
	}
}

// dirID returns the device and inode of directory path.
func dirID(path string) ([2]uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return [2]uint64{}, err
	}
	return [2]uint64{uint64(st.Dev), st.Ino}, nil
}

// forbidden returns the files in changed that step may not change. Files in
// claimed (instance files that other attempts, overlapping this one, were
// allowed to write) are not attributed to it.
func forbidden(changed []string, step manifest.Step, instanceFile string, claimed map[string]bool) []string {
	var bad []string
	for _, f := range changed {
		switch {
		case f == instanceFile && step.Writes == "instance":
		case f != instanceFile && claimed[f]:
		default:
			bad = append(bad, f)
		}
	}
	return bad
}
