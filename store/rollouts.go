package store

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Rollout is a fleet rollout that this daemon coordinates: the record the
// coordinator drives the hosts from and resumes after a restart. Spec is
// opaque to the store (the coordinator's record of waves, gates and
// hosts). A rollout with a zero Finished time is in progress.
//
// The rollouts bucket is created by the first CreateRollout, not by the
// schema: a file that never coordinated a rollout has none, and reads
// answer as if it were empty. The salvage of a damaged file copies its
// rollouts (salvageLayout), a salvaged file has the bucket.
type Rollout struct {
	ID       string          `json:"id"`
	State    string          `json:"state"`
	Spec     json.RawMessage `json:"spec,omitempty"`
	Created  time.Time       `json:"created"`
	Updated  time.Time       `json:"updated"`
	Finished time.Time       `json:"finished,omitzero"`
	// Issues holds, per notification channel, the Jira issue its
	// messages about this rollout go to (SetRolloutIssue).
	Issues map[string]string `json:"issues,omitempty"`
	// Version counts the writes of this rollout through this Store since
	// it was opened (not stored): a reader that keeps a decoded rollout
	// knows it is current while RolloutVersion answers the same.
	Version uint64 `json:"-"`
}

// rolloutVersions holds each open Store's rollout write counts; a write
// and its count change together under mu, so a Version returned with a
// record is that record's.
var rolloutVersions sync.Map // *Store -> *rolloutVersion

type rolloutVersion struct {
	mu  sync.Mutex
	ver map[string]uint64
}

func (s *Store) rolloutVersion() *rolloutVersion {
	v, _ := rolloutVersions.LoadOrStore(s, &rolloutVersion{ver: map[string]uint64{}})
	return v.(*rolloutVersion)
}

// RolloutVersion returns how many times rollout id was written through
// this Store since it was opened (the state file is this process's
// alone): a cached decoding of a record read with Version v is current
// while RolloutVersion answers v.
func (s *Store) RolloutVersion(id string) uint64 {
	rv := s.rolloutVersion()
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.ver[id]
}

// CreateRollout stores r under its ID unless a rollout of that ID exists:
// then it stores nothing and returns the existing one with created false
// (a resubmission finds the rollout it already made). Created and Updated
// are set from Now.
func (s *Store) CreateRollout(r Rollout) (out Rollout, created bool, err error) {
	if r.ID == "" {
		return Rollout{}, false, fmt.Errorf("create rollout: id: %w", ErrInvalid)
	}
	rv := s.rolloutVersion()
	rv.mu.Lock()
	defer rv.mu.Unlock()
	err = s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRollouts)
		if err != nil {
			return err
		}
		if getJSON(b, []byte(r.ID), &out) == nil {
			return nil
		}
		r.Created, r.Updated = s.now(), s.now()
		out, created = r, true
		return putJSON(b, []byte(r.ID), r)
	})
	if err != nil {
		return Rollout{}, false, fmt.Errorf("create rollout %s: %w", r.ID, err)
	}
	if created {
		rv.ver[r.ID]++
	}
	out.Version = rv.ver[r.ID]
	return out, created, nil
}

// UpdateRollout reads rollout id, calls fn on it and stores the result,
// all in one write transaction, so that an operator's pause or cancel and
// the coordinator's progress never undo each other. Updated is set from
// Now; fn cannot change ID or Created (ErrInvalid). An error from fn
// stores nothing and is returned; ErrNotFound if there is no such
// rollout. fn runs inside the transaction: it must be quick and must not
// call the Store.
func (s *Store) UpdateRollout(id string, fn func(*Rollout) error) (Rollout, error) {
	var r Rollout
	rv := s.rolloutVersion()
	rv.mu.Lock()
	defer rv.mu.Unlock()
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		if b == nil {
			return ErrNotFound
		}
		if err := getJSON(b, []byte(id), &r); err != nil {
			return err
		}
		created := r.Created
		if err := fn(&r); err != nil {
			return err
		}
		if r.ID != id || !r.Created.Equal(created) {
			return fmt.Errorf("the update changed the id or creation time: %w", ErrInvalid)
		}
		r.Updated = s.now()
		return putJSON(b, []byte(id), r)
	})
	if err != nil {
		return Rollout{}, fmt.Errorf("update rollout %s: %w", id, err)
	}
	rv.ver[id]++
	r.Version = rv.ver[id]
	return r, nil
}

// Rollout returns one rollout; ErrNotFound if it does not exist.
func (s *Store) Rollout(id string) (Rollout, error) {
	var r Rollout
	ver := s.RolloutVersion(id) // before the read: a write meanwhile makes it stale, never the reverse
	r.Version = ver
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		if b == nil {
			return ErrNotFound
		}
		return getJSON(b, []byte(id), &r)
	})
	if err != nil {
		return Rollout{}, fmt.Errorf("rollout %s: %w", id, err)
	}
	r.Version = ver
	return r, nil
}

// Rollouts returns up to limit rollouts, newest first (limit <= 0: all).
func (s *Store) Rollouts(limit int) ([]Rollout, error) {
	var out []Rollout
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r Rollout
			if err := decode(k, v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID > out[j].ID
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// SetRolloutIssue records that channel's messages about rollout id go to
// Jira issue key (its first message filed it): later messages, also after
// a restart, comment on it instead of filing another.
func (s *Store) SetRolloutIssue(id, channel, key string) error {
	_, err := s.UpdateRollout(id, func(r *Rollout) error {
		if r.Issues == nil {
			r.Issues = map[string]string{}
		}
		r.Issues[channel] = key
		return nil
	})
	return err
}
