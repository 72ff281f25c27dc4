package schedule_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/schedule"
)

func fixedClock(s string) func() time.Time {
	t := utc(s)
	return func() time.Time { return t }
}

func sched(name, spec, tz string) manifest.Schedule {
	return manifest.Schedule{Name: name, Cron: spec, TZ: tz, Steps: []manifest.StepName{"instance-redeploy"}, Bucket: 10}
}

func TestEntries(t *testing.T) {
	s := schedule.New(schedule.Options{Now: fixedClock("2026-03-28T12:00:00Z"), Location: time.UTC})
	if err := s.Set("fra1", []manifest.Schedule{
		sched("nightly", "30 2 * * *", "Europe/Berlin"),
		sched("hourly", "0 * * * *", ""),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("ams1", []manifest.Schedule{sched("nightly", "0 3 * * *", "")}); err != nil {
		t.Fatal(err)
	}
	want := []schedule.Entry{
		{Repo: "fra1", Name: "hourly", Next: utc("2026-03-28T13:00:00Z")},
		{Repo: "fra1", Name: "nightly", Next: utc("2026-03-29T01:00:00Z")}, // the spring-forward jump
		{Repo: "ams1", Name: "nightly", Next: utc("2026-03-29T03:00:00Z")},
	}
	got := s.Entries()
	if len(got) != len(want) {
		t.Fatalf("got %d entries %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i].Repo != want[i].Repo || got[i].Name != want[i].Name || !got[i].Next.Equal(want[i].Next) {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestSetReload(t *testing.T) {
	s := schedule.New(schedule.Options{Now: fixedClock("2026-03-28T12:00:00Z"), Location: time.UTC})
	if err := s.Set("fra1", []manifest.Schedule{
		sched("keep", "0 3 * * *", "Europe/Berlin"),
		sched("retime", "0 4 * * *", ""),
		sched("drop", "0 5 * * *", ""),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("ams1", []manifest.Schedule{sched("other", "0 6 * * *", "")}); err != nil {
		t.Fatal(err)
	}
	keep, retime, other := schedule.EntryID(s, "fra1", "keep"), schedule.EntryID(s, "fra1", "retime"), schedule.EntryID(s, "ams1", "other")

	kept := sched("keep", "0 3 * * *", "Europe/Berlin")
	kept.Steps = []manifest.StepName{"instance-configure"}
	if err := s.Set("fra1", []manifest.Schedule{kept, sched("retime", "0 7 * * *", ""), sched("new", "0 8 * * *", "")}); err != nil {
		t.Fatal(err)
	}
	if got := schedule.EntryID(s, "fra1", "keep"); got != keep {
		t.Errorf("unchanged schedule: got entry %d, want %d kept", got, keep)
	}
	if got := schedule.EntryID(s, "fra1", "retime"); got == retime || got == 0 {
		t.Errorf("retimed schedule: got entry %d, want a new one (old %d)", got, retime)
	}
	if got := schedule.EntryID(s, "fra1", "drop"); got != 0 {
		t.Errorf("dropped schedule: still entry %d", got)
	}
	if got := schedule.EntryID(s, "ams1", "other"); got != other {
		t.Errorf("other repo: got entry %d, want %d", got, other)
	}
	if got, want := schedule.CronEntries(s), 4; got != want {
		t.Errorf("cron entries: got %d, want %d", got, want)
	}
	for _, e := range s.Entries() {
		if e.Name == "retime" && !e.Next.Equal(utc("2026-03-29T07:00:00Z")) {
			t.Errorf("retimed next: got %s, want 07:00Z", e.Next)
		}
	}

	// An invalid set changes nothing.
	err := s.Set("fra1", []manifest.Schedule{sched("keep", "CRON_TZ=Nowhere/Bad 0 3 * * *", "")})
	if !errors.Is(err, schedule.ErrBadTimeZone) {
		t.Fatalf("bad set: got %v, want ErrBadTimeZone", err)
	}
	if got := schedule.EntryID(s, "fra1", "keep"); got != keep {
		t.Errorf("after a refused set: got entry %d, want %d", got, keep)
	}
	if err := s.Set("fra1", []manifest.Schedule{sched("a", "@daily", ""), sched("a", "@hourly", "")}); !errors.Is(err, schedule.ErrDuplicateName) {
		t.Errorf("duplicate names: got %v, want ErrDuplicateName", err)
	}

	if err := s.Set("fra1", nil); err != nil {
		t.Fatal(err)
	}
	if got, want := schedule.CronEntries(s), 1; got != want {
		t.Errorf("after removing fra1: got %d cron entries, want %d", got, want)
	}
}

func TestSetPanickingSpecIsAnError(t *testing.T) {
	s := schedule.New(schedule.Options{})
	err := s.Set("fra1", []manifest.Schedule{sched("bad", "CRON_TZ=Europe/Berlin", "")})
	if !errors.Is(err, schedule.ErrBadSpec) {
		t.Fatalf("got %v, want ErrBadSpec", err)
	}
}
