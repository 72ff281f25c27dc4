package store

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
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
		if getDeployment(b, d.ID, &old) == nil {
			d.Created = old.Created
		}
		if d.Created.IsZero() {
			d.Created = now
		}
		return putDeployment(b, d)
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
		if err := getDeployment(b, id, &d); err != nil {
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
		return putDeployment(b, d)
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
		return getDeployment(tx.Bucket(bucketDeployments), id, &d)
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
			if err := decodeDeployment(k, v, &d); err != nil {
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

// A deployment's record holds its every instance, and is written again as
// the deployment goes (after each bucket): stored as JSON, a deployment of
// 5,000 instances was a value of 750 KB rewritten a few hundred times, and
// the pages each copy freed were too few for the next, larger one, so the
// state file grew by tens of MB. A record larger than compressAbove is
// stored deflated after compactMagic (a tenth of the size); smaller ones,
// and every record written before, are plain JSON. A salvage reads both
// from the tree; a page cut from the tree is carved for JSON records only.
const compressAbove = 16 << 10

// compactMagic starts a deflated record: never the start of JSON.
var compactMagic = []byte("\x00deflate\x00")

var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(io.Discard, flate.BestSpeed)
	return w
}}

func putDeployment(b *bolt.Bucket, d Deployment) error {
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if len(data) > compressAbove {
		var buf bytes.Buffer
		buf.Grow(len(data) / 8)
		buf.Write(compactMagic)
		w := deflaters.Get().(*flate.Writer)
		w.Reset(&buf)
		_, err := w.Write(data)
		if err == nil {
			err = w.Close()
		}
		deflaters.Put(w)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		data = buf.Bytes()
	}
	return b.Put([]byte(d.ID), data)
}

func getDeployment(b *bolt.Bucket, id string, d *Deployment) error {
	v := b.Get([]byte(id))
	if v == nil {
		return ErrNotFound
	}
	return decodeDeployment([]byte(id), v, d)
}

// decodeDeployment decodes a deployment record, plain or deflated.
func decodeDeployment(k, v []byte, d *Deployment) error {
	if rest, ok := bytes.CutPrefix(v, compactMagic); ok {
		r := flate.NewReader(bytes.NewReader(rest))
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("decode %x: inflate: %w", k, err)
		}
		v = data
	}
	return decode(k, v, d)
}
