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
