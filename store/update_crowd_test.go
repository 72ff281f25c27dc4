package store_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store"
)

// crowd runs each writer from goroutines goroutines at once, every one of
// them perRoutine times, all of the writers together, and fails the test on
// the first error: many writers of one record on a real state file.
const (
	goroutines = 8
	perRoutine = 25
)

func crowd(t *testing.T, writers ...func(g, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*len(writers))
	start := make(chan struct{})
	for _, fn := range writers {
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := range perRoutine {
					if err := fn(g, i); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

const crowdTotal = goroutines * perRoutine

// A deployment's worker records each instance's progress while the API
// records a cancel and the notifier what it sent: from many goroutines at
// once, every instance's status and every count survive.
func TestDeploymentManyWritersKeepEveryChange(t *testing.T) {
	s := mustOpenStore(t)
	d, err := s.PutDeployment(store.Deployment{Repo: "fra", State: "0"})
	if err != nil {
		t.Fatal(err)
	}
	crowd(t, func(g, i int) error {
		_, err := s.UpdateDeployment(d.ID, func(d *store.Deployment) error {
			if d.Instances == nil {
				d.Instances = map[string]string{}
			}
			d.Instances[fmt.Sprintf("i%d-%d", g, i)] = "succeeded"
			return nil
		})
		return err
	}, func(int, int) error {
		_, err := s.UpdateDeployment(d.ID, func(d *store.Deployment) error { return incr(&d.State) })
		return err
	})
	got, err := s.Deployment(d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != strconv.Itoa(crowdTotal) || len(got.Instances) != crowdTotal {
		t.Fatalf("state %s, %d instances; want %d and %d (a change was lost)", got.State, len(got.Instances), crowdTotal, crowdTotal)
	}
}

// The worker records its sync and its runs in the repo state while a
// scheduler records fires: from many goroutines at once, each field's
// every change survives, and so do the fire times.
func TestRepoStateManyWritersKeepEveryChange(t *testing.T) {
	s := mustOpenStore(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	crowd(t, func(int, int) error {
		_, err := s.UpdateRepoState("fra", func(rs *store.RepoState) error { return incr(&rs.Head) })
		return err
	}, func(int, int) error {
		_, err := s.UpdateRepoState("fra", func(rs *store.RepoState) error { rs.LastRun++; return nil })
		return err
	}, func(g, i int) error {
		return s.SetLastFired("fra", fmt.Sprintf("s%d", g), t0.Add(time.Duration(i+1)*time.Minute))
	})
	got, err := s.Repo("fra")
	if err != nil {
		t.Fatal(err)
	}
	if got.Head != strconv.Itoa(crowdTotal) || got.LastRun != crowdTotal {
		t.Fatalf("head %s, last run %d; want both %d (a change was lost)", got.Head, got.LastRun, crowdTotal)
	}
	for g := range goroutines {
		if at := got.Schedules[fmt.Sprintf("s%d", g)]; !at.Equal(t0.Add(perRoutine * time.Minute)) {
			t.Fatalf("schedule s%d last fired %v, want %v", g, at, t0.Add(perRoutine*time.Minute))
		}
	}
}

// The scheduler records fires while start-up records missed and caught-up
// windows: from many goroutines at once, both survive.
func TestScheduleManyWritersKeepEveryChange(t *testing.T) {
	s := mustOpenStore(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	crowd(t, func(int, int) error {
		_, err := s.UpdateSchedule("fra", "nightly", func(st *store.ScheduleState) error {
			if st.LastFired.IsZero() {
				st.LastFired = t0
			}
			st.LastFired = st.LastFired.Add(time.Minute)
			return nil
		})
		return err
	}, func(int, int) error {
		_, err := s.UpdateSchedule("fra", "nightly", func(st *store.ScheduleState) error {
			st.Missed++
			if st.CaughtUp.IsZero() {
				st.CaughtUp = t0
			}
			st.CaughtUp = st.CaughtUp.Add(time.Second)
			return nil
		})
		return err
	})
	got, err := s.Schedule("fra", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastFired.Equal(t0.Add(crowdTotal*time.Minute)) || got.Missed != crowdTotal || !got.CaughtUp.Equal(t0.Add(crowdTotal*time.Second)) {
		t.Fatalf("last fired %v, missed %d, caught up %v; want %v, %d, %v (a change was lost)", got.LastFired, got.Missed, got.CaughtUp,
			t0.Add(crowdTotal*time.Minute), crowdTotal, t0.Add(crowdTotal*time.Second))
	}
}

// An intervention repeats (the worker raises it again), a notifier records
// the issues it opened and an operator writes notes, all at once: every
// repeat is counted, every issue key and the note survive.
func TestInterventionManyWritersKeepEveryChange(t *testing.T) {
	s := mustOpenStore(t)
	raise := func() (store.Intervention, error) {
		iv, _, err := s.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: "viatris", Summary: "configure failed",
			Evidence: store.Evidence{Output: "failed again"}})
		return iv, err
	}
	iv, err := raise()
	if err != nil {
		t.Fatal(err)
	}
	crowd(t, func(int, int) error {
		_, err := raise()
		return err
	}, func(g, i int) error {
		_, err := s.SetEvidenceExtra(iv.ID, store.IssueRefKey(fmt.Sprintf("jira%d-%d", g, i)), "OPS-1")
		return err
	}, func(int, int) error {
		_, err := s.UpdateIntervention(iv.ID, func(iv *store.Intervention) error { return incr(&iv.AckNote) })
		return err
	})
	got, err := s.Intervention(iv.ID)
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for g := range goroutines {
		for i := range perRoutine {
			if got.Evidence.Extra[store.IssueRefKey(fmt.Sprintf("jira%d-%d", g, i))] == "OPS-1" {
				keys++
			}
		}
	}
	if got.Count != crowdTotal+1 || keys != crowdTotal || got.AckNote != strconv.Itoa(crowdTotal) {
		t.Fatalf("count %d, %d issue keys, note %s; want %d, %d, %d (a change was lost)", got.Count, keys, got.AckNote, crowdTotal+1, crowdTotal, crowdTotal)
	}
}
