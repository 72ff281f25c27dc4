package store_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/sre-tools/deployer/store"
)

// A rollout is created once: a second create of its id returns the stored
// one untouched; updates are one transaction each and survive a reopen.
func TestRolloutCreateUpdateReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := s.Rollouts(0); err != nil || len(rs) != 0 {
		t.Fatalf("rollouts of a fresh file: %v, %v", rs, err)
	}
	if _, err := s.Rollout("r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rollout of a fresh file: %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateRollout("r1", func(*store.Rollout) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing rollout: %v, want ErrNotFound", err)
	}
	r, created, err := s.CreateRollout(store.Rollout{ID: "r1", State: "running", Spec: []byte(`{"a":1}`)})
	if err != nil || !created || r.Created.IsZero() {
		t.Fatalf("create: %+v %v %v", r, created, err)
	}
	again, created, err := s.CreateRollout(store.Rollout{ID: "r1", State: "other", Spec: []byte(`{"a":2}`)})
	if err != nil || created || again.State != "running" || string(again.Spec) != `{"a":1}` {
		t.Fatalf("second create: %+v %v %v, want the first one", again, created, err)
	}
	if _, err := s.UpdateRollout("r1", func(r *store.Rollout) error { r.ID = "r2"; return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("update changing the id: %v, want ErrInvalid", err)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateRollout("r1", func(r *store.Rollout) error { r.State = "x"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("update failing: %v", err)
	}
	if _, err := s.UpdateRollout("r1", func(r *store.Rollout) error { r.State = "paused"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateRollout(store.Rollout{ID: "r0", State: "succeeded"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenAt(t, path, store.Options{})
	got, err := s.Rollout("r1")
	if err != nil || got.State != "paused" {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	rs, err := s.Rollouts(0)
	if err != nil || len(rs) != 2 {
		t.Fatalf("list: %v %v", rs, err)
	}
	if one, _ := s.Rollouts(1); len(one) != 1 {
		t.Fatalf("limit 1: %v", one)
	}
}

// A rollout's version counts its writes through the Store: a failed or
// refused update does not count, a read answers the version it read, and
// a read after a write has the write's version.
func TestRolloutVersion(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := s.RolloutVersion("r1"); v != 0 {
		t.Fatalf("version of a missing rollout: %d", v)
	}
	r, _, err := s.CreateRollout(store.Rollout{ID: "r1", State: "running"})
	if err != nil || r.Version != 1 || s.RolloutVersion("r1") != 1 {
		t.Fatalf("create: version %d (%d) %v", r.Version, s.RolloutVersion("r1"), err)
	}
	if again, _, _ := s.CreateRollout(store.Rollout{ID: "r1"}); again.Version != 1 {
		t.Fatalf("second create: version %d", again.Version)
	}
	if _, err := s.UpdateRollout("r1", func(*store.Rollout) error { return errors.New("no") }); err == nil || s.RolloutVersion("r1") != 1 {
		t.Fatalf("failed update: version %d", s.RolloutVersion("r1"))
	}
	up, err := s.UpdateRollout("r1", func(r *store.Rollout) error { r.State = "paused"; return nil })
	if err != nil || up.Version != 2 {
		t.Fatalf("update: version %d %v", up.Version, err)
	}
	if got, err := s.Rollout("r1"); err != nil || got.Version != 2 || got.State != "paused" {
		t.Fatalf("read: %+v %v", got, err)
	}
	if s.RolloutVersion("r0") != 0 {
		t.Fatal("another rollout's version moved")
	}
}
