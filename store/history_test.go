package store_test

import (
	"reflect"
	"testing"

	"github.com/sre-tools/deployer/store"
)

func TestInstanceRunsNewestFirstOfOneRepoAndInstance(t *testing.T) {
	s := mustOpenStore(t)
	mk := func(repo string, names ...string) store.RunID {
		t.Helper()
		r := store.Run{Repo: repo}
		for _, n := range names {
			r.Instances = append(r.Instances, store.InstanceOutcome{Name: n, Status: "succeeded", Reasons: []string{"instance file changed"}})
		}
		id, err := s.CreateRun(r)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a1 := mk("cc", "alpha")
	mk("cc", "beta")
	mk("other", "alpha") // same name, another repo
	a2 := mk("cc", "alpha", "beta")
	mk("cc")
	a3 := mk("cc", "gamma", "alpha")
	ids := func(runs []store.Run) []store.RunID {
		var out []store.RunID
		for _, r := range runs {
			out = append(out, r.ID)
		}
		return out
	}
	got, err := s.InstanceRuns("cc", "alpha", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.RunID{a3, a2, a1}; !reflect.DeepEqual(ids(got), want) {
		t.Fatalf("runs of cc/alpha = %v, want %v", ids(got), want)
	}
	if got[0].Instances[1].Reasons[0] != "instance file changed" {
		t.Errorf("reasons not kept: %+v", got[0].Instances)
	}
	if got, _ := s.InstanceRuns("cc", "alpha", 2); !reflect.DeepEqual(ids(got), []store.RunID{a3, a2}) {
		t.Errorf("limit 2: %v", ids(got))
	}
	if got, _ := s.InstanceRuns("c", "alpha", 0); len(got) != 0 {
		t.Errorf("repo c (a prefix of cc): %v, want none", ids(got))
	}
}

func TestRunJournalAndInstanceJournal(t *testing.T) {
	s := mustOpenStore(t)
	put := func(id, repo, instance, run string) {
		t.Helper()
		if _, err := s.PutJournal(store.JournalEntry{ID: id, Repo: repo, Instance: instance, File: "instances/" + instance + ".xml",
			Edits: []byte(`[]`), Run: run, State: store.JournalPending}); err != nil {
			t.Fatal(err)
		}
	}
	put("e1", "cc", "alpha", "7")
	put("e2", "cc", "beta", "7")
	put("e3", "cc", "alpha", "8")
	put("e4", "other", "alpha", "7")
	names := func(es []store.JournalEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	if got, _ := s.RunJournal(7, ""); !reflect.DeepEqual(names(got), []string{"e1", "e2", "e4"}) {
		t.Errorf("run 7: %v", names(got))
	}
	if got, _ := s.RunJournal(7, "beta"); !reflect.DeepEqual(names(got), []string{"e2"}) {
		t.Errorf("run 7 beta: %v", names(got))
	}
	if got, _ := s.InstanceJournal("cc", "alpha"); !reflect.DeepEqual(names(got), []string{"e1", "e3"}) {
		t.Errorf("cc/alpha: %v", names(got))
	}
}
