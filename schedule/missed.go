package schedule

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// maxMissed bounds the scheduled times Missed walks per schedule (an
// "@every 1s" schedule over a week's downtime has 604,800).
const maxMissed = 100_000

// Missed returns, for each of repo's schedules, the scheduled times in
// (LastFired, now] as one Fire{Missed: true} carrying the latest time and
// the count, logs each, and records the latest as handled with
// SetLastFired, so a restart does not report them again. The daemon records
// every returned Fire as missed and runs it only if Schedule.CatchUp. A
// schedule with no LastFired gets now as its baseline and reports nothing.
// (Set records that baseline already; this covers a failure there.) Call
// it after Set and before Start. Without Options.State it returns nil.
func (s *Scheduler) Missed(repo string, now time.Time) ([]Fire, error) {
	if s.state == nil {
		return nil, nil
	}
	s.mu.Lock()
	entries := make([]entry, 0, len(s.repos[repo]))
	for _, e := range s.repos[repo] {
		entries = append(entries, *e)
	}
	s.mu.Unlock()
	sortEntries(entries)
	var out []Fire
	for _, e := range entries {
		f, ok, err := s.missed(e, now)
		if err != nil {
			return out, fmt.Errorf("missed schedules of %s: %w", repo, err)
		}
		if ok {
			out = append(out, f)
		}
	}
	return out, nil
}

// Stale reports whether a later scheduled time of f's schedule than f.At
// is already due at now: f waited (behind a long run, or a stalled
// process) past its successor. A schedule without catch-up never runs a
// stale time; one with catch-up runs only the latest.
func (s *Scheduler) Stale(f Fire, now time.Time) bool {
	if f.At.IsZero() {
		return false
	}
	sp, err := parse(f.Schedule.Cron, f.Schedule.TZ, s.loc)
	if err != nil {
		return false
	}
	next := sp.Next(f.At)
	return !next.IsZero() && !next.After(now)
}

func (s *Scheduler) missed(e entry, now time.Time) (Fire, bool, error) {
	name := e.sched.Name
	last, ok, err := s.state.LastFired(e.repo, name)
	if err != nil {
		return Fire{}, false, fmt.Errorf("read last fired time of %q: %w", name, err)
	}
	if !ok {
		return Fire{}, false, s.setLast(e.repo, name, now)
	}
	latest, n := missedTimes(e.sp, last, now)
	if n == 0 {
		return Fire{}, false, nil
	}
	f := Fire{Repo: e.repo, Schedule: e.sched, At: latest, Missed: true, Count: n}
	logMissed(s.log, f)
	return f, true, s.setLast(e.repo, name, latest)
}

func (s *Scheduler) setLast(repo, name string, at time.Time) error {
	if err := s.state.SetLastFired(repo, name, at); err != nil {
		return fmt.Errorf("record last fired time of %q: %w", name, err)
	}
	return nil
}

// missedTimes returns the latest activation in (last, now] and how many
// there are (at most maxMissed).
func missedTimes(sp *spec, last, now time.Time) (time.Time, int) {
	var latest time.Time
	n := 0
	for t := sp.Next(last); !t.IsZero() && !t.After(now) && n < maxMissed; t = sp.Next(t) {
		latest, n = t, n+1
	}
	return latest, n
}

func logMissed(log zerolog.Logger, f Fire) {
	ev := log.Warn()
	msg := "schedule missed while down; not catching up"
	if f.Schedule.CatchUp {
		msg = "schedule missed while down; catching up once"
	}
	ev.Str("repo", f.Repo).Str("schedule", f.Schedule.Name).Time("at", f.At).Int("count", f.Count).Msg(msg)
}
