//go:build !linux

package watch

import "errors"

// Watcher is not available on this system: New always fails.
type Watcher struct{}

// New fails: only Linux (inotify) is supported.
func New(root, skip string) (*Watcher, error) {
	return nil, errors.New("watch: not supported on this system")
}

// Take reports everything lost.
func (w *Watcher) Take() Changes { return Changes{Lost: "not supported"} }

// Hold does nothing.
func (w *Watcher) Hold() func() { return func() {} }

// Close does nothing.
func (w *Watcher) Close() error { return nil }
