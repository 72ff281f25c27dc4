package daemon

import (
	"testing"

	"github.com/sre-tools/deployer/store"
)

// deployments drop-journal drops only the deployment's pending entries
// that were never committed; another deployment's, a committed one and a
// step's stay.
func TestDropDeploymentEntries(t *testing.T) {
	w, _, _ := newUnitWorker(t)
	put := func(instance, deployment string) store.JournalEntry {
		t.Helper()
		e, err := w.d.store.PutJournal(store.JournalEntry{Repo: "r", Instance: instance, File: "instances/" + instance + ".xml",
			BaseBlob: fakeHead, Edits: []byte(`[]`), Run: "1", Deployment: deployment})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	mine, committed, other, step := put("ia", "d1"), put("ib", "d1"), put("ic", "d2"), put("id", "")
	if _, err := w.d.store.SetJournalState(committed.ID, store.JournalPending, "c0ffee"); err != nil {
		t.Fatal(err)
	}
	dropped, err := w.dropDeploymentEntries("d1")
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 1 || dropped["ia"] != mine.ID {
		t.Fatalf("dropped %v, want only ia's %s", dropped, mine.ID)
	}
	e, _ := w.d.store.JournalEntry(mine.ID)
	if e.State != store.JournalDropped || e.Note == "" {
		t.Fatalf("dropped entry %+v", e)
	}
	for _, id := range []string{committed.ID, other.ID, step.ID} {
		if st := journalState(t, w, id); st != store.JournalPending {
			t.Errorf("entry %s is %s, want pending", id, st)
		}
	}
}
