package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// InstanceState is what the daemon last did to one instance.
type InstanceState struct {
	Repo       string    `json:"repo"`
	Name       string    `json:"name"`
	File       string    `json:"file,omitempty"`
	Deployed   string    `json:"deployed,omitempty"` // commit
	LastStatus string    `json:"last_status,omitempty"`
	LastRun    RunID     `json:"last_run,omitempty"`
	Updated    time.Time `json:"updated"`
}

// RepoState is what the daemon knows of one tracked repository.
type RepoState struct {
	Name       string    `json:"name"`
	Upstream   string    `json:"upstream,omitempty"` // last seen upstream tip
	Head       string    `json:"head,omitempty"`     // checkout HEAD
	Deployed   string    `json:"deployed,omitempty"` // last fully deployed commit
	SyncState  string    `json:"sync_state,omitempty"`
	LastSync   time.Time `json:"last_sync,omitzero"`
	LastSyncOK time.Time `json:"last_sync_ok,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	LastRun    RunID     `json:"last_run,omitempty"`
	// Schedules is when each of the manifest's schedules last fired. It
	// is not part of the repo record (since schema 4): Repo fills it from
	// the ScheduleState records, and SetRepo and UpdateRepoState merge it
	// into them, never moving a time back. New code uses LastFired,
	// SetLastFired and UpdateSchedule.
	Schedules map[string]time.Time `json:"schedules,omitempty"`
}

// instanceKey is repo NUL name, so one repo's instances are contiguous.
func instanceKey(repo, name string) []byte {
	return append(append([]byte(repo), 0), name...)
}

// instanceFileKey is repo NUL file: the key of instance_file.
func instanceFileKey(repo, file string) []byte {
	return append(append([]byte(repo), 0), file...)
}

// indexInstance keeps instance_file in step with st; old is its previous
// version, nil when none. The file's entry names the instance written
// last with that file; a rename of the file removes the old entry only if
// it still names this instance.
func indexInstance(tx *bolt.Tx, st InstanceState, old *InstanceState) error {
	idx := tx.Bucket(indexInstanceFile)
	idx.FillPercent = appendFill
	if old != nil && old.File != "" && old.File != st.File {
		k := instanceFileKey(old.Repo, old.File)
		if bytes.Equal(idx.Get(k), []byte(old.Name)) {
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
	}
	if st.File == "" {
		return nil
	}
	return idx.Put(instanceFileKey(st.Repo, st.File), []byte(st.Name))
}

// SetInstance stores st, replacing the previous state of (Repo, Name).
// Updated defaults to Now.
func (s *Store) SetInstance(st InstanceState) error {
	return s.SetInstances([]InstanceState{st})
}

// SetInstances stores states as SetInstance does, all in one transaction
// (a run records a bucket's instances at once): every state is stored, or
// none.
func (s *Store) SetInstances(states []InstanceState) error {
	now := s.now()
	for _, st := range states {
		if st.Repo == "" || st.Name == "" {
			return fmt.Errorf("set instance: repo and name: %w", ErrInvalid)
		}
	}
	err := s.update(func(tx *bolt.Tx) error {
		for _, st := range states {
			if err := putInstance(tx, st, now); err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case len(states) == 1:
		return fmt.Errorf("set instance %s/%s: %w", states[0].Repo, states[0].Name, err)
	}
	return fmt.Errorf("set %d instances: %w", len(states), err)
}

// putInstance stores st (Updated defaulting to now) and its index entry.
func putInstance(tx *bolt.Tx, st InstanceState, now time.Time) error {
	if st.Updated.IsZero() {
		st.Updated = now
	}
	b := tx.Bucket(bucketInstances)
	b.FillPercent = appendFill
	key := instanceKey(st.Repo, st.Name)
	var old *InstanceState
	if v := b.Get(key); v != nil {
		var o InstanceState
		if decode(key, v, &o) == nil {
			old = &o
		}
	}
	if err := putJSON(b, key, st); err != nil {
		return err
	}
	return indexInstance(tx, st, old)
}

// Instance returns the state of one instance of repo, read by its key;
// ErrNotFound when the daemon has none.
func (s *Store) Instance(repo, name string) (InstanceState, error) {
	var st InstanceState
	err := s.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketInstances), instanceKey(repo, name), &st)
	})
	if err != nil {
		return InstanceState{}, fmt.Errorf("instance %s/%s: %w", repo, name, err)
	}
	return st, nil
}

// InstanceByFile returns the state of the instance of repo last recorded
// with file, through the instance_file index; ErrNotFound when none is.
func (s *Store) InstanceByFile(repo, file string) (InstanceState, error) {
	var st InstanceState
	err := s.view(func(tx *bolt.Tx) error {
		name := tx.Bucket(indexInstanceFile).Get(instanceFileKey(repo, file))
		if name == nil {
			return ErrNotFound
		}
		if err := getJSON(tx.Bucket(bucketInstances), instanceKey(repo, string(name)), &st); err != nil {
			return err
		}
		if st.File != file {
			return ErrNotFound // a stale index entry: never returned
		}
		return nil
	})
	if err != nil {
		return InstanceState{}, fmt.Errorf("instance of %s/%s: %w", repo, file, err)
	}
	return st, nil
}

// Instances returns the instances of repo ordered by name (all repos,
// ordered by repo then name, when repo is "").
func (s *Store) Instances(repo string) ([]InstanceState, error) {
	var out []InstanceState
	prefix := []byte{}
	if repo != "" {
		prefix = instanceKey(repo, "")
	}
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketInstances).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var st InstanceState
			if err := decode(k, v, &st); err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	return out, nil
}

// SetRepo stores st, replacing the previous state of st.Name from a copy
// the caller holds: a change another writer made since the caller read it
// is lost. New code uses UpdateRepoState, which cannot lose one.
// st.Schedules is not stored in the repo record: its times are merged into
// the schedule records and never move a time back (see ScheduleState).
func (s *Store) SetRepo(st RepoState) error {
	if st.Name == "" {
		return fmt.Errorf("set repo: name: %w", ErrInvalid)
	}
	err := s.update(func(tx *bolt.Tx) error {
		return putRepo(tx, st, s.now())
	})
	if err != nil {
		return fmt.Errorf("set repo %s: %w", st.Name, err)
	}
	return nil
}

// putRepo writes st without its Schedules, which go to the schedule
// records.
func putRepo(tx *bolt.Tx, st RepoState, now time.Time) error {
	if err := mergeSchedules(tx, st.Name, st.Schedules, now); err != nil {
		return err
	}
	st.Schedules = nil
	return putJSON(tx.Bucket(bucketRepos), []byte(st.Name), st)
}

// UpdateRepoState reads the state of repo (a zero state naming it when
// the store has never seen it), calls fn on it and stores the result, all
// in one write transaction, so that a concurrent writer's change to
// another field is never lost. An error from fn stores nothing and is
// returned. fn runs inside the transaction: it must be quick and must not
// call the Store. fn cannot rename the repo (ErrInvalid). Schedules is
// filled and merged as by Repo and SetRepo.
func (s *Store) UpdateRepoState(repo string, fn func(*RepoState) error) (RepoState, error) {
	if repo == "" {
		return RepoState{}, fmt.Errorf("update repo: name: %w", ErrInvalid)
	}
	var st RepoState
	err := s.update(func(tx *bolt.Tx) error {
		st = RepoState{Name: repo}
		if err := getRepo(tx, repo, &st); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := fn(&st); err != nil {
			return err
		}
		if st.Name != repo {
			return fmt.Errorf("the update renamed the repo to %q: %w", st.Name, ErrInvalid)
		}
		if err := putRepo(tx, st, s.now()); err != nil {
			return err
		}
		return fillSchedules(tx, &st)
	})
	if err != nil {
		return RepoState{}, fmt.Errorf("update repo %s: %w", repo, err)
	}
	return st, nil
}

// getRepo reads the repo record and fills its Schedules.
func getRepo(tx *bolt.Tx, name string, st *RepoState) error {
	if err := getJSON(tx.Bucket(bucketRepos), []byte(name), st); err != nil {
		return err
	}
	return fillSchedules(tx, st)
}

// Repo returns the state of one repo; the zero value and ErrNotFound when
// the store has never seen it. Schedules holds the last fire time of each
// schedule record of the repo.
func (s *Store) Repo(name string) (RepoState, error) {
	var st RepoState
	err := s.view(func(tx *bolt.Tx) error {
		return getRepo(tx, name, &st)
	})
	if err != nil {
		return RepoState{}, fmt.Errorf("repo %s: %w", name, err)
	}
	return st, nil
}

// Repos returns every known repo ordered by name.
func (s *Store) Repos() ([]RepoState, error) {
	var out []RepoState
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRepos).ForEach(func(k, v []byte) error {
			var st RepoState
			if err := decode(k, v, &st); err != nil {
				return err
			}
			if err := fillSchedules(tx, &st); err != nil {
				return err
			}
			out = append(out, st)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list repos: %w", err)
	}
	return out, nil
}
