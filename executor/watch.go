package executor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// barrierWait bounds how long a barrier waits for the watcher to catch up.
const barrierWait = 10 * time.Second

// barrierFiles is how many barriers can be in flight at once.
const barrierFiles = 32

const watchMask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// errWatchOverflow is returned when the kernel dropped change events during
// an attempt, so its writes cannot be known.
var errWatchOverflow = errors.New("changes could not be tracked (inotify queue overflowed, or the tree was moved)")

// treeWatch records the files that change under a repository root (.git
// excluded) with inotify, so that a writes check costs what changed rather
// than the size of the tree. Attempts take a mark before they start and ask
// for the changes since it when they end; a barrier (a file created in a
// watched directory outside the tree) makes sure every event that happened
// before is read: a barrier touches a file there (one not in use by another
// barrier, so that the kernel cannot merge their events) and waits for its
// event.
type treeWatch struct {
	root    string
	f       *os.File
	barrier string      // directory outside the tree
	tokens  chan string // names of the barrier files not in use

	mu       sync.Mutex
	dirs     map[int32]string // watch descriptor → directory relative to root
	files    map[string]bool  // the files in the tree now, as far as events tell
	barWd    int32
	seq      uint64   // events recorded so far
	log      []change // recorded since the oldest open mark
	overflow uint64   // seq at the last overflow (0: never)
	marks    map[uint64]int
	waiters  map[string]chan struct{}
	done     chan struct{}
}

// change is one recorded event on a file; existed says whether the file
// existed just before it.
type change struct {
	seq     uint64
	path    string
	existed bool
}

// newTreeWatch starts watching root.
func newTreeWatch(root string) (*treeWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch tree: %w", err)
	}
	w := &treeWatch{
		root: filepath.Clean(root), f: os.NewFile(uintptr(fd), "inotify"),
		dirs: map[int32]string{}, files: map[string]bool{}, marks: map[uint64]int{}, waiters: map[string]chan struct{}{}, done: make(chan struct{}),
	}
	if err := w.setup(); err != nil {
		w.f.Close()
		if w.barrier != "" {
			os.RemoveAll(w.barrier)
		}
		return nil, fmt.Errorf("watch tree: %w", err)
	}
	go w.read()
	return w, nil
}

func (w *treeWatch) setup() error {
	dir, err := os.MkdirTemp("", "deployer-watch-*")
	if err != nil {
		return err
	}
	w.barrier = dir
	w.tokens = make(chan string, barrierFiles)
	for i := range barrierFiles {
		name := "b" + strconv.Itoa(i)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			return err
		}
		w.tokens <- name
	}
	wd, err := unix.InotifyAddWatch(int(w.f.Fd()), dir, unix.IN_ATTRIB)
	if err != nil {
		return err
	}
	w.barWd = int32(wd)
	files, err := w.addTree("")
	for _, f := range files {
		w.files[f] = true
	}
	return err
}

// addTree watches rel and the directories under it, and returns the files
// found there.
func (w *treeWatch) addTree(rel string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(filepath.Join(w.root, filepath.FromSlash(rel)), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if rel != "" && errors.Is(err, fs.ErrNotExist) {
				return nil // gone again already
			}
			return err
		}
		r := filepath.ToSlash(relTo(w.root, p))
		if !d.IsDir() {
			files = append(files, r)
			return nil
		}
		if d.Name() == ".git" {
			return filepath.SkipDir
		}
		wd, err := unix.InotifyAddWatch(int(w.f.Fd()), p, watchMask)
		if err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		w.dirs[int32(wd)] = r
		return nil
	})
	return files, err
}

func relTo(root, p string) string {
	if p == root {
		return ""
	}
	return p[len(root)+1:]
}

// usable reports whether the watch still tells every change: no overflow
// (or loss of the root) so far, its reader running and its barrier in place.
func (w *treeWatch) usable() bool {
	select {
	case <-w.done:
		return false
	default:
	}
	w.mu.Lock()
	lost := w.overflow != 0
	w.mu.Unlock()
	if lost {
		return false
	}
	_, err := os.Stat(w.barrier)
	return err == nil
}

// close stops the watch.
func (w *treeWatch) close() {
	w.f.Close()
	<-w.done
	os.RemoveAll(w.barrier)
}

// read records events until the watch is closed.
func (w *treeWatch) read() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		w.mu.Lock()
		w.parse(buf[:n])
		w.mu.Unlock()
	}
}

// parse records a buffer of events; w.mu is held.
func (w *treeWatch) parse(buf []byte) {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		name := string(buf[unix.SizeofInotifyEvent:end])
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		buf = buf[end:]
		w.event(ev.Wd, ev.Mask, name)
	}
}

func (w *treeWatch) event(wd int32, mask uint32, name string) {
	switch {
	case mask&unix.IN_Q_OVERFLOW != 0:
		w.seq++
		w.overflow = w.seq
		return
	case wd == w.barWd:
		if ch, ok := w.waiters[name]; ok {
			close(ch)
			delete(w.waiters, name)
		}
		return
	case mask&unix.IN_IGNORED != 0:
		delete(w.dirs, wd)
		return
	}
	dir, ok := w.dirs[wd]
	if !ok || name == ".git" {
		return
	}
	if name == "" { // the directory itself: its parent reports it, unless it is the root
		if dir == "" && mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
			w.seq++
			w.overflow = w.seq // the whole tree went away: nothing can be told
		}
		return
	}
	rel := path.Join(dir, name)
	if mask&unix.IN_ISDIR == 0 {
		w.record(rel, mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) == 0)
		return
	}
	switch {
	case mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		// Files may have been put there before the watch was added.
		files, _ := w.addTree(rel)
		for _, f := range files {
			w.record(f, true)
		}
	case mask&unix.IN_MOVED_FROM != 0:
		prefix := rel + "/"
		for f := range w.files {
			if strings.HasPrefix(f, prefix) {
				w.record(f, false)
			}
		}
	}
}

// record notes an event on file p, which exists after it or not.
func (w *treeWatch) record(p string, existsAfter bool) {
	w.seq++
	if len(w.marks) > 0 {
		w.log = append(w.log, change{seq: w.seq, path: p, existed: w.files[p]})
	}
	if existsAfter {
		w.files[p] = true
	} else {
		delete(w.files, p)
	}
}

// sync returns once every event that happened before it has been recorded.
func (w *treeWatch) sync() error {
	t := time.NewTimer(barrierWait)
	var name string
	select {
	case name = <-w.tokens:
	case <-t.C:
		return fmt.Errorf("watch barrier: busy for %s", barrierWait)
	}
	ch := make(chan struct{})
	w.mu.Lock()
	w.waiters[name] = ch
	w.mu.Unlock()
	now := time.Now()
	if err := os.Chtimes(filepath.Join(w.barrier, name), now, now); err != nil {
		w.mu.Lock()
		delete(w.waiters, name)
		w.mu.Unlock()
		w.tokens <- name
		return fmt.Errorf("watch barrier: %w", err)
	}
	defer t.Stop()
	select {
	case <-ch:
		w.tokens <- name
		return nil
	case <-w.done:
		return errors.New("watch barrier: watch closed")
	case <-t.C:
		// The file stays out of the pool: its event may still come.
		w.mu.Lock()
		delete(w.waiters, name)
		w.mu.Unlock()
		return fmt.Errorf("watch barrier: no event within %s", barrierWait)
	}
}

// mark returns a position to ask for later changes from.
func (w *treeWatch) mark() (uint64, error) {
	if err := w.sync(); err != nil {
		return 0, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.marks[w.seq]++
	return w.seq, nil
}

// changedSince returns the sorted paths that changed since m, and releases m.
// A file that did not exist at m and does not exist now (a temporary file)
// is not a change.
func (w *treeWatch) changedSince(m uint64) ([]string, error) {
	err := w.sync()
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.release(m)
	if err != nil {
		return nil, err
	}
	if w.overflow > m {
		return nil, errWatchOverflow
	}
	existed := map[string]bool{} // at m: before the first event since m
	i := sort.Search(len(w.log), func(i int) bool { return w.log[i].seq > m })
	for _, c := range w.log[i:] {
		if _, seen := existed[c.path]; !seen {
			existed[c.path] = c.existed
		}
	}
	changed := make([]string, 0, len(existed))
	for p, e := range existed {
		if e || w.files[p] {
			changed = append(changed, p)
		}
	}
	sort.Strings(changed)
	return changed, nil
}

// release drops mark m and the log entries no open mark needs; w.mu is held.
func (w *treeWatch) release(m uint64) {
	if w.marks[m]--; w.marks[m] <= 0 {
		delete(w.marks, m)
	}
	oldest, any := uint64(0), false
	for k := range w.marks {
		if !any || k < oldest {
			oldest, any = k, true
		}
	}
	if !any {
		w.log = w.log[:0]
		return
	}
	i := sort.Search(len(w.log), func(i int) bool { return w.log[i].seq > oldest })
	w.log = append(w.log[:0], w.log[i:]...)
}
