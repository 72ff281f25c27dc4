package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ScheduleState is what the daemon knows of one schedule of a repo's
// manifest: when it last fired and what a downtime made it miss. It is its
// own record (bucket schedules, key repo NUL schedule), apart from the
// repo's RepoState, so that a worker saving repo state can never
// overwrite a fire time the scheduler recorded meanwhile.
type ScheduleState struct {
	Repo     string `json:"repo"`
	Schedule string `json:"schedule"`
	// LastFired is the scheduled time of the last activation handled:
	// fired, caught up, or recorded as missed.
	LastFired time.Time `json:"last_fired"`
	// Missed is how many activations the last downtime made the schedule
	// miss (0 when none), MissedAt the latest of them, CaughtUp the
	// MissedAt a catch-up run was queued for (so that a restart does not
	// catch up the same window twice).
	Missed   int       `json:"missed,omitempty"`
	MissedAt time.Time `json:"missed_at,omitzero"`
	CaughtUp time.Time `json:"caught_up,omitzero"`
	// Updated is when the record was last written (set by the store).
	Updated time.Time `json:"updated"`
}

func scheduleKey(repo, name string) []byte {
	return append(append([]byte(repo), 0), name...)
}

// Schedule returns the state of one schedule; ErrNotFound if it never
// fired.
func (s *Store) Schedule(repo, name string) (ScheduleState, error) {
	var st ScheduleState
	err := s.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketSchedules), scheduleKey(repo, name), &st)
	})
	if err != nil {
		return ScheduleState{}, fmt.Errorf("schedule %s %q: %w", repo, name, err)
	}
	return st, nil
}

// Schedules returns the schedule states of repo ordered by schedule name
// (every repo's, ordered by repo then name, when repo is "").
func (s *Store) Schedules(repo string) ([]ScheduleState, error) {
	var out []ScheduleState
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = repoSchedules(tx, repo)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return out, nil
}

func repoSchedules(tx *bolt.Tx, repo string) ([]ScheduleState, error) {
	var out []ScheduleState
	prefix := []byte{}
	if repo != "" {
		prefix = scheduleKey(repo, "")
	}
	c := tx.Bucket(bucketSchedules).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var st ScheduleState
		if err := decode(k, v, &st); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// UpdateSchedule reads the state of (repo, name), or a zero state naming
// it when there is none, calls fn on it and stores the result, all in one
// write transaction: a concurrent writer's change to another field is
// never lost. An error from fn stores nothing and is returned. fn runs
// inside the transaction: it must be quick and must not call the Store.
// fn cannot rename the record (ErrInvalid).
func (s *Store) UpdateSchedule(repo, name string, fn func(*ScheduleState) error) (ScheduleState, error) {
	if repo == "" || name == "" {
		return ScheduleState{}, fmt.Errorf("update schedule: repo and name: %w", ErrInvalid)
	}
	var st ScheduleState
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		st, err = updateSchedule(tx, repo, name, s.now(), fn)
		return err
	})
	if err != nil {
		return ScheduleState{}, fmt.Errorf("update schedule %s %q: %w", repo, name, err)
	}
	return st, nil
}

func updateSchedule(tx *bolt.Tx, repo, name string, now time.Time, fn func(*ScheduleState) error) (ScheduleState, error) {
	b := tx.Bucket(bucketSchedules)
	key := scheduleKey(repo, name)
	st := ScheduleState{Repo: repo, Schedule: name}
	if err := getJSON(b, key, &st); err != nil && !errors.Is(err, ErrNotFound) {
		return st, err
	}
	if err := fn(&st); err != nil {
		return st, err
	}
	if st.Repo != repo || st.Schedule != name {
		return st, fmt.Errorf("the update renamed the record to %s %q: %w", st.Repo, st.Schedule, ErrInvalid)
	}
	st.Updated = now
	return st, putJSON(b, key, st)
}

// LastFired returns when schedule name of repo last fired, and false when
// it never did. With SetLastFired it makes a *Store a schedule.State.
func (s *Store) LastFired(repo, name string) (time.Time, bool, error) {
	st, err := s.Schedule(repo, name)
	switch {
	case err == nil:
		return st.LastFired, !st.LastFired.IsZero(), nil
	case errors.Is(err, ErrNotFound):
		return time.Time{}, false, nil
	}
	return time.Time{}, false, err
}

// SetLastFired records at as the last fire time of schedule name of repo,
// in one transaction that keeps the record's other fields.
func (s *Store) SetLastFired(repo, name string, at time.Time) error {
	_, err := s.UpdateSchedule(repo, name, func(st *ScheduleState) error {
		st.LastFired = at
		return nil
	})
	return err
}

// mergeSchedules records the fire times of a RepoState.Schedules map (a
// caller that still keeps them in the repo state) in the schedule
// records, never moving a time back: a stale copy of the map cannot undo
// a later fire.
func mergeSchedules(tx *bolt.Tx, repo string, times map[string]time.Time, now time.Time) error {
	for name, at := range times {
		_, err := updateSchedule(tx, repo, name, now, func(st *ScheduleState) error {
			if at.After(st.LastFired) {
				st.LastFired = at
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("schedule %q: %w", name, err)
		}
	}
	return nil
}

// fillSchedules sets st.Schedules from the schedule records of st.Name.
func fillSchedules(tx *bolt.Tx, st *RepoState) error {
	list, err := repoSchedules(tx, st.Name)
	if err != nil {
		return err
	}
	st.Schedules = nil
	for _, sc := range list {
		if sc.LastFired.IsZero() {
			continue
		}
		if st.Schedules == nil {
			st.Schedules = map[string]time.Time{}
		}
		st.Schedules[sc.Schedule] = sc.LastFired
	}
	return nil
}

// migrateSchedules (schema 4) moves each repo's Schedules map into
// schedule records and rewrites the repo record without it.
func migrateSchedules(tx *bolt.Tx) error {
	if err := createBuckets(tx); err != nil {
		return err
	}
	repos := tx.Bucket(bucketRepos)
	var all []RepoState
	err := repos.ForEach(func(k, v []byte) error {
		var st RepoState
		if err := decode(k, v, &st); err != nil {
			return err
		}
		all = append(all, st)
		return nil
	})
	if err != nil {
		return err
	}
	for _, st := range all {
		if len(st.Schedules) == 0 {
			continue
		}
		latest := time.Time{}
		for _, at := range st.Schedules {
			latest = laterOf(latest, at)
		}
		if err := mergeSchedules(tx, st.Name, st.Schedules, latest); err != nil {
			return fmt.Errorf("repo %s: %w", st.Name, err)
		}
		st.Schedules = nil
		if err := putJSON(repos, []byte(st.Name), st); err != nil {
			return err
		}
	}
	return nil
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
