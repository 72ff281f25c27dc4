package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store"
)

func TestRaiseDeduplicatesPerKindAndScope(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	first := clk.Now()
	iv := store.Intervention{Kind: "remote-unreachable", Repo: "fra", Summary: "dial tcp: refused", NextAction: "deployer sync fra"}
	var got store.Intervention
	for i := 0; i < 50; i++ {
		var isNew bool
		var err error
		got, isNew, err = s.Raise(iv)
		if err != nil {
			t.Fatal(err)
		}
		if isNew != (i == 0) {
			t.Fatalf("poll %d: isNew %v, want %v", i, isNew, i == 0)
		}
		clk.Advance(time.Minute)
	}
	if got.Count != 50 || !got.FirstSeen.Equal(first) || !got.LastSeen.Equal(first.Add(49*time.Minute)) || got.State != store.StateOpen {
		t.Fatalf("got count %d first %v last %v state %s; want 50, %v, %v, open", got.Count, got.FirstSeen, got.LastSeen, got.State, first, first.Add(49*time.Minute))
	}
	// Other scopes and kinds are separate interventions.
	others := []store.Intervention{
		{Kind: "remote-unreachable", Repo: "ams"},
		{Kind: "auth-failed", Repo: "fra"},
		{Kind: "remote-unreachable", Repo: "fra", Instance: "viatris"},
	}
	for _, o := range others {
		if _, isNew, err := s.Raise(o); err != nil || !isNew {
			t.Fatalf("raise %+v: isNew %v err %v, want new", o, isNew, err)
		}
	}
	all, _ := s.Interventions(store.InterventionFilter{})
	if len(all) != 4 {
		t.Fatalf("got %d interventions, want 4", len(all))
	}
}

func TestRaiseRepeatUpdatesEvidenceButKeepsAcknowledgement(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	iv, _, _ := s.Raise(store.Intervention{Kind: "push-conflict", Repo: "fra", Instance: "viatris", Summary: "s1",
		Evidence: store.Evidence{Values: &store.ConflictValues{Base: "1", Ours: "2", Theirs: "3"}}})
	if _, err := s.Acknowledge(iv.ID, "alice", "looking"); err != nil {
		t.Fatal(err)
	}
	ev := store.Evidence{Values: &store.ConflictValues{Base: "1", Ours: "2", Theirs: "4"},
		Commits: []store.CommitRef{{Hash: "abc", Author: "bob <bob@x>", Subject: "bump"}}, File: "instances/viatris.xml", Element: "/instance/app@version"}
	got, isNew, err := s.Raise(store.Intervention{Kind: "push-conflict", Repo: "fra", Instance: "viatris", Evidence: ev})
	if err != nil || isNew {
		t.Fatalf("got isNew %v err %v, want repeat", isNew, err)
	}
	if got.ID != iv.ID || got.Count != 2 || got.State != store.StateAcknowledged || got.AckBy != "alice" || got.Summary != "s1" || !reflect.DeepEqual(got.Evidence, ev) {
		t.Fatalf("got %+v", got)
	}
	stored, _ := s.Intervention(iv.ID)
	if !reflect.DeepEqual(stored, got) {
		t.Fatalf("stored %+v, returned %+v", stored, got)
	}
}

func TestInterventionLifecycle(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	iv, _, _ := s.Raise(store.Intervention{Kind: "sync-dirty", Repo: "fra"})
	clk.Advance(time.Minute)
	ack, err := s.Acknowledge(iv.ID, "alice", "on it")
	if err != nil || ack.State != store.StateAcknowledged || !ack.AckAt.Equal(clk.Now()) || ack.AckNote != "on it" {
		t.Fatalf("ack got %+v, %v", ack, err)
	}
	clk.Advance(time.Minute)
	res, err := s.Resolve(iv.ID, "alice", "rescued and reset")
	if err != nil || res.State != store.StateResolved || res.ResolvedBy != "alice" || !res.ResolvedAt.Equal(clk.Now()) {
		t.Fatalf("resolve got %+v, %v", res, err)
	}
	if _, err := s.Resolve(iv.ID, "bob", "again"); !errors.Is(err, store.ErrResolved) {
		t.Fatalf("second resolve got %v, want ErrResolved", err)
	}
	if _, err := s.Acknowledge(iv.ID, "bob", ""); !errors.Is(err, store.ErrResolved) {
		t.Fatalf("ack after resolve got %v, want ErrResolved", err)
	}
	if _, err := s.Acknowledge(999, "bob", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ack unknown got %v, want ErrNotFound", err)
	}
	// The same condition again opens a new intervention.
	again, isNew, _ := s.Raise(store.Intervention{Kind: "sync-dirty", Repo: "fra"})
	if !isNew || again.ID == iv.ID || again.Count != 1 {
		t.Fatalf("after resolve got %+v isNew %v, want a new one", again, isNew)
	}
}

func TestResolveWhereClosesOnlyThatScope(t *testing.T) {
	s := mustOpenStore(t)
	repo, _, _ := s.Raise(store.Intervention{Kind: "remote-unreachable", Repo: "fra"})
	inst, _, _ := s.Raise(store.Intervention{Kind: "remote-unreachable", Repo: "fra", Instance: "x"})
	got, found, err := s.ResolveWhere("remote-unreachable", "fra", "", "fetch succeeded")
	if err != nil || !found || got.ID != repo.ID || got.ResolvedBy != store.ResolvedAutomatically || got.ResolvedHow != "fetch succeeded" {
		t.Fatalf("got %+v found %v err %v", got, found, err)
	}
	if _, found, _ := s.ResolveWhere("remote-unreachable", "fra", "", "again"); found {
		t.Fatal("second ResolveWhere found an open intervention")
	}
	if iv, _ := s.Intervention(inst.ID); iv.Resolved() {
		t.Fatal("instance-scope intervention was resolved too")
	}
}

func TestInterventionsFilterAndOrder(t *testing.T) {
	s := mustOpenStore(t)
	a, _, _ := s.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: "a"})
	b, _, _ := s.Raise(store.Intervention{Kind: "auth-failed", Repo: "fra"})
	c, _, _ := s.Raise(store.Intervention{Kind: "step-failed", Repo: "ams", Instance: "a"})
	d, _, _ := s.Raise(store.Intervention{Kind: "sync-dirty", Repo: "fra"})
	e, _, _ := s.Raise(store.Intervention{Kind: "sync-diverged", Repo: "fra"})
	s.Resolve(b.ID, "x", "y")
	s.Resolve(d.ID, "x", "y")
	ids := func(ivs []store.Intervention) []uint64 {
		var out []uint64
		for _, iv := range ivs {
			out = append(out, iv.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    store.InterventionFilter
		want []uint64
	}{
		{"open oldest first", store.InterventionFilter{}, []uint64{a.ID, c.ID, e.ID}},
		{"repo", store.InterventionFilter{Repo: "fra"}, []uint64{a.ID, e.ID}},
		{"kind", store.InterventionFilter{Kind: "step-failed"}, []uint64{a.ID, c.ID}},
		{"instance", store.InterventionFilter{Repo: "ams", Instance: "a"}, []uint64{c.ID}},
		{"with resolved newest first", store.InterventionFilter{Repo: "fra", IncludeResolved: true}, []uint64{a.ID, e.ID, d.ID, b.ID}},
		{"limit", store.InterventionFilter{IncludeResolved: true, Limit: 4}, []uint64{a.ID, c.ID, e.ID, d.ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Interventions(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), tt.want) {
				t.Fatalf("got %v, want %v", ids(got), tt.want)
			}
		})
	}
}

func TestSetNotified(t *testing.T) {
	s := mustOpenStore(t)
	iv, _, _ := s.Raise(store.Intervention{Kind: "auth-failed", Repo: "fra"})
	at := time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC)
	if err := s.SetNotified(iv.ID, at); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Intervention(iv.ID); !got.Notified.Equal(at) {
		t.Fatalf("got notified %v, want %v", got.Notified, at)
	}
}

func TestRaiseNeedsKindAndRepo(t *testing.T) {
	s := mustOpenStore(t)
	if _, _, err := s.Raise(store.Intervention{Repo: "fra"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
}

func TestInterventionListFollowsEveryWrite(t *testing.T) {
	s := mustOpenStore(t)
	count := func() int {
		t.Helper()
		ivs, err := s.Interventions(store.InterventionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(ivs)
	}
	a, _, _ := s.Raise(store.Intervention{Kind: "auth-failed", Repo: "fra", Evidence: store.Evidence{Extra: map[string]string{"k": "v"}, Values: &store.ConflictValues{Ours: "1"}}})
	if n := count(); n != 1 {
		t.Fatalf("after raise got %d, want 1", n)
	}
	// Changing what was returned must not change what is stored.
	got, _ := s.Interventions(store.InterventionFilter{})
	got[0].Evidence.Extra["k"] = "changed"
	got[0].Evidence.Values.Ours = "changed"
	got[0].Summary = "changed"
	again, _ := s.Interventions(store.InterventionFilter{})
	if again[0].Evidence.Extra["k"] != "v" || again[0].Evidence.Values.Ours != "1" || again[0].Summary != "" {
		t.Fatalf("a caller changed the stored intervention: %+v", again[0])
	}
	s.Raise(store.Intervention{Kind: "auth-failed", Repo: "fra"})
	if got, _ := s.Interventions(store.InterventionFilter{}); got[0].Count != 2 {
		t.Fatalf("after a repeat got count %d, want 2", got[0].Count)
	}
	s.Acknowledge(a.ID, "alice", "")
	if got, _ := s.Interventions(store.InterventionFilter{}); got[0].State != store.StateAcknowledged {
		t.Fatalf("after ack got %q", got[0].State)
	}
	s.ResolveWhere("auth-failed", "fra", "", "ok")
	if n := count(); n != 0 {
		t.Fatalf("after resolve got %d, want 0", n)
	}
}

func TestInterventionsConcurrentRaiseAndList(t *testing.T) {
	s := mustOpenStore(t)
	const writers, each = 4, 25
	done := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func(w int) {
			for i := 0; i < each; i++ {
				if _, _, err := s.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: fmt.Sprintf("%d-%d", w, i)}); err != nil {
					done <- err
					return
				}
				if _, err := s.Interventions(store.InterventionFilter{}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}(w)
	}
	for w := 0; w < writers; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Interventions(store.InterventionFilter{}); len(got) != writers*each {
		t.Fatalf("got %d, want %d", len(got), writers*each)
	}
}
