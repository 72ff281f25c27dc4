// Package watch tells the syncer which paths of a checkout were touched since it last asked,
// so that a dirty check lstats those paths instead of every tracked file. On Linux it uses
// inotify (golang.org/x/sys/unix, already a dependency; fsnotify would add a module and a
// goroutine-and-channel API whose overflow and rename handling we would have to rebuild
// anyway); elsewhere New fails and the syncer scans in full every time.
//
// What it cannot see, the caller covers with a full scan: it reports events lost (the kernel
// queue overflowed, the root was moved or deleted, a directory could not be watched) in
// Changes.Lost, and it never sees a write through a shared memory mapping or on another mount
// bound inside the checkout, which the syncer's periodic full scan catches.
package watch

import "strings"

// Changes are the paths touched since the previous Take.
type Changes struct {
	// Lost is why some events may be missing ("" when none are): the caller must scan in
	// full and start a new Watcher.
	Lost string
	// Paths are slash paths named by an event (a file or directory created, written,
	// deleted, renamed or whose attributes changed). Every one of them is also a prefix:
	// everything below it counts as touched too.
	Paths map[string]struct{}
}

// Touched reports whether name (a slash path) or a directory above it was touched.
func (c Changes) Touched(name string) bool {
	if _, ok := c.Paths[""]; ok {
		return true
	}
	for p := name; p != ""; {
		if _, ok := c.Paths[p]; ok {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return false
}

// maxPaths bounds the paths kept between two Takes: beyond it the Watcher reports Lost, and a
// full scan costs less than the set.
const maxPaths = 1 << 18
