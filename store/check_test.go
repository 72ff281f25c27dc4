package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/sre-tools/deployer/store"
)

func TestCheckFile(t *testing.T) {
	path, _ := bigFixture(t)
	c, err := store.CheckFile(path)
	if err != nil || !c.OK() || c.SchemaVersion != store.SchemaVersion || c.Size == 0 {
		t.Fatalf("sound file: %+v, %v", c, err)
	}
	before, _ := os.ReadFile(path)

	cut := filepath.Join(t.TempDir(), "cut.db")
	os.WriteFile(cut, before[:len(before)*6/10], 0o600)
	c, err = store.CheckFile(cut)
	if !errors.Is(err, store.ErrCorrupt) || c.OK() || !strings.Contains(err.Error(), c.Problems[0]) {
		t.Fatalf("truncated file: %+v, %v; want ErrCorrupt naming the problem", c, err)
	}
	t.Logf("truncated: %v", err)

	garbage := filepath.Join(t.TempDir(), "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("garbage ", 2000)), 0o600)
	if _, err := store.CheckFile(garbage); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("garbage: %v, want ErrCorrupt", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if _, err := store.CheckFile(empty); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("empty file: %v, want ErrCorrupt", err)
	}
	if _, err := store.CheckFile(filepath.Join(t.TempDir(), "none.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("CheckFile changed the file")
	}
}

// The daemon's own file is locked: CheckFile gives up, and says so.
func TestCheckFileOfAnOpenStore(t *testing.T) {
	s := mustOpenStore(t)
	if _, err := store.CheckFile(s.Path()); !errors.Is(err, berrors.ErrTimeout) {
		t.Fatalf("file in use: %v, want ErrTimeout", err)
	}
}

func TestOpenReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: "viatris"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ro, err := store.OpenReadOnly(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ivs, err := ro.Interventions(store.InterventionFilter{})
	if err != nil || len(ivs) != 1 || ivs[0].Instance != "viatris" {
		t.Fatalf("interventions %+v, %v", ivs, err)
	}
	if _, _, err := ro.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: "other"}); !errors.Is(err, berrors.ErrDatabaseReadOnly) {
		t.Fatalf("write through a read-only store: %v", err)
	}
	ro.Close()

	db, _ := bolt.Open(path, 0o600, nil)
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), be(store.SchemaVersion+1))
	})
	db.Close()
	if _, err := store.OpenReadOnly(path, store.Options{}); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("newer schema: %v, want ErrSchemaTooNew", err)
	}
	if _, err := store.OpenReadOnly(filepath.Join(t.TempDir(), "none.db"), store.Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
}
