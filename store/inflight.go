package store

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// InflightStep is a step that may change its instance file, recorded
// before its process starts and removed once the daemon has captured its
// change or rolled it back. A record that survives a restart names
// half-done work: the daemon restores the file from the checkout's HEAD
// and runs the instance again.
type InflightStep struct {
	Repo     string    `json:"repo"`
	Instance string    `json:"instance"`
	File     string    `json:"file"`
	Step     string    `json:"step"`
	Run      RunID     `json:"run,omitempty"`
	Started  time.Time `json:"started"`
}

func inflightKey(repo, instance, step string) []byte {
	k := append([]byte(repo), 0)
	k = append(k, instance...)
	k = append(k, 0)
	return append(k, step...)
}

// BeginStep records st as in flight (replacing an older record of the same
// repo, instance and step). Started defaults to Now.
func (s *Store) BeginStep(st InflightStep) error {
	if st.Repo == "" || st.Instance == "" || st.Step == "" {
		return fmt.Errorf("begin step: repo, instance and step: %w", ErrInvalid)
	}
	if st.Started.IsZero() {
		st.Started = s.now()
	}
	err := s.update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketInflight), inflightKey(st.Repo, st.Instance, st.Step), st)
	})
	if err != nil {
		return fmt.Errorf("record step %s of %s/%s in flight: %w", st.Step, st.Repo, st.Instance, err)
	}
	return nil
}

// EndStep removes the in-flight record of (repo, instance, step); removing
// one that is not there is not an error.
func (s *Store) EndStep(repo, instance, step string) error {
	err := s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInflight).Delete(inflightKey(repo, instance, step))
	})
	if err != nil {
		return fmt.Errorf("clear step %s of %s/%s in flight: %w", step, repo, instance, err)
	}
	return nil
}

// InflightSteps returns the in-flight records of repo, ordered by instance
// and step.
func (s *Store) InflightSteps(repo string) ([]InflightStep, error) {
	var out []InflightStep
	prefix := append([]byte(repo), 0)
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketInflight).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var st InflightStep
			if err := decode(k, v, &st); err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("in-flight steps of %s: %w", repo, err)
	}
	return out, nil
}
