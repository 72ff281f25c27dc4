package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"

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
// ErrNotFound if the run does not exist. Concurrent calls (the steps of a
// bucket's instances) share transactions (bbolt's Batch). The record is stored compact
// (see storedStep): what it shares with the run's first record, and the
// environment values that repeat its own fields, are not stored again.
func (s *Store) AddStep(rec StepRecord) error {
	err := s.batch(func(tx *bolt.Tx) error { return s.addStep(tx, rec) })
	if err != nil {
		return fmt.Errorf("add step to run %d: %w", rec.Run, err)
	}
	return nil
}

// AddFinalStep is AddStep for the record that finishes an instance, with
// the instance's state st stored in the same transaction: once it
// returns, the instance's outcome is durable with the record that proves
// it (a kill right after loses neither), and InterruptRunning settles the
// instance from it instead of marking it interrupted. It costs no commit
// of its own: the state rides in the record's (batched) transaction.
func (s *Store) AddFinalStep(rec StepRecord, st InstanceState) error {
	if st.Repo == "" || st.Name == "" {
		return fmt.Errorf("add step to run %d: instance state: repo and name: %w", rec.Run, ErrInvalid)
	}
	now := s.now()
	err := s.batch(func(tx *bolt.Tx) error {
		if err := s.addStep(tx, rec); err != nil {
			return err
		}
		return putInstance(tx, st, now)
	})
	if err != nil {
		return fmt.Errorf("add step to run %d: %w", rec.Run, err)
	}
	return nil
}

// addStep appends rec to its run's step records in tx.
func (s *Store) addStep(tx *bolt.Tx, rec StepRecord) error {
	if tx.Bucket(bucketRuns).Get(u64key(uint64(rec.Run))) == nil {
		return ErrNotFound
	}
	b := tx.Bucket(bucketSteps)
	b.FillPercent = appendFill
	seq := lastStepSeq(b, rec.Run) + 1
	rec.Seq = int(seq)
	base, err := s.stepBase(b, rec.Run)
	if err != nil {
		return err
	}
	return putJSON(b, stepKey(rec.Run, seq), compactStep(rec, base))
}

// stepBase returns the first step record of run, which the run's later
// records are stored against; nil when the run has none yet. The last one
// decoded is kept in memory, and used when the stored bytes are the same
// (records are never changed once added; a transaction that failed may
// have added one that is not there).
func (s *Store) stepBase(b *bolt.Bucket, run RunID) (*StepRecord, error) {
	k, v := b.Cursor().Seek(stepKey(run, 0))
	if k == nil || len(k) != 16 || keyU64(k[:8]) != uint64(run) {
		return nil, nil
	}
	s.baseMu.Lock()
	defer s.baseMu.Unlock()
	if s.base != nil && s.base.Run == run && bytes.Equal(s.baseRaw, v) {
		return s.base, nil
	}
	var st storedStep
	if err := decode(k, v, &st); err != nil {
		return nil, err
	}
	rec := st.expand(nil)
	s.base, s.baseRaw = &rec, bytes.Clone(v)
	return s.base, nil
}

// Steps returns the step records of run in insertion order; an empty list
// for a run without steps.
func (s *Store) Steps(run RunID) ([]StepRecord, error) {
	var out []StepRecord
	prefix := u64key(uint64(run))
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSteps).Cursor()
		bases := map[int]*StepRecord{}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var st storedStep
			if err := decode(k, v, &st); err != nil {
				return err
			}
			rec := st.expand(bases[st.Base])
			if len(bases) == 0 {
				bases[rec.Seq] = &rec
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

// storedStep is a step record as stored: the record, less what it shares
// with its run's first record (Base, its seq) and the environment values
// that repeat its own fields. A daemon records every step of every
// instance with the same directory, timeout, host step_env and
// allow_step_dirs, and an environment that differs in a few values: stored
// in full, that was most of the state file after a large deployment.
// Records of schema 4 and earlier have none of these fields and read as
// they are. Should salvage lose a run's first record, its other records
// read without the shared fields.
type storedStep struct {
	StepRecord
	// Base is the seq of the run's record the Same fields are taken from.
	Base int `json:"base,omitempty"`
	// Same says which fields are the base's (sameArgv, ...).
	Same uint8 `json:"same,omitempty"`
	// EnvUnset lists the keys of the base's environment that this
	// record's does not have (with sameEnv).
	EnvUnset []string `json:"env_unset,omitempty"`
	// Derived: DEPLOYER_INSTANCE, DEPLOYER_STEP, DEPLOYER_COMMIT and
	// DEPLOYER_RUN were in the environment with the record's own instance,
	// step, commit and run, and are not stored.
	Derived bool `json:"derived,omitempty"`
}

// The fields a record can share with its base.
const (
	sameArgv uint8 = 1 << iota
	sameDir
	sameTimeout
	sameWrites
	sameStepEnv
	sameAllowStepDirs
	sameEnv
)

// derivedEnv are the environment keys whose values are a record's own
// fields.
func derivedEnv(rec *StepRecord) map[string]string {
	return map[string]string{
		"DEPLOYER_INSTANCE": rec.Instance, "DEPLOYER_STEP": rec.Step,
		"DEPLOYER_COMMIT": rec.Commit, "DEPLOYER_RUN": strconv.FormatUint(uint64(rec.Run), 10),
	}
}

// compactStep is rec as stored against base (nil for the run's first).
func compactStep(rec StepRecord, base *StepRecord) storedStep {
	st := storedStep{StepRecord: rec}
	env := maps.Clone(rec.Env)
	derived := derivedEnv(&rec)
	st.Derived = len(env) > 0
	for k, v := range derived {
		if got, ok := env[k]; !ok || got != v {
			st.Derived = false
		}
	}
	if st.Derived {
		for k := range derived {
			delete(env, k)
		}
	}
	if base != nil {
		st.Base = base.Seq
		share := func(bit uint8, same bool, clear func()) {
			if same {
				st.Same |= bit
				clear()
			}
		}
		share(sameArgv, len(rec.Argv) > 0 && slices.Equal(rec.Argv, base.Argv), func() { st.Argv = nil })
		share(sameDir, rec.Dir != "" && rec.Dir == base.Dir, func() { st.Dir = "" })
		share(sameTimeout, rec.Timeout != "" && rec.Timeout == base.Timeout, func() { st.Timeout = "" })
		share(sameWrites, rec.Writes != "" && rec.Writes == base.Writes, func() { st.Writes = "" })
		share(sameStepEnv, len(rec.StepEnv) > 0 && slices.Equal(rec.StepEnv, base.StepEnv), func() { st.StepEnv = nil })
		share(sameAllowStepDirs, len(rec.AllowStepDirs) > 0 && slices.Equal(rec.AllowStepDirs, base.AllowStepDirs), func() { st.AllowStepDirs = nil })
		inherited := baseEnv(base)
		if len(inherited) > 0 && len(env) > 0 {
			st.Same |= sameEnv
			for k, v := range inherited {
				if got, ok := env[k]; !ok {
					st.EnvUnset = append(st.EnvUnset, k)
				} else if got == v {
					delete(env, k)
				}
			}
			slices.Sort(st.EnvUnset)
		}
	}
	if len(env) == 0 {
		env = nil
	}
	st.Env = env
	if st.Same == 0 {
		st.Base = 0
	}
	return st
}

// baseEnv is the environment a record inherits from its base: the base's,
// less the values derived from the base's own fields.
func baseEnv(base *StepRecord) map[string]string {
	env := maps.Clone(base.Env)
	for k := range derivedEnv(base) {
		delete(env, k)
	}
	return env
}

// expand is the full record of st, whose base (the run's record with seq
// st.Base) is base: nil when st has none, or when it was lost.
func (st storedStep) expand(base *StepRecord) StepRecord {
	rec := st.StepRecord
	env := maps.Clone(rec.Env)
	if env == nil {
		env = map[string]string{}
	}
	if base != nil && base.Seq == st.Base {
		if st.Same&sameArgv != 0 {
			rec.Argv = slices.Clone(base.Argv)
		}
		if st.Same&sameDir != 0 {
			rec.Dir = base.Dir
		}
		if st.Same&sameTimeout != 0 {
			rec.Timeout = base.Timeout
		}
		if st.Same&sameWrites != 0 {
			rec.Writes = base.Writes
		}
		if st.Same&sameStepEnv != 0 {
			rec.StepEnv = slices.Clone(base.StepEnv)
		}
		if st.Same&sameAllowStepDirs != 0 {
			rec.AllowStepDirs = slices.Clone(base.AllowStepDirs)
		}
		if st.Same&sameEnv != 0 {
			for k, v := range baseEnv(base) {
				if _, ok := env[k]; !ok && !slices.Contains(st.EnvUnset, k) {
					env[k] = v
				}
			}
		}
	}
	if st.Derived {
		maps.Copy(env, derivedEnv(&rec))
	}
	if len(env) == 0 {
		env = nil
	}
	rec.Env = env
	return rec
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
