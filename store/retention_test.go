package store_test

import (
	"reflect"
	"testing"
	"time"

	deployer "github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

func TestPruneRunsByCountPerRepoAndAge(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	// fra: 10 runs a day apart, the oldest still running; ams: 2 recent runs.
	var fra []store.RunID
	for i := 0; i < 10; i++ {
		st := store.RunSucceeded
		if i == 0 {
			st = store.RunRunning
		}
		id, _ := s.CreateRun(store.Run{Repo: "fra", Status: st})
		s.AddStep(store.StepRecord{Run: id, StepResult: deployer.StepResult{Step: "x"}})
		fra = append(fra, id)
		clk.Advance(24 * time.Hour)
	}
	s.CreateRun(store.Run{Repo: "ams", Status: store.RunFailed})
	s.CreateRun(store.Run{Repo: "ams", Status: store.RunFailed})

	st, err := s.Prune(store.Retention{Runs: store.Limit{MaxCount: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Runs != 4 {
		t.Fatalf("pruned %d runs by count, want 4 (fra 1-4; the running one stays)", st.Runs)
	}
	runs, _ := s.Runs("fra", 0)
	if len(runs) != 6 || runs[5].ID != fra[0] || runs[4].ID != fra[5] {
		t.Fatalf("fra kept %d runs, oldest %d; want 6 with the running run", len(runs), runs[len(runs)-1].ID)
	}
	if ams, _ := s.Runs("ams", 0); len(ams) != 2 {
		t.Fatalf("ams kept %d, want 2", len(ams))
	}
	if steps, _ := s.Steps(fra[1]); len(steps) != 0 {
		t.Fatalf("steps of a pruned run survive: %+v", steps)
	}
	if steps, _ := s.Steps(fra[9]); len(steps) != 1 {
		t.Fatalf("steps of a kept run: got %d, want 1", len(steps))
	}
	// By age: fra runs 5..9 started 5..9 days after the first; now is day 10.
	st, _ = s.Prune(store.Retention{Runs: store.Limit{MaxAge: 72 * time.Hour}})
	if st.Runs != 2 {
		t.Fatalf("pruned %d runs by age, want 2 (days 5 and 6; day 7 is exactly 72h old)", st.Runs)
	}
	if ids, _ := s.InterruptRunning(); len(ids) != 1 || ids[0] != fra[0] {
		t.Fatalf("the running run must survive retention, got %v", ids)
	}
}

func TestPruneKeepsUnsettledJournalAndUnresolvedAndUnsent(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	j, _ := s.PutJournal(store.JournalEntry{Repo: "fra", File: "f.xml", State: store.JournalCommitted})
	open, _, _ := s.Raise(store.Intervention{Kind: "auth-failed", Repo: "fra"})
	gone, _, _ := s.Raise(store.Intervention{Kind: "sync-dirty", Repo: "fra"})
	s.Resolve(gone.ID, "a", "b")
	sent, _ := s.Enqueue(store.Message{Channel: "slack"})
	unsent, _ := s.Enqueue(store.Message{Channel: "slack"})
	s.MarkSent(sent.DeliveryID)
	done, _ := s.PutDeployment(store.Deployment{Repo: "fra", Finished: clk.Now()})
	running, _ := s.PutDeployment(store.Deployment{Repo: "fra"})
	clk.Advance(365 * 24 * time.Hour)

	st, err := s.Prune(store.DefaultRetention())
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.PruneStats{Interventions: 1, Deployments: 1, Messages: 1}); st != want {
		t.Fatalf("got %+v, want %+v", st, want)
	}
	if _, err := s.JournalEntry(j.ID); err != nil {
		t.Fatalf("journal entry pruned: %v", err)
	}
	if _, err := s.Intervention(open.ID); err != nil {
		t.Fatalf("open intervention pruned: %v", err)
	}
	if _, err := s.Intervention(gone.ID); err == nil {
		t.Fatal("resolved intervention kept")
	}
	if p, _ := s.Pending(0); len(p) != 1 || p[0].DeliveryID != unsent.DeliveryID {
		t.Fatalf("pending got %+v", p)
	}
	if _, err := s.Message(sent.DeliveryID); err == nil {
		t.Fatal("sent message kept")
	}
	if _, err := s.Deployment(running.ID); err != nil {
		t.Fatalf("running deployment pruned: %v", err)
	}
	if _, err := s.Deployment(done.ID); err == nil {
		t.Fatal("finished deployment kept")
	}
}

func TestPruneResolvedInterventionsByCount(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	var resolved []uint64
	for i := 0; i < 5; i++ {
		iv, _, _ := s.Raise(store.Intervention{Kind: "sync-dirty", Repo: "fra"})
		clk.Advance(time.Minute)
		s.Resolve(iv.ID, "a", "b")
		resolved = append(resolved, iv.ID)
	}
	open, _, _ := s.Raise(store.Intervention{Kind: "sync-dirty", Repo: "fra"})
	st, err := s.Prune(store.Retention{Interventions: store.Limit{MaxCount: 2}})
	if err != nil || st.Interventions != 3 {
		t.Fatalf("pruned %d, %v; want 3", st.Interventions, err)
	}
	all, _ := s.Interventions(store.InterventionFilter{IncludeResolved: true})
	var ids []uint64
	for _, iv := range all {
		ids = append(ids, iv.ID)
	}
	if want := []uint64{open.ID, resolved[4], resolved[3]}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("kept %v, want %v (the open one and the two newest resolved)", ids, want)
	}
}

// Settled journal entries (pushed, dropped) go by age and count; pending,
// committed and conflict entries stay however old.
func TestPruneSettledJournal(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	keep := map[string]bool{}
	for _, st := range []string{store.JournalPending, store.JournalCommitted, store.JournalConflict} {
		e, _ := s.PutJournal(store.JournalEntry{Repo: "fra", File: "k.xml", State: st})
		keep[e.ID] = true
	}
	var settled []string
	for i := 0; i < 6; i++ {
		st := store.JournalPushed
		if i%2 == 1 {
			st = store.JournalDropped
		}
		e, _ := s.PutJournal(store.JournalEntry{Repo: "fra", File: "s.xml", State: st})
		settled = append(settled, e.ID)
		clk.Advance(24 * time.Hour)
	}
	// by count: the 4 newest settled ones stay
	st, err := s.Prune(store.Retention{Journal: store.Limit{MaxCount: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Journal != 2 {
		t.Fatalf("pruned %d journal entries by count, want 2", st.Journal)
	}
	for i, id := range settled {
		_, err := s.JournalEntry(id)
		if gone := err != nil; gone != (i < 2) {
			t.Fatalf("settled entry %d (%s): gone %v, want %v", i, id, gone, i < 2)
		}
	}
	// by age: a year later every settled entry goes, the unsettled ones stay
	clk.Advance(400 * 24 * time.Hour)
	st, _ = s.Prune(store.DefaultRetention())
	if st.Journal != 4 {
		t.Fatalf("pruned %d journal entries by age, want 4", st.Journal)
	}
	for id := range keep {
		if _, err := s.JournalEntry(id); err != nil {
			t.Fatalf("unsettled entry %s pruned: %v", id, err)
		}
	}
	if open, _ := s.PendingJournal("fra"); len(open) != 2 {
		t.Fatalf("pending/committed entries after prune: %d, want 2", len(open))
	}
}
