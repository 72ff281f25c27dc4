package schedule_test

import (
	"testing"
	"time"

	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/schedule"
)

func BenchmarkNextBerlinWeekday(b *testing.B) {
	at := utc("2026-03-27T12:00:00Z")
	for b.Loop() {
		if _, err := schedule.Next("30 2 * * 1-5", "Europe/Berlin", at); err != nil {
			b.Fatal(err)
		}
	}
}

// The worst case Missed walks: an @every 1s schedule over a week down.
func BenchmarkMissedEverySecondForAWeek(b *testing.B) {
	st := mustOpenState(b)
	s := schedule.New(schedule.Options{State: st})
	if err := s.Set("fra1", []manifest.Schedule{sched("tick", "@every 1s", "")}); err != nil {
		b.Fatal(err)
	}
	last := utc("2026-03-20T00:00:00Z")
	now := last.Add(7 * 24 * time.Hour)
	for b.Loop() {
		if err := st.SetLastFired("fra1", "tick", last); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Missed("fra1", now); err != nil {
			b.Fatal(err)
		}
	}
}
