package schedule_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sre-tools/deployer/schedule"
)

// boltState is the State the daemon would give: last-fired times in a real
// bbolt file.
type boltState struct{ db *bolt.DB }

var _ schedule.State = boltState{}

var bucket = []byte("schedules")

func mustOpenState(tb testing.TB) boltState {
	tb.Helper()
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "state.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatalf("open state: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close state: %v", err)
		}
	})
	return boltState{db}
}

func stateKey(repo, name string) []byte { return []byte(repo + "\x00" + name) }

func (s boltState) LastFired(repo, name string) (time.Time, bool, error) {
	var at time.Time
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		v := b.Get(stateKey(repo, name))
		if v == nil {
			return nil
		}
		ok = true
		return at.UnmarshalText(v)
	})
	return at, ok, err
}

func (s boltState) SetLastFired(repo, name string, at time.Time) error {
	v, err := at.MarshalText()
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.Put(stateKey(repo, name), v)
	})
}

// brokenState fails every read, as a corrupt store would.
type brokenState struct{}

var errBroken = errors.New("state unreadable")

func (brokenState) LastFired(string, string) (time.Time, bool, error) {
	return time.Time{}, false, errBroken
}
func (brokenState) SetLastFired(string, string, time.Time) error { return errBroken }
