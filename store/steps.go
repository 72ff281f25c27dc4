package store

import (
	"bytes"
	"fmt"

	deployer "github.com/sre-tools/deployer"

	bolt "go.etcd.io/bbolt"
)

// StepRecord is one attempt of one step of one instance in a run, with the
// exact inputs needed to replay it: the vocabulary's step result (its fields
// are the record's, flat in the JSON) with the run's id and an order.
type StepRecord struct {
	Run RunID `json:"run"`
	Seq int   `json:"seq"` // assigned by AddStep, in insertion order
	deployer.StepResult
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
