package schedule_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sre-tools/deployer/schedule"
	"github.com/sre-tools/deployer/store"
)

// mustOpenState opens the State the daemon gives: the store, with the last
// fired times in a real bbolt file.
func mustOpenState(tb testing.TB) *store.Store {
	tb.Helper()
	st, err := store.Open(filepath.Join(tb.TempDir(), "state.db"), store.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatalf("open state: %v", err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close state: %v", err)
		}
	})
	return st
}

var _ schedule.State = (*store.Store)(nil)

// brokenState fails every read, as a corrupt store would.
type brokenState struct{}

var errBroken = errors.New("state unreadable")

func (brokenState) LastFired(string, string) (time.Time, bool, error) {
	return time.Time{}, false, errBroken
}
func (brokenState) SetLastFired(string, string, time.Time) error { return errBroken }
