package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// StepRecord is one attempt of one step of one instance in a run, with the
// exact inputs needed to replay it.
type StepRecord struct {
	Run      RunID  `json:"run"`
	Seq      int    `json:"seq"` // assigned by AddStep, in insertion order
	Instance string `json:"instance"`
	Step     string `json:"step"`
	Attempt  int    `json:"attempt"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`

	Argv        []string          `json:"argv,omitempty"`
	Dir         string            `json:"dir,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	SecretNames []string          `json:"secret_names,omitempty"`

	ExitCode int       `json:"exit_code"`
	Signal   string    `json:"signal,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`

	OutputHead  string `json:"output_head,omitempty"`
	OutputTail  string `json:"output_tail,omitempty"`
	OutputBytes int64  `json:"output_bytes,omitempty"`
	Truncated   bool   `json:"truncated,omitempty"`

	Outputs           map[string]string            `json:"outputs,omitempty"`
	Commit            string                       `json:"commit,omitempty"`
	InstanceBlob      string                       `json:"instance_blob,omitempty"`
	DependencyOutputs map[string]map[string]string `json:"dependency_outputs,omitempty"`
}

// AddStep appends rec to its run's step records, assigning rec.Seq.
// ErrNotFound if the run does not exist.
func (s *Store) AddStep(rec StepRecord) error {
	err := s.update(func(tx *bolt.Tx) error {
		key := u64key(uint64(rec.Run))
		if tx.Bucket(bucketRuns).Get(key) == nil {
			return ErrNotFound
		}
		b, err := tx.Bucket(bucketSteps).CreateBucketIfNotExists(key)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		rec.Seq = int(seq)
		return putJSON(b, u64key(seq), rec)
	})
	if err != nil {
		return fmt.Errorf("add step to run %d: %w", rec.Run, err)
	}
	return nil
}

// Steps returns the step records of run in insertion order; an empty list
// for a run without steps.
func (s *Store) Steps(run RunID) ([]StepRecord, error) {
	var out []StepRecord
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSteps).Bucket(u64key(uint64(run)))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rec StepRecord
			if err := decode(k, v, &rec); err != nil {
				return err
			}
			out = append(out, rec)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("steps of run %d: %w", run, err)
	}
	return out, nil
}
