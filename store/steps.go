package store

import (
	"bytes"
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

// stepKey is run id then seq: one run's records are contiguous and in
// order, and records pack densely into pages.
func stepKey(run RunID, seq uint64) []byte {
	return append(u64key(uint64(run)), u64key(seq)...)
}

// lastStepSeq returns the highest seq recorded for run, 0 if none.
func lastStepSeq(b *bolt.Bucket, run RunID) uint64 {
	c := b.Cursor()
	k, _ := c.Seek(stepKey(run+1, 0))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if len(k) != 16 || keyU64(k[:8]) != uint64(run) {
		return 0
	}
	return keyU64(k[8:])
}

// AddStep appends rec to its run's step records, assigning rec.Seq.
// ErrNotFound if the run does not exist.
func (s *Store) AddStep(rec StepRecord) error {
	err := s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRuns).Get(u64key(uint64(rec.Run))) == nil {
			return ErrNotFound
		}
		b := tx.Bucket(bucketSteps)
		seq := lastStepSeq(b, rec.Run) + 1
		rec.Seq = int(seq)
		return putJSON(b, stepKey(rec.Run, seq), rec)
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
	prefix := u64key(uint64(run))
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSteps).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var rec StepRecord
			if err := decode(k, v, &rec); err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("steps of run %d: %w", run, err)
	}
	return out, nil
}

// deleteSteps removes every step record of run.
func deleteSteps(tx *bolt.Tx, run RunID) error {
	prefix := u64key(uint64(run))
	c := tx.Bucket(bucketSteps).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
