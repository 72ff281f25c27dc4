package store_test

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sre-tools/deployer/store"
)

// A file of the current schema whose index bucket is gone (damage that
// renamed its key passes bbolt's check) is opened with the index rebuilt:
// the repo's runs are listed again and the next run is recorded (the
// first write panicked inside bbolt).
func TestOpenRestoresMissingIndexBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := mustOpenAt(t, path, store.Options{Timeout: time.Second})
	for range 3 {
		if _, err := s.CreateRun(store.Run{Repo: "fra"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("run_repo")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = mustOpenAt(t, path, store.Options{Timeout: time.Second})
	if _, err := s.CreateRun(store.Run{Repo: "fra"}); err != nil {
		t.Fatal(err)
	}
	runs, err := s.Runs("fra", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 4 {
		t.Fatalf("%d runs of fra listed after the index was lost, want 4 (3 rebuilt and the new one)", len(runs))
	}
}
