//go:build linux

package watch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const mask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW

// Watcher records the paths touched under a root. A goroutine reads the inotify queue as
// events arrive (so that a burst of the syncer's own writes does not overflow the kernel's
// queue between two checks) and Take reads whatever is left, under the same lock: every event
// of a change made before Take was called is in what Take returns.
type Watcher struct {
	root string
	skip string // a name directly under root that is not watched (".git")
	fd   int
	wake int // eventfd: Close wakes the reader with it

	mu    sync.Mutex
	dirs  map[int32]string // watch descriptor → slash path of the directory ("" is root)
	paths map[string]struct{}
	lost  string
	buf   []byte
	done  chan struct{}
}

// New watches every directory under root (not following symlinks, not skip directly under
// root). The caller scans in full after New returns: changes before it are not reported.
func New(root, skip string) (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	w := &Watcher{
		root: filepath.Clean(root), skip: skip, fd: fd, wake: wake,
		dirs: map[int32]string{}, paths: map[string]struct{}{},
		buf: make([]byte, 64<<10), done: make(chan struct{}),
	}
	if err := w.addTree(""); err != nil {
		_ = unix.Close(fd)
		_ = unix.Close(wake)
		return nil, err
	}
	go w.loop()
	return w, nil
}

// addTree watches the directory rel and every directory below it. A directory that vanished
// meanwhile is skipped (its parent's event covers it); any other failure (the watch limit,
// max_user_watches) is returned.
func (w *Watcher) addTree(rel string) error {
	full := w.root
	if rel != "" {
		full = filepath.Join(w.root, filepath.FromSlash(rel))
	}
	wd, err := unix.InotifyAddWatch(w.fd, full, mask)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("watch %s: %w", full, err)
	}
	w.dirs[int32(wd)] = rel // a directory moved within the tree keeps its descriptor: renamed here
	ents, err := os.ReadDir(full)
	if err != nil {
		return nil // gone or unreadable: its own events (or its parent's) say so
	}
	for _, e := range ents {
		if !e.IsDir() || (rel == "" && e.Name() == w.skip) {
			continue
		}
		if err := w.addTree(join(rel, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// batchWaitMS is how long loop lets events gather after the first one (milliseconds).
const batchWaitMS = 2

// loop reads events as they arrive until Close.
func (w *Watcher) loop() {
	defer close(w.done)
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}, {Fd: int32(w.wake), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		_, err := unix.Poll(fds, -1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			w.mu.Lock()
			w.setLost("poll: " + err.Error())
			w.mu.Unlock()
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents != 0 {
			// Let events gather for a moment before reading them: a checkout move of 2,000
			// files queues 4,000 events, and waking for each one cost the move's goroutines a
			// core (Take reads what is queued itself, so nothing waits on this loop). Close
			// still ends the wait at once.
			wake := fds[1:]
			wake[0].Revents = 0
			if n, _ := unix.Poll(wake, batchWaitMS); n > 0 && wake[0].Revents != 0 {
				return
			}
			w.mu.Lock()
			w.read()
			w.mu.Unlock()
		}
	}
}

func (w *Watcher) setLost(why string) {
	if w.lost == "" {
		w.lost = why
	}
}

// maxReadTime bounds one read call: events arriving without pause (something renaming a
// directory back and forth in the checkout, each rename a tree to add) kept the reader
// holding w.mu for good, and Take (a sync's dirty check) waiting on it.
const maxReadTime = 50 * time.Millisecond

// read reads and records the queued events, for maxReadTime at most; it reports whether it
// read them all. w.mu is held.
func (w *Watcher) read() bool {
	deadline := time.Now().Add(maxReadTime)
	for {
		if time.Now().After(deadline) {
			return false
		}
		n, err := unix.Read(w.fd, w.buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				w.setLost("read: " + err.Error())
			}
			return true
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&w.buf[off]))
			nameb := w.buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			name := ""
			if i := indexNUL(nameb); i >= 0 {
				name = string(nameb[:i])
			} else {
				name = string(nameb)
			}
			w.event(ev.Wd, ev.Mask, name)
		}
	}
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// event records one event. w.mu is held.
func (w *Watcher) event(wd int32, m uint32, name string) {
	if m&unix.IN_Q_OVERFLOW != 0 {
		w.setLost("the inotify queue overflowed")
		return
	}
	if w.lost != "" {
		return // the caller scans in full and starts a new watcher: the events are drained
	}
	dir, ok := w.dirs[wd]
	if !ok {
		return // a watch removed since: its directory's parent reported it
	}
	if m&unix.IN_IGNORED != 0 {
		delete(w.dirs, wd)
		if dir == "" {
			w.setLost("the checkout directory was moved or deleted")
		}
		return
	}
	if name == "" { // the watched directory itself
		if dir == "" && m&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
			w.setLost("the checkout directory was moved or deleted")
			return
		}
		w.touch(dir)
		return
	}
	if dir == "" && name == w.skip {
		return
	}
	p := join(dir, name)
	w.touch(p)
	if m&unix.IN_ISDIR != 0 && m&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
		if err := w.addTree(p); err != nil {
			w.setLost(err.Error())
		}
	}
}

func (w *Watcher) touch(p string) {
	if len(w.paths) >= maxPaths {
		w.setLost("too many paths touched")
		return
	}
	w.paths[p] = struct{}{}
}

// Take returns the paths touched since the previous Take (or New) and starts a new set.
func (w *Watcher) Take() Changes {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.read() {
		// What is still queued happened before this Take: the caller must scan it all.
		w.setLost("inotify events arrive faster than they are read")
	}
	c := Changes{Lost: w.lost, Paths: w.paths}
	w.paths = map[string]struct{}{}
	return c
}

// Hold stops the reading of events until the returned function is called: the tests use it
// to overflow the kernel's queue.
func (w *Watcher) Hold() func() {
	w.mu.Lock()
	return w.mu.Unlock
}

// Close stops watching.
func (w *Watcher) Close() error {
	var one = [8]byte{1}
	_, _ = unix.Write(w.wake, one[:])
	<-w.done
	err := unix.Close(w.fd)
	_ = unix.Close(w.wake)
	return err
}
