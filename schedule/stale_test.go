package schedule_test

import (
	"testing"
	"time"

	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/schedule"
)

// An activation is stale once its schedule's next time is due: a fire
// that waited behind a long run past its successor.
func TestStale(t *testing.T) {
	s := schedule.New(schedule.Options{Location: time.UTC})
	at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	f := schedule.Fire{Repo: "fra", Schedule: manifest.Schedule{Name: "nightly", Cron: "0 2 * * *"}, At: at}
	for _, c := range []struct {
		now  time.Time
		want bool
	}{
		{at.Add(time.Minute), false},
		{at.Add(23 * time.Hour), false},
		{at.Add(24 * time.Hour), true},
		{at.Add(72 * time.Hour), true},
	} {
		if got := s.Stale(f, c.now); got != c.want {
			t.Errorf("at %v, now %v: stale %v, want %v", at, c.now, got, c.want)
		}
	}
	if s.Stale(schedule.Fire{Schedule: f.Schedule}, at) {
		t.Error("a fire with no time is never stale")
	}
}
