package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store"
)

func TestInstancesArePerRepo(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	for _, st := range []store.InstanceState{
		{Repo: "fra", Name: "b", Deployed: "c1"},
		{Repo: "fra", Name: "a", Deployed: "c1"},
		{Repo: "fra1", Name: "a", Deployed: "c9"}, // a repo whose name extends "fra"
		{Repo: "fra", Name: "a", Deployed: "c2", LastStatus: "succeeded", LastRun: 7},
	} {
		if err := s.SetInstance(st); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Instances("fra")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.InstanceState{
		{Repo: "fra", Name: "a", Deployed: "c2", LastStatus: "succeeded", LastRun: 7, Updated: clk.Now()},
		{Repo: "fra", Name: "b", Deployed: "c1", Updated: clk.Now()},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	all, _ := s.Instances("")
	if len(all) != 3 {
		t.Fatalf("all repos: got %d instances, want 3", len(all))
	}
	if err := s.SetInstance(store.InstanceState{Repo: "fra"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("nameless instance: got %v, want ErrInvalid", err)
	}
}

func TestRepoState(t *testing.T) {
	s := mustOpenStore(t)
	got, err := s.Repo("fra")
	if !errors.Is(err, store.ErrNotFound) || !reflect.DeepEqual(got, store.RepoState{}) {
		t.Fatalf("unknown repo: got %+v, %v; want zero value, ErrNotFound", got, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fra := store.RepoState{Name: "fra", Upstream: "u", Head: "h", Deployed: "d", SyncState: "clean", LastSync: at, LastSyncOK: at, LastError: "", LastRun: 3}
	ams := store.RepoState{Name: "ams", SyncState: "unreachable", LastError: "dial tcp: refused"}
	for _, st := range []store.RepoState{fra, ams} {
		if err := s.SetRepo(st); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Repo("fra"); !reflect.DeepEqual(got, fra) {
		t.Fatalf("got %+v, want %+v", got, fra)
	}
	all, _ := s.Repos()
	if want := []store.RepoState{ams, fra}; !reflect.DeepEqual(all, want) {
		t.Fatalf("got %+v, want %+v", all, want)
	}
}
