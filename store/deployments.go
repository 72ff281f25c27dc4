package store

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Deployment is an operator's request over many instances, tracked per
// instance. Spec and Details are opaque to the store. A deployment with a
// zero Finished time is in progress and never pruned.
//
// The record is stored in two parts: the summary (everything but the
// instances: a small record) under the id, and one record per instance
// (its status and its Details) in its own bucket, keyed by the id and the
// instance's name. A deployment's progress then writes the instances that
// changed, not all of them: a 5,000-instance deployment rewrote 750 KB per
// bucket of 50 (its cost per instance grew with its size, and the state
// file by tens of MB). Records written before keep their instances in the
// summary and are read as they are.
type Deployment struct {
	ID        string            `json:"id"`
	Repo      string            `json:"repo"`
	State     string            `json:"state"`
	Instances map[string]string `json:"instances,omitempty"` // instance name -> status
	// Details holds, by instance name, the caller's record of each
	// instance (opaque to the store), stored with its status.
	Details  map[string]json.RawMessage `json:"-"`
	Spec     json.RawMessage            `json:"spec,omitempty"`
	Created  time.Time                  `json:"created"`
	Updated  time.Time                  `json:"updated"`
	Finished time.Time                  `json:"finished,omitzero"`

	legacy bool // read from a record of the old layout (instances in the summary)
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
		if getDeployment(tx, d.ID, &old, true) == nil {
			d.Created = old.Created
		}
		if d.Created.IsZero() {
			d.Created = now
		}
		return putDeployment(tx, d, &old, true)
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("put deployment %s: %w", d.ID, err)
	}
	return d, nil
}

// CreateDeployment creates d under its ID, which the caller chose (a
// client's id, never the daemon's sequence), in one write transaction:
// when a deployment with that ID exists already, nothing is written and
// it is returned with existed set if same says it answers the same
// request, else the error wraps ErrExists. Created and Updated are set
// from Now. same runs inside the transaction: it must be quick and must
// not call the Store.
func (s *Store) CreateDeployment(d Deployment, same func(old Deployment) bool) (_ Deployment, existed bool, _ error) {
	if d.Repo == "" || d.ID == "" {
		return Deployment{}, false, fmt.Errorf("create deployment: repo and id: %w", ErrInvalid)
	}
	now := s.now()
	var old Deployment
	err := s.update(func(tx *bolt.Tx) error {
		switch err := getDeployment(tx, d.ID, &old, true); {
		case err == nil:
			existed = true
			if !same(old) {
				return ErrExists
			}
			return nil
		case !errors.Is(err, ErrNotFound):
			return err
		}
		d.Created, d.Updated = now, now
		return putDeployment(tx, d, nil, true)
	})
	if err != nil {
		return Deployment{}, false, fmt.Errorf("create deployment %s: %w", d.ID, err)
	}
	if existed {
		old.legacy = false
		return old, true, nil
	}
	return d, false, nil
}

// UpdateDeployment reads deployment id, calls fn on it and stores the
// result, all in one write transaction, so that a concurrent writer's
// change (a cancel while the worker records progress) is never lost.
// Updated is set from Now; fn cannot change ID or Created (ErrInvalid). An
// error from fn stores nothing and is returned; ErrNotFound if there is no
// such deployment. fn runs inside the transaction: it must be quick and
// must not call the Store. Only the instances whose status or details fn
// changed are written again (and those it removed deleted).
func (s *Store) UpdateDeployment(id string, fn func(*Deployment) error) (Deployment, error) {
	return s.updateDeployment(id, true, fn)
}

// PatchDeployment is UpdateDeployment without the instances: fn gets the
// summary with Instances and Details empty, and what it puts in them is
// written (an instance's status, its details, or both), the other
// instances staying as they are stored; none is deleted. It costs the
// instances fn writes, not the deployment's size: a worker records a
// bucket's progress with it.
func (s *Store) PatchDeployment(id string, fn func(*Deployment) error) (Deployment, error) {
	return s.updateDeployment(id, false, fn)
}

func (s *Store) updateDeployment(id string, whole bool, fn func(*Deployment) error) (Deployment, error) {
	var d Deployment
	err := s.update(func(tx *bolt.Tx) error {
		var old Deployment
		if err := getDeployment(tx, id, &old, whole); err != nil {
			return err
		}
		if old.legacy {
			// A record of the old layout, all in one: its instances
			// move to records of their own.
			if err := putInstances(tx, old, nil); err != nil {
				return err
			}
			old.legacy = false
			if !whole {
				old.Instances = nil
			}
		}
		d = old
		d.Instances, d.Details = maps.Clone(old.Instances), maps.Clone(old.Details)
		created := d.Created
		if err := fn(&d); err != nil {
			return err
		}
		if d.ID != id || !d.Created.Equal(created) || d.Repo == "" {
			return fmt.Errorf("the update changed the id, creation time or repo: %w", ErrInvalid)
		}
		d.Updated = s.now()
		return putDeployment(tx, d, &old, whole)
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("update deployment %s: %w", id, err)
	}
	return d, nil
}

// Deployment returns one deployment with its instances; ErrNotFound if it
// does not exist.
func (s *Store) Deployment(id string) (Deployment, error) {
	return s.deployment(id, true)
}

// DeploymentSummary returns one deployment without its instances (for a
// record of the old layout, with them): its cost does not grow with the
// deployment's size. ErrNotFound if it does not exist.
func (s *Store) DeploymentSummary(id string) (Deployment, error) {
	return s.deployment(id, false)
}

func (s *Store) deployment(id string, whole bool) (Deployment, error) {
	var d Deployment
	err := s.view(func(tx *bolt.Tx) error {
		return getDeployment(tx, id, &d, whole)
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", id, err)
	}
	return d, nil
}

// Deployments returns up to limit deployments of repo (every repo when
// ""), newest first, with their instances. limit <= 0 means no limit.
func (s *Store) Deployments(repo string, limit int) ([]Deployment, error) {
	var out []Deployment
	err := s.view(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketDeployments).ForEach(func(k, v []byte) error {
			var d Deployment
			if err := decodeDeployment(k, v, &d); err != nil {
				return err
			}
			if repo == "" || d.Repo == repo {
				out = append(out, d)
			}
			return nil
		})
		if err != nil {
			return err
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
		for i := range out {
			if err := getInstances(tx, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	return out, nil
}

// instancePrefix is where deployment id's instance records start.
func instancePrefix(id string) []byte {
	return append([]byte(id), 0)
}

// instanceRecord encodes an instance's status and details: the status,
// a NUL, the details.
func instanceRecord(status string, detail []byte) []byte {
	v := make([]byte, 0, len(status)+1+len(detail))
	v = append(append(append(v, status...), 0), detail...)
	return v
}

// validInstanceRecord tells whether k, v is an instance record.
func validInstanceRecord(k, v []byte) bool {
	return bytes.IndexByte(k, 0) > 0 && bytes.IndexByte(v, 0) >= 0
}

// instancesBucket is the bucket of the instance records, created when a
// file made before it lacks it.
func instancesBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	if b := tx.Bucket(bucketDeploymentInstances); b != nil {
		return b, nil
	}
	if !tx.Writable() {
		return nil, nil
	}
	return tx.CreateBucket(bucketDeploymentInstances)
}

// getInstances reads d's instance records into d.Instances and d.Details
// (a record of the old layout has its instances already, and none).
func getInstances(tx *bolt.Tx, d *Deployment) error {
	b, err := instancesBucket(tx)
	if err != nil || b == nil {
		return err
	}
	prefix := instancePrefix(d.ID)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		i := bytes.IndexByte(v, 0)
		if i < 0 {
			return fmt.Errorf("decode %x: not an instance record", k)
		}
		if d.Instances == nil {
			d.Instances = map[string]string{}
		}
		name := string(k[len(prefix):])
		d.Instances[name] = string(v[:i])
		if len(v) > i+1 {
			if d.Details == nil {
				d.Details = map[string]json.RawMessage{}
			}
			d.Details[name] = bytes.Clone(v[i+1:])
		}
	}
	return nil
}

// putInstances writes d's instances that differ from old's (nil: all of
// them): an instance is in d.Instances or d.Details or both, and what one
// lacks comes from old.
func putInstances(tx *bolt.Tx, d Deployment, old *Deployment) error {
	b, err := instancesBucket(tx)
	if err != nil {
		return err
	}
	var prev Deployment
	if old != nil {
		prev = *old
	}
	// Written in key order, pages filled to 90%: a deployment's
	// instances are created together and change a bucket at a time.
	b.FillPercent = 0.9
	put := func(name string) error {
		st, okSt := d.Instances[name]
		if !okSt {
			st = prev.Instances[name]
		}
		detail, okDe := d.Details[name]
		if !okDe {
			detail = prev.Details[name]
		}
		if old == nil && (!okSt || !okDe) {
			// A patch of one part: the other stays as stored.
			if v := b.Get(append(instancePrefix(d.ID), name...)); v != nil {
				if i := bytes.IndexByte(v, 0); i >= 0 {
					if !okSt {
						st = string(v[:i])
					}
					if !okDe {
						detail = bytes.Clone(v[i+1:])
					}
				}
			}
		}
		if old != nil {
			if ost, had := prev.Instances[name]; had && ost == st && bytes.Equal(prev.Details[name], detail) {
				return nil
			}
		}
		return b.Put(append(instancePrefix(d.ID), name...), instanceRecord(st, detail))
	}
	names := make([]string, 0, len(d.Instances))
	for name := range d.Instances {
		names = append(names, name)
	}
	for name := range d.Details {
		if _, ok := d.Instances[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if err := put(name); err != nil {
			return err
		}
	}
	return nil
}

// deleteInstances removes deployment id's instance records but those in
// keep.
func deleteInstances(tx *bolt.Tx, id string, keep func(name string) bool) error {
	b, err := instancesBucket(tx)
	if err != nil || b == nil {
		return err
	}
	prefix := instancePrefix(id)
	var doomed [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if keep == nil || !keep(string(k[len(prefix):])) {
			doomed = append(doomed, bytes.Clone(k))
		}
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
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

// putDeployment writes d's summary and its instances: with whole, d's
// instances are all it has (those of old it lacks are deleted), otherwise
// only those it holds are written.
func putDeployment(tx *bolt.Tx, d Deployment, old *Deployment, whole bool) error {
	summary := d
	summary.Instances, summary.Details = nil, nil
	data, err := json.Marshal(summary)
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
	if err := tx.Bucket(bucketDeployments).Put([]byte(d.ID), data); err != nil {
		return err
	}
	if whole {
		if err := deleteInstances(tx, d.ID, func(name string) bool {
			_, st := d.Instances[name]
			_, de := d.Details[name]
			return st || de
		}); err != nil {
			return err
		}
		return putInstances(tx, d, old)
	}
	return putInstances(tx, d, nil)
}

// getDeployment reads deployment id's summary and, with whole, its
// instances.
func getDeployment(tx *bolt.Tx, id string, d *Deployment, whole bool) error {
	v := tx.Bucket(bucketDeployments).Get([]byte(id))
	if v == nil {
		return ErrNotFound
	}
	if err := decodeDeployment([]byte(id), v, d); err != nil {
		return err
	}
	d.legacy = d.Instances != nil
	if whole {
		return getInstances(tx, d)
	}
	return nil
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
