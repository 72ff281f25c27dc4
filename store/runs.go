package store

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	deployer "github.com/sre-tools/deployer"

	bolt "go.etcd.io/bbolt"
)

// RunID identifies a run; ids grow with creation order.
type RunID uint64

// Trigger says why a run happened. Kind is one of the Trigger* constants.
type Trigger struct {
	Kind   deployer.TriggerKind `json:"kind"`
	Detail string               `json:"detail,omitempty"`
	At     time.Time            `json:"at"`
}

// Trigger kinds are the vocabulary's (package deployer); CreateRun and
// UpdateRun refuse any other (ErrInvalid). The names here are the same
// constants, for the store's callers and tests.
const (
	TriggerPoll       = deployer.TriggerPoll
	TriggerPush       = deployer.TriggerPush
	TriggerManual     = deployer.TriggerManual
	TriggerSchedule   = deployer.TriggerSchedule
	TriggerDeployment = deployer.TriggerDeployment
	TriggerReplay     = deployer.TriggerReplay
	TriggerStartup    = deployer.TriggerStartup
	TriggerRetry      = deployer.TriggerRetry
	TriggerBaseline   = deployer.TriggerBaseline
)

// checkTriggers refuses a trigger kind that is not in TriggerKinds: a
// misspelt kind would otherwise be stored for good and shown by every
// listing, and no filter on the kind would find the run.
func checkTriggers(ts []Trigger) error {
	for _, t := range ts {
		if !slices.Contains(deployer.TriggerKinds, t.Kind) {
			return fmt.Errorf("trigger kind %q is not one of %v: %w", t.Kind, deployer.TriggerKinds, ErrInvalid)
		}
	}
	return nil
}

// RunStatus is the vocabulary's run status; the constants are the same.
type RunStatus = deployer.RunStatus

// Run statuses.
const (
	RunRunning     = deployer.RunRunning
	RunSucceeded   = deployer.RunSucceeded
	RunFailed      = deployer.RunFailed
	RunInterrupted = deployer.RunInterrupted
	RunBlocked     = deployer.RunBlocked
	RunInvalid     = deployer.RunInvalid
)

// Instance outcome statuses: an instance of a run ends with its steps'
// status (the vocabulary's step statuses).
const (
	InstanceSucceeded   = string(deployer.StepSucceeded)
	InstanceFailed      = string(deployer.StepFailed)
	InstanceSkipped     = string(deployer.StepSkipped)
	InstanceNotStarted  = string(deployer.StepNotStarted)
	InstanceInterrupted = string(deployer.StepInterrupted)
)

// InstanceOutcome is one planned instance of a run and how it ended.
type InstanceOutcome struct {
	Name   string `json:"name"`
	File   string `json:"file,omitempty"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Commit is the commit the instance's steps ran at when it is not the
	// run's (a deployment's instance runs at the commit of its edit).
	Commit string `json:"commit,omitempty"`
	// Reasons say why the instance was planned (planner's reasons: its
	// file changed, a step script changed, the manifest changed, a retry).
	Reasons []string `json:"reasons,omitempty"`
}

// Run is one pass of the pipeline over one repo.
type Run struct {
	ID       RunID     `json:"id"`
	Repo     string    `json:"repo"`
	Triggers []Trigger `json:"triggers,omitempty"`
	// Base is the last deployed commit before the run; Commit the one it ran at.
	Base      string            `json:"base,omitempty"`
	Commit    string            `json:"commit,omitempty"`
	Status    RunStatus         `json:"status"`
	Error     string            `json:"error,omitempty"`
	Started   time.Time         `json:"started"`
	Ended     time.Time         `json:"ended,omitzero"`
	Instances []InstanceOutcome `json:"instances,omitempty"`
}

// CreateRun stores r under a new id and returns it. Started defaults to
// Now and Status to running.
func (s *Store) CreateRun(r Run) (RunID, error) {
	if r.Repo == "" {
		return 0, fmt.Errorf("create run: repo: %w", ErrInvalid)
	}
	if err := checkTriggers(r.Triggers); err != nil {
		return 0, fmt.Errorf("create run: %w", err)
	}
	if r.Started.IsZero() {
		r.Started = s.now()
	}
	if r.Status == "" {
		r.Status = RunRunning
	}
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		r.ID = RunID(seq)
		return s.putRun(tx, r, nil)
	})
	if err != nil {
		return 0, fmt.Errorf("create run: %w", err)
	}
	return r.ID, nil
}

// UpdateRun replaces the stored run r.ID; ErrNotFound if there is none.
func (s *Store) UpdateRun(r Run) error {
	if err := checkTriggers(r.Triggers); err != nil {
		return fmt.Errorf("update run %d: %w", r.ID, err)
	}
	err := s.update(func(tx *bolt.Tx) error {
		var old Run
		if err := getJSON(tx.Bucket(bucketRuns), u64key(uint64(r.ID)), &old); err != nil {
			return err
		}
		if r.Repo == "" {
			r.Repo = old.Repo
		}
		return s.putRun(tx, r, &old)
	})
	if err != nil {
		return fmt.Errorf("update run %d: %w", r.ID, err)
	}
	return nil
}

// putRun writes r and its index entries; old is its previous version, nil
// for a new run.
func (s *Store) putRun(tx *bolt.Tx, r Run, old *Run) error {
	if err := putJSON(tx.Bucket(bucketRuns), u64key(uint64(r.ID)), r); err != nil {
		return err
	}
	return indexRun(tx, r, old)
}

func runRepoKey(repo string, id RunID) []byte {
	return append(append([]byte(repo), 0), u64key(uint64(id))...)
}

// indexRun keeps run_repo and run_active in step with r.
func indexRun(tx *bolt.Tx, r Run, old *Run) error {
	byRepo := tx.Bucket(indexRunRepo)
	if old != nil && old.Repo != r.Repo {
		if err := byRepo.Delete(runRepoKey(old.Repo, r.ID)); err != nil {
			return err
		}
	}
	if err := byRepo.Put(runRepoKey(r.Repo, r.ID), nil); err != nil {
		return err
	}
	active := tx.Bucket(indexRunActive)
	if r.Status == RunRunning {
		return active.Put(u64key(uint64(r.ID)), nil)
	}
	return active.Delete(u64key(uint64(r.ID)))
}

// deleteRun removes a run, its step records and its index entries.
func deleteRun(tx *bolt.Tx, r Run) error {
	key := u64key(uint64(r.ID))
	if err := deleteSteps(tx, r.ID); err != nil {
		return err
	}
	if err := tx.Bucket(indexRunRepo).Delete(runRepoKey(r.Repo, r.ID)); err != nil {
		return err
	}
	if err := tx.Bucket(indexRunActive).Delete(key); err != nil {
		return err
	}
	return tx.Bucket(bucketRuns).Delete(key)
}

// Run returns one run; ErrNotFound if it does not exist.
func (s *Store) Run(id RunID) (Run, error) {
	var r Run
	err := s.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketRuns), u64key(uint64(id)), &r)
	})
	if err != nil {
		return Run{}, fmt.Errorf("run %d: %w", id, err)
	}
	return r, nil
}

// Runs returns up to limit runs of repo (all repos when repo is ""), newest
// first. limit <= 0 means no limit.
func (s *Store) Runs(repo string, limit int) ([]Run, error) {
	var out []Run
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		if repo == "" {
			out, err = allRuns(tx, limit)
		} else {
			out, err = repoRuns(tx, repo, limit)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

func allRuns(tx *bolt.Tx, limit int) ([]Run, error) {
	var out []Run
	c := tx.Bucket(bucketRuns).Cursor()
	for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
		var r Run
		if err := decode(k, v, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// repoRuns walks the run_repo index backwards from the repo's newest run.
func repoRuns(tx *bolt.Tx, repo string, limit int) ([]Run, error) {
	var out []Run
	prefix := append([]byte(repo), 0)
	runs := tx.Bucket(bucketRuns)
	c := tx.Bucket(indexRunRepo).Cursor()
	k, _ := c.Seek(runRepoKey(repo, RunID(^uint64(0))))
	if k == nil {
		k, _ = c.Last()
	}
	for ; k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Prev() {
		if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
			if bytes.Compare(k, prefix) < 0 {
				break
			}
			continue
		}
		var r Run
		if err := getJSON(runs, k[len(prefix):], &r); err != nil {
			return nil, fmt.Errorf("run index %x: %w", k, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// InterruptRunning marks every run still running as interrupted and
// returns their ids (see interrupt for its instances). The daemon calls it
// at start, before it creates runs.
func (s *Store) InterruptRunning() ([]RunID, error) {
	var ids []RunID
	now := s.now()
	err := s.update(func(tx *bolt.Tx) error {
		running, err := runningRuns(tx)
		if err != nil {
			return err
		}
		for _, r := range running {
			old := r
			interrupt(tx, &r, now)
			if err := s.putRun(tx, r, &old); err != nil {
				return err
			}
			ids = append(ids, r.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("interrupt running runs: %w", err)
	}
	return ids, nil
}

func runningRuns(tx *bolt.Tx) ([]Run, error) {
	var out []Run
	runs := tx.Bucket(bucketRuns)
	err := tx.Bucket(indexRunActive).ForEach(func(k, _ []byte) error {
		var r Run
		if err := getJSON(runs, k, &r); err != nil {
			return fmt.Errorf("active run %x: %w", k, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// interrupt finishes r as interrupted. Its instances that had not ended
// when the daemon stopped (a kill leaves every instance of the run as
// planned: outcomes are written on the run when it ends) are settled from
// what is durable: one whose state says it succeeded in this run (written
// with its last step's record, AddFinalStep) succeeded, and is not run
// again; the others are interrupted (cut off mid-step or not started:
// nothing durable tells which, a step's attempt being recorded when it
// ends), and redone.
func interrupt(tx *bolt.Tx, r *Run, now time.Time) {
	r.Status = RunInterrupted
	if r.Error == "" {
		r.Error = "daemon stopped during the run"
	}
	r.Ended = now
	for i := range r.Instances {
		o := &r.Instances[i]
		switch o.Status {
		case InstanceSucceeded, InstanceFailed, InstanceSkipped, InstanceInterrupted, string(deployer.StepTimedOut):
		case "", InstanceNotStarted:
			o.Status = InstanceNotStarted
		default:
			if finished(tx, r, o.Name) {
				o.Status, o.Reason = InstanceSucceeded, ""
			} else {
				o.Status = InstanceInterrupted
			}
		}
	}
}

// finished reports whether instance name of run r succeeded in r by its
// durable state.
func finished(tx *bolt.Tx, r *Run, name string) bool {
	var st InstanceState
	if getJSON(tx.Bucket(bucketInstances), instanceKey(r.Repo, name), &st) != nil {
		return false
	}
	return st.LastRun == r.ID && st.LastStatus == InstanceSucceeded
}

// RunningRuns returns the runs of repo still recorded as running.
func (s *Store) RunningRuns(repo string) ([]Run, error) {
	var out []Run
	err := s.view(func(tx *bolt.Tx) error {
		all, err := runningRuns(tx)
		for _, r := range all {
			if r.Repo == repo {
				out = append(out, r)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("running runs of %s: %w", repo, err)
	}
	return out, nil
}

// InterruptRun finishes run id as interrupted (with why, when it has no
// error yet) if it is still running; it reports whether it changed it.
func (s *Store) InterruptRun(id RunID, why string) (bool, error) {
	changed := false
	err := s.update(func(tx *bolt.Tx) error {
		var r Run
		if err := getJSON(tx.Bucket(bucketRuns), u64key(uint64(id)), &r); err != nil {
			return err
		}
		if r.Status != RunRunning {
			return nil
		}
		old := r
		if r.Error == "" {
			r.Error = why
		}
		interrupt(tx, &r, s.now())
		changed = true
		return s.putRun(tx, r, &old)
	})
	if err != nil {
		return false, fmt.Errorf("interrupt run %d: %w", id, err)
	}
	return changed, nil
}
