package schedule

import (
	"time"

	"github.com/robfig/cron/v3"
)

// Next exposes the package's Next arithmetic to the tests.
func Next(cronSpec, tz string, after time.Time) (time.Time, error) {
	sp, err := parse(cronSpec, tz, time.UTC)
	if err != nil {
		return time.Time{}, err
	}
	return sp.Next(after), nil
}

// EntryID returns the cron entry id of a registered schedule, 0 if none.
func EntryID(s *Scheduler, repo, name string) cron.EntryID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.repos[repo][name]; ok {
		return e.id
	}
	return 0
}

// CronEntries returns how many entries the underlying cron holds.
func CronEntries(s *Scheduler) int { return len(s.cron.Entries()) }
