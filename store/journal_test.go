package store_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store"
)

func TestJournalLifecycle(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	edits := json.RawMessage(`[{"op":"set","path":"/instance/app","attr":"version","value":"4.3.0"}]`)
	e1, err := s.PutJournal(store.JournalEntry{Repo: "fra", Instance: "viatris", File: "instances/viatris.xml", BaseBlob: "b1", Edits: edits, Author: "deployer", Reason: "configure", Run: "7"})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	e2, _ := s.PutJournal(store.JournalEntry{Repo: "fra", Instance: "acme", File: "instances/acme.xml"})
	e3, _ := s.PutJournal(store.JournalEntry{Repo: "fra1", Instance: "acme", File: "instances/acme.xml"})
	if e1.ID == "" || e1.ID == e2.ID || e1.State != store.JournalPending || !e1.Created.Equal(e1.Updated) {
		t.Fatalf("got %+v / %+v", e1, e2)
	}
	got, _ := s.JournalEntry(e1.ID)
	if !reflect.DeepEqual(got, e1) {
		t.Fatalf("got %+v, want %+v", got, e1)
	}
	pendingIDs := func(repo string) []string {
		t.Helper()
		es, err := s.PendingJournal(repo)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		return ids
	}
	if got, want := pendingIDs("fra"), []string{e1.ID, e2.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("pending got %v, want %v", got, want)
	}
	clk.Advance(time.Second)
	if e, err := s.SetJournalState(e1.ID, store.JournalCommitted, "c1"); err != nil || e.Commit != "c1" || !e.Updated.Equal(clk.Now()) {
		t.Fatalf("committed got %+v, %v", e, err)
	}
	s.SetJournalState(e2.ID, store.JournalConflict, "")
	if got, want := pendingIDs("fra"), []string{e1.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after conflict got %v, want %v", got, want)
	}
	s.SetJournalState(e1.ID, store.JournalPushed, "")
	if got := pendingIDs("fra"); len(got) != 0 {
		t.Fatalf("after push got %v, want none", got)
	}
	if got, want := pendingIDs(""), []string{e3.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("all repos got %v, want %v", got, want)
	}
	pushed, _ := s.Journal("fra", store.JournalPushed)
	if len(pushed) != 1 || pushed[0].ID != e1.ID || pushed[0].Commit != "c1" || string(pushed[0].Edits) != string(edits) {
		t.Fatalf("pushed got %+v", pushed)
	}
	conflicts, _ := s.Journal("fra", store.JournalConflict)
	if len(conflicts) != 1 || conflicts[0].ID != e2.ID {
		t.Fatalf("conflicts got %+v", conflicts)
	}
	if _, err := s.SetJournalState("nope", store.JournalPushed, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown got %v, want ErrNotFound", err)
	}
}

func TestPutJournalReplacesAndKeepsCreated(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	e, _ := s.PutJournal(store.JournalEntry{ID: "edit-1", Repo: "fra", File: "f.xml"})
	clk.Advance(time.Hour)
	e.Edits = json.RawMessage(`{"x":1}`)
	e2, err := s.PutJournal(e)
	if err != nil || e2.ID != "edit-1" || !e2.Created.Equal(e.Created) || !e2.Updated.Equal(clk.Now()) {
		t.Fatalf("got %+v, %v", e2, err)
	}
	if _, err := s.PutJournal(store.JournalEntry{Repo: "fra"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("fileless entry got %v, want ErrInvalid", err)
	}
}

// An entry of a redone step attempt drops the pending, uncommitted entries
// it supersedes in the same transaction; a committed one (below the redo's
// base) and another repo's are left open.
func TestJournalSupersedes(t *testing.T) {
	s := mustOpenStore(t, store.Options{})
	put := func(e store.JournalEntry) store.JournalEntry {
		t.Helper()
		e, err := s.PutJournal(e)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	old := put(store.JournalEntry{Repo: "cc", Instance: "alpha", File: "instances/alpha.xml", Reason: "configure", Run: "13"})
	committed := put(store.JournalEntry{Repo: "cc", Instance: "alpha", File: "instances/alpha.xml", Reason: "configure", Run: "12"})
	if _, err := s.SetJournalState(committed.ID, store.JournalCommitted, "c0ffee"); err != nil {
		t.Fatal(err)
	}
	other := put(store.JournalEntry{Repo: "dd", Instance: "alpha", File: "instances/alpha.xml", Reason: "configure"})
	redo := put(store.JournalEntry{Repo: "cc", Instance: "alpha", File: "instances/alpha.xml", Reason: "configure", Run: "14",
		Supersedes: []string{old.ID, committed.ID, other.ID, "j-missing"}})
	got, _ := s.JournalEntry(old.ID)
	if got.State != store.JournalDropped || got.Note != store.SupersededNote+" (journal "+redo.ID+")" {
		t.Fatalf("superseded entry: %+v", got)
	}
	for _, id := range []string{committed.ID, other.ID, redo.ID} {
		if e, _ := s.JournalEntry(id); e.State == store.JournalDropped {
			t.Fatalf("entry %s dropped: %+v", id, e)
		}
	}
	open, _ := s.PendingJournal("cc")
	if len(open) != 2 || open[0].ID != committed.ID || open[1].ID != redo.ID {
		t.Fatalf("pending after the redo: %+v", open)
	}
	if e, err := s.DropJournal(redo.ID, "why"); err != nil || e.State != store.JournalDropped || e.Note != "why" {
		t.Fatalf("DropJournal: %+v %v", e, err)
	}
}
