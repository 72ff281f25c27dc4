package store_test

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store"
)

// racers is how many times each of two writers changes its field.
const racers = 100

// race runs a and b racers times each, from two goroutines at once, and
// fails the test on the first error.
func race(t *testing.T, a, b func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, fn := range []func() error{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range racers {
				if err := fn(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// incr adds one to a decimal counter held in a string ("" is 0).
func incr(s *string) error {
	n := 0
	if *s != "" {
		var err error
		if n, err = strconv.Atoi(*s); err != nil {
			return err
		}
	}
	*s = strconv.Itoa(n + 1)
	return nil
}

// Two writers change different fields of one deployment at once (the
// worker its progress, the API a cancel): neither change is lost.
func TestUpdateDeploymentKeepsConcurrentChanges(t *testing.T) {
	s := mustOpenStore(t)
	d, err := s.PutDeployment(store.Deployment{Repo: "fra", State: "0"})
	if err != nil {
		t.Fatal(err)
	}
	race(t, func() error {
		_, err := s.UpdateDeployment(d.ID, func(d *store.Deployment) error { return incr(&d.State) })
		return err
	}, func() error {
		_, err := s.UpdateDeployment(d.ID, func(d *store.Deployment) error {
			if d.Instances == nil {
				d.Instances = map[string]string{}
			}
			n := d.Instances["b"]
			err := incr(&n)
			d.Instances["b"] = n
			return err
		})
		return err
	})
	got, err := s.Deployment(d.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(racers)
	if got.State != want || got.Instances["b"] != want {
		t.Fatalf("state %s, instance b %s; want both %s (a change was lost)", got.State, got.Instances["b"], want)
	}
	if !got.Created.Equal(d.Created) {
		t.Fatalf("created %v, want %v", got.Created, d.Created)
	}
}

func TestUpdateDeploymentRefusals(t *testing.T) {
	s := mustOpenStore(t)
	if _, err := s.UpdateDeployment("d-none", func(*store.Deployment) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing deployment: %v, want ErrNotFound", err)
	}
	d, _ := s.PutDeployment(store.Deployment{Repo: "fra", State: "queued"})
	boom := errors.New("boom")
	if _, err := s.UpdateDeployment(d.ID, func(d *store.Deployment) error { d.State = "running"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if _, err := s.UpdateDeployment(d.ID, func(d *store.Deployment) error { d.ID = "other"; return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("renaming: %v, want ErrInvalid", err)
	}
	if got, _ := s.Deployment(d.ID); got.State != "queued" {
		t.Fatalf("a failed update wrote: state %s", got.State)
	}
}

// Two writers change different fields of one repo's state at once.
func TestUpdateRepoStateKeepsConcurrentChanges(t *testing.T) {
	s := mustOpenStore(t)
	race(t, func() error {
		_, err := s.UpdateRepoState("fra", func(rs *store.RepoState) error { return incr(&rs.Head) })
		return err
	}, func() error {
		_, err := s.UpdateRepoState("fra", func(rs *store.RepoState) error { return incr(&rs.Upstream) })
		return err
	})
	got, err := s.Repo("fra")
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(racers)
	if got.Head != want || got.Upstream != want {
		t.Fatalf("head %s, upstream %s; want both %s (a change was lost)", got.Head, got.Upstream, want)
	}
	if _, err := s.UpdateRepoState("fra", func(rs *store.RepoState) error { rs.Name = "ams"; return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("renaming: %v, want ErrInvalid", err)
	}
}

// Two writers change different fields of one schedule's state at once
// (the scheduler its fire time, start-up its missed count).
func TestUpdateScheduleKeepsConcurrentChanges(t *testing.T) {
	s := mustOpenStore(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	race(t, func() error {
		_, err := s.UpdateSchedule("fra", "nightly", func(st *store.ScheduleState) error {
			if st.LastFired.IsZero() {
				st.LastFired = t0
			}
			st.LastFired = st.LastFired.Add(time.Minute)
			return nil
		})
		return err
	}, func() error {
		_, err := s.UpdateSchedule("fra", "nightly", func(st *store.ScheduleState) error { st.Missed++; return nil })
		return err
	})
	got, err := s.Schedule("fra", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(racers * time.Minute); !got.LastFired.Equal(want) || got.Missed != racers {
		t.Fatalf("last fired %v, missed %d; want %v and %d (a change was lost)", got.LastFired, got.Missed, want, racers)
	}
}

// Two writers change different fields of one intervention at once (a
// notifier its issue key, an operator an acknowledgement).
func TestUpdateInterventionKeepsConcurrentChanges(t *testing.T) {
	s := mustOpenStore(t)
	iv, _, err := s.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: "viatris", Summary: "configure failed"})
	if err != nil {
		t.Fatal(err)
	}
	race(t, func() error {
		_, err := s.UpdateIntervention(iv.ID, func(iv *store.Intervention) error { return incr(&iv.AckNote) })
		return err
	}, func() error {
		_, err := s.UpdateIntervention(iv.ID, func(iv *store.Intervention) error {
			if iv.Evidence.Extra == nil {
				iv.Evidence.Extra = map[string]string{}
			}
			n := iv.Evidence.Extra["b"]
			err := incr(&n)
			iv.Evidence.Extra["b"] = n
			return err
		})
		return err
	})
	got, err := s.Intervention(iv.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(racers)
	if got.AckNote != want || got.Evidence.Extra["b"] != want {
		t.Fatalf("ack note %s, extra b %s; want both %s (a change was lost)", got.AckNote, got.Evidence.Extra["b"], want)
	}
}

func TestUpdateInterventionRefusals(t *testing.T) {
	s := mustOpenStore(t)
	old, _, _ := s.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: "viatris"})
	if _, err := s.Resolve(old.ID, "alice", "fixed"); err != nil {
		t.Fatal(err)
	}
	cur, _, _ := s.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: "viatris"})
	if _, err := s.UpdateIntervention(cur.ID, func(iv *store.Intervention) error { iv.Instance = "other"; return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("changing the scope: %v, want ErrInvalid", err)
	}
	reopen := func(iv *store.Intervention) error { iv.State = store.StateOpen; return nil }
	if _, err := s.UpdateIntervention(old.ID, reopen); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("reopening beside an open one: %v, want ErrInvalid", err)
	}
	if _, err := s.UpdateIntervention(99, reopen); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing intervention: %v, want ErrNotFound", err)
	}
	open, _ := s.Interventions(store.InterventionFilter{})
	if len(open) != 1 || open[0].ID != cur.ID {
		t.Fatalf("open interventions %+v, want only %d", open, cur.ID)
	}
}

// A repeat replaces the evidence but keeps the issue a notifier opened.
func TestRepeatKeepsIssueReference(t *testing.T) {
	s := mustOpenStore(t)
	iv, _, err := s.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: "viatris",
		Evidence: store.Evidence{Output: "first", Extra: map[string]string{"run": "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetEvidenceExtra(iv.ID, store.IssueRefKey("jira"), "OPS-7"); err != nil {
		t.Fatal(err)
	}
	got, isNew, err := s.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: "viatris",
		Evidence: store.Evidence{Output: "second", Extra: map[string]string{"run": "2"}}})
	if err != nil || isNew {
		t.Fatalf("repeat: new %v, %v", isNew, err)
	}
	want := map[string]string{"run": "2", "issue:jira": "OPS-7"}
	if got.Evidence.Output != "second" || len(got.Evidence.Extra) != 2 || got.Evidence.Extra["run"] != "2" || got.Evidence.Extra["issue:jira"] != "OPS-7" {
		t.Fatalf("evidence after repeat %+v, want output second and extra %v", got.Evidence, want)
	}
	stored, _ := s.Intervention(iv.ID)
	if stored.Evidence.Extra["issue:jira"] != "OPS-7" || stored.Count != 2 {
		t.Fatalf("stored %+v", stored)
	}
}

// The worker saves repo state from a copy read before the scheduler
// recorded a fire: the fire time survives (the bug where a restart
// counted missed fires again).
func TestStaleRepoSaveKeepsScheduleState(t *testing.T) {
	s := mustOpenStore(t)
	t1 := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	if err := s.SetLastFired("fra", "nightly", t1); err != nil {
		t.Fatal(err)
	}
	stale, err := s.Repo("fra")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("repo never saved: %v", err)
	}
	stale.Name = "fra"
	stale.Schedules = map[string]time.Time{"nightly": t1}
	if err := s.SetLastFired("fra", "nightly", t2); err != nil {
		t.Fatal(err)
	}
	stale.Head = "c1"
	if err := s.SetRepo(stale); err != nil {
		t.Fatal(err)
	}
	at, ok, err := s.LastFired("fra", "nightly")
	if err != nil || !ok || !at.Equal(t2) {
		t.Fatalf("last fired %v %v %v, want %v", at, ok, err, t2)
	}
	rs, _ := s.Repo("fra")
	if rs.Head != "c1" || !rs.Schedules["nightly"].Equal(t2) {
		t.Fatalf("repo %+v", rs)
	}
	if _, ok, err := s.LastFired("fra", "weekly"); ok || err != nil {
		t.Fatalf("unknown schedule: %v %v", ok, err)
	}
	list, _ := s.Schedules("fra")
	if len(list) != 1 || list[0].Schedule != "nightly" || list[0].Repo != "fra" {
		t.Fatalf("schedules %+v", list)
	}
}
