package store

import (
	"bytes"
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
	// Schedules is when each of the manifest's schedules last fired.
	Schedules map[string]time.Time `json:"schedules,omitempty"`
}

// instanceKey is repo NUL name, so one repo's instances are contiguous.
func instanceKey(repo, name string) []byte {
	return append(append([]byte(repo), 0), name...)
}

// SetInstance stores st, replacing the previous state of (Repo, Name).
// Updated defaults to Now.
func (s *Store) SetInstance(st InstanceState) error {
	if st.Repo == "" || st.Name == "" {
		return fmt.Errorf("set instance: repo and name: %w", ErrInvalid)
	}
	if st.Updated.IsZero() {
		st.Updated = s.now()
	}
	err := s.update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketInstances), instanceKey(st.Repo, st.Name), st)
	})
	if err != nil {
		return fmt.Errorf("set instance %s/%s: %w", st.Repo, st.Name, err)
	}
	return nil
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

// SetRepo stores st, replacing the previous state of st.Name.
func (s *Store) SetRepo(st RepoState) error {
	if st.Name == "" {
		return fmt.Errorf("set repo: name: %w", ErrInvalid)
	}
	err := s.update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketRepos), []byte(st.Name), st)
	})
	if err != nil {
		return fmt.Errorf("set repo %s: %w", st.Name, err)
	}
	return nil
}

// Repo returns the state of one repo; the zero value and ErrNotFound when
// the store has never seen it.
func (s *Store) Repo(name string) (RepoState, error) {
	var st RepoState
	err := s.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketRepos), []byte(name), &st)
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
			out = append(out, st)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list repos: %w", err)
	}
	return out, nil
}
