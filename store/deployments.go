package store

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Deployment is an operator's request over many instances, tracked per
// instance. Spec is opaque to the store. A deployment with a zero Finished
// time is in progress and never pruned.
type Deployment struct {
	ID        string            `json:"id"`
	Repo      string            `json:"repo"`
	State     string            `json:"state"`
	Instances map[string]string `json:"instances,omitempty"` // instance name -> status
	Spec      json.RawMessage   `json:"spec,omitempty"`
	Created   time.Time         `json:"created"`
	Updated   time.Time         `json:"updated"`
	Finished  time.Time         `json:"finished,omitzero"`
}

// PutDeployment stores d, assigning an ID (ordered by creation) when empty
// and Created/Updated from Now. Putting an existing ID replaces it but
// keeps its Created time. Replacing a deployment from a copy the caller
// holds loses what another writer changed since (a cancel, say): new code
// creates with PutDeployment and changes with UpdateDeployment.
func (s *Store) PutDeployment(d Deployment) (Deployment, error) {
	if d.Repo == "" {
		return Deployment{}, fmt.Errorf("put deployment: repo: %w", ErrInvalid)
	}
	now := s.now()
	d.Updated = now
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeployments)
		if d.ID == "" {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			d.ID = fmt.Sprintf("d%015d", seq)
		}
		var old Deployment
		if getJSON(b, []byte(d.ID), &old) == nil {
			d.Created = old.Created
		}
		if d.Created.IsZero() {
			d.Created = now
		}
		return putJSON(b, []byte(d.ID), d)
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("put deployment %s: %w", d.ID, err)
	}
	return d, nil
}

// UpdateDeployment reads deployment id, calls fn on it and stores the
// result, all in one write transaction, so that a concurrent writer's
// change (a cancel while the worker records progress) is never lost.
// Updated is set from Now; fn cannot change ID or Created (ErrInvalid). An
// error from fn stores nothing and is returned; ErrNotFound if there is no
// such deployment. fn runs inside the transaction: it must be quick and
// must not call the Store.
func (s *Store) UpdateDeployment(id string, fn func(*Deployment) error) (Deployment, error) {
	var d Deployment
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeployments)
		if err := getJSON(b, []byte(id), &d); err != nil {
			return err
		}
		created := d.Created
		if err := fn(&d); err != nil {
			return err
		}
		if d.ID != id || !d.Created.Equal(created) || d.Repo == "" {
			return fmt.Errorf("the update changed the id, creation time or repo: %w", ErrInvalid)
		}
		d.Updated = s.now()
		return putJSON(b, []byte(id), d)
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("update deployment %s: %w", id, err)
	}
	return d, nil
}

// Deployment returns one deployment; ErrNotFound if it does not exist.
func (s *Store) Deployment(id string) (Deployment, error) {
	var d Deployment
	err := s.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketDeployments), []byte(id), &d)
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", id, err)
	}
	return d, nil
}

// Deployments returns up to limit deployments of repo (every repo when
// ""), newest first. limit <= 0 means no limit.
func (s *Store) Deployments(repo string, limit int) ([]Deployment, error) {
	var out []Deployment
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeployments).ForEach(func(k, v []byte) error {
			var d Deployment
			if err := decode(k, v, &d); err != nil {
				return err
			}
			if repo == "" || d.Repo == repo {
				out = append(out, d)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
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
