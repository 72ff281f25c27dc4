package schedule_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/schedule"
)

func TestMissed(t *testing.T) {
	st := mustOpenState(t)
	s := schedule.New(schedule.Options{State: st, Location: time.UTC, Now: fixedClock("2026-03-30T10:00:00Z")})
	catchUp := sched("nightly", "0 3 * * *", "Europe/Berlin")
	catchUp.CatchUp = true
	noCatchUp := sched("weekday", "30 2 * * 1-5", "Europe/Berlin")
	fresh := sched("fresh", "@hourly", "")
	if err := s.Set("fra1", []manifest.Schedule{catchUp, noCatchUp, fresh}); err != nil {
		t.Fatal(err)
	}
	// Last fired on Friday 2026-03-27 before the weekday run; down until
	// Monday 2026-03-30 12:00 Berlin (10:00Z, summer time).
	for _, n := range []string{"nightly", "weekday"} {
		if err := st.SetLastFired("fra1", n, utc("2026-03-27T00:00:00Z")); err != nil {
			t.Fatal(err)
		}
	}
	now := utc("2026-03-30T10:00:00Z")
	got, err := s.Missed("fra1", now)
	if err != nil {
		t.Fatal(err)
	}
	want := []schedule.Fire{
		// 27 (02:00Z), 28 (02:00Z), 29 (01:00Z, CEST), 30 (01:00Z).
		{Repo: "fra1", Schedule: catchUp, At: utc("2026-03-30T01:00:00Z"), Missed: true, Count: 4},
		// Fri 27 01:30Z and Mon 30 00:30Z; the weekend does not count.
		{Repo: "fra1", Schedule: noCatchUp, At: utc("2026-03-30T00:30:00Z"), Missed: true, Count: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d fires %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Repo != w.Repo || g.Schedule.Name != w.Schedule.Name || g.Schedule.CatchUp != w.Schedule.CatchUp ||
			!g.At.Equal(w.At) || g.Missed != w.Missed || g.Count != w.Count {
			t.Errorf("fire %d: got %+v, want %+v", i, g, w)
		}
	}
	// What was reported is recorded; the schedule without history got the
	// time of Set as its baseline.
	for n, w := range map[string]time.Time{"nightly": want[0].At, "weekday": want[1].At, "fresh": now} {
		at, ok, err := st.LastFired("fra1", n)
		if err != nil || !ok || !at.Equal(w) {
			t.Errorf("LastFired(%s): got %s %v %v, want %s", n, at, ok, err, w)
		}
	}
	// A second start at the same time reports nothing.
	again, err := s.Missed("fra1", now)
	if err != nil || len(again) != 0 {
		t.Errorf("second Missed: got %+v, %v; want none", again, err)
	}
	// Three hours later only the hourly schedule (no catch-up) missed.
	later, err := s.Missed("fra1", now.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(later) != 1 || later[0].Schedule.Name != "fresh" || later[0].Count != 3 || !later[0].At.Equal(now.Add(3*time.Hour)) {
		t.Errorf("later Missed: got %+v, want fresh x3 at %s", later, now.Add(3*time.Hour))
	}
}

func TestMissedUnknownRepoAndNoState(t *testing.T) {
	s := schedule.New(schedule.Options{State: mustOpenState(t)})
	if got, err := s.Missed("nowhere", time.Now()); err != nil || len(got) != 0 {
		t.Errorf("unknown repo: got %v, %v", got, err)
	}
	s = schedule.New(schedule.Options{})
	if err := s.Set("fra1", []manifest.Schedule{sched("n", "@daily", "")}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Missed("fra1", time.Now()); err != nil || len(got) != 0 {
		t.Errorf("no state: got %v, %v", got, err)
	}
}

func TestMissedStateError(t *testing.T) {
	s := schedule.New(schedule.Options{State: brokenState{}})
	if err := s.Set("fra1", []manifest.Schedule{sched("n", "@daily", "")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Missed("fra1", time.Now()); !errors.Is(err, errBroken) {
		t.Errorf("got %v, want the state's error", err)
	}
}

// Missed counts with the same DST policy as the live cron.
func TestMissedAcrossDST(t *testing.T) {
	tests := []struct {
		name, spec, last, now string
		count                 int
		at                    string
	}{
		{"fall back: the repeated 02:30 counts once", "30 2 * * *",
			"2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z", 2, "2026-10-26T01:30:00Z"},
		{"spring forward: the skipped 02:30 counts at the jump", "30 2 * * *",
			"2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z", 1, "2026-03-29T01:00:00Z"},
		{"fall back: hourly counts both 02:30s", "30 * * * *",
			"2026-10-24T23:45:00Z", "2026-10-25T02:45:00Z", 3, "2026-10-25T02:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := mustOpenState(t)
			s := schedule.New(schedule.Options{State: st})
			if err := s.Set("fra1", []manifest.Schedule{sched("n", tt.spec, "Europe/Berlin")}); err != nil {
				t.Fatal(err)
			}
			if err := st.SetLastFired("fra1", "n", utc(tt.last)); err != nil {
				t.Fatal(err)
			}
			got, err := s.Missed("fra1", utc(tt.now))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Count != tt.count || !got[0].At.Equal(utc(tt.at)) {
				t.Errorf("got %+v, want count %d at %s", got, tt.count, tt.at)
			}
		})
	}
}

// A schedule counts missed times from when Set first saw it, and a reload
// does not move that baseline.
func TestSetRecordsBaseline(t *testing.T) {
	st := mustOpenState(t)
	clock := utc("2026-03-30T10:00:00Z")
	s := schedule.New(schedule.Options{State: st, Now: func() time.Time { return clock }})
	if err := s.Set("fra1", []manifest.Schedule{sched("n", "@hourly", "")}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(90 * time.Minute)
	if err := s.Set("fra1", []manifest.Schedule{sched("n", "@hourly", ""), sched("m", "@daily", "")}); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]string{"n": "2026-03-30T10:00:00Z", "m": "2026-03-30T11:30:00Z"} {
		at, ok, err := st.LastFired("fra1", n)
		if err != nil || !ok || !at.Equal(utc(want)) {
			t.Errorf("LastFired(%s): got %s %v %v, want %s", n, at, ok, err, want)
		}
	}
	got, err := schedule.New(schedule.Options{State: st}).Missed("fra1", utc("2026-03-30T13:15:00Z"))
	if err != nil || len(got) != 0 {
		t.Fatalf("a new scheduler without Set: got %+v, %v; want nothing", got, err)
	}
	got, err = s.Missed("fra1", utc("2026-03-30T13:15:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Schedule.Name != "n" || got[0].Count != 3 {
		t.Errorf("got %+v, want n missed 3 times (11:00, 12:00, 13:00)", got)
	}
}
