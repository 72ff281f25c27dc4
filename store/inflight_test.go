package store_test

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/sre-tools/deployer/store"
)

// In-flight records survive a reopen (a crash) and are listed per repo;
// EndStep removes exactly one.
func TestInflightStepsSurviveReopen(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path, store.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []store.InflightStep{
		{Repo: "fra", Instance: "b", File: "instances/b.xml", Step: "configure", Run: 3},
		{Repo: "fra", Instance: "a", File: "instances/a.xml", Step: "configure", Run: 3},
		{Repo: "fra2", Instance: "a", File: "instances/a.xml", Step: "configure", Run: 4},
		{Repo: "fra", Instance: "a", File: "instances/a.xml", Step: "render", Run: 3},
	} {
		if err := s.BeginStep(st); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.BeginStep(store.InflightStep{Repo: "fra"}); err == nil {
		t.Fatal("a record without instance and step was accepted")
	}
	if err := s.EndStep("fra", "a", "render"); err != nil {
		t.Fatal(err)
	}
	if err := s.EndStep("fra", "nope", "render"); err != nil {
		t.Fatalf("ending a step not in flight: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenAt(t, path, store.Options{Now: c.Now})
	got, err := s.InflightSteps("fra")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.InflightStep{
		{Repo: "fra", Instance: "a", File: "instances/a.xml", Step: "configure", Run: 3, Started: c.Now()},
		{Repo: "fra", Instance: "b", File: "instances/b.xml", Step: "configure", Run: 3, Started: c.Now()},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got, _ := s.InflightSteps("fr"); len(got) != 0 {
		t.Fatalf("a prefix of a repo name matched: %+v", got)
	}
}
