package store_test

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sre-tools/deployer/store"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// mustOpenStore opens a store in a fresh directory; at cleanup it closes it
// and runs bbolt's consistency check on the file.
func mustOpenStore(tb testing.TB, opts ...store.Options) *store.Store {
	tb.Helper()
	var o store.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	return mustOpenAt(tb, filepath.Join(tb.TempDir(), "state.db"), o)
}

func mustOpenAt(tb testing.TB, path string, o store.Options) *store.Store {
	tb.Helper()
	s, err := store.Open(path, o)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
		checkFile(tb, s.Path())
	})
	return s
}

// checkFile runs bbolt's consistency check on a closed state file.
func checkFile(tb testing.TB, path string) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		tb.Errorf("check %s: open: %v", path, err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			tb.Errorf("check %s: %v", path, err)
		}
		return nil
	})
	if err != nil {
		tb.Errorf("check %s: %v", path, err)
	}
}
