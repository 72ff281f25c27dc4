package store_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/sre-tools/deployer/store"
)

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := s.CreateRun(store.Run{Repo: "fra"})
	if err := s.SetRepo(store.RepoState{Name: "fra", Head: "h1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(id); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("after close got %v, want ErrClosed", err)
	}
	s = mustOpenAt(t, path, store.Options{})
	if s.Path() != path {
		t.Fatalf("Path got %q, want %q", s.Path(), path)
	}
	if r, err := s.Run(id); err != nil || r.Repo != "fra" {
		t.Fatalf("got %+v, %v; want the run", r, err)
	}
	if st, _ := s.Repo("fra"); st.Head != "h1" {
		t.Fatalf("got head %q, want h1", st.Head)
	}
}

func TestOpenTimesOutWhileAnotherHolderHasTheLock(t *testing.T) {
	s := mustOpenStore(t)
	_, err := store.Open(s.Path(), store.Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("schema"), []byte{0, 0, 0, 0, 0, 0, 0, 99})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := store.Open(path, store.Options{}); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("got %v, want ErrSchemaTooNew", err)
	}
}
