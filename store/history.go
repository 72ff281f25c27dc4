package store

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// maxHistoryScan bounds how many of a repo's runs InstanceRuns reads to find
// an instance's: a history is for recent evidence, and the walk is over
// one repo's run_repo index, newest first, never over every run.
const maxHistoryScan = 5000

// InstanceRuns returns up to limit runs of repo that planned instance,
// newest first. It walks the repo's run index backwards and stops after
// limit matches or maxHistoryScan runs; retention bounds the runs kept.
func (s *Store) InstanceRuns(repo, instance string, limit int) ([]Run, error) {
	var out []Run
	err := s.view(func(tx *bolt.Tx) error {
		prefix := append([]byte(repo), 0)
		runs := tx.Bucket(bucketRuns)
		c := tx.Bucket(indexRunRepo).Cursor()
		k, _ := c.Seek(runRepoKey(repo, RunID(^uint64(0))))
		if k == nil {
			k, _ = c.Last()
		}
		for seen := 0; k != nil && seen < maxHistoryScan && (limit <= 0 || len(out) < limit); k, _ = c.Prev() {
			if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
				if bytes.Compare(k, prefix) < 0 {
					break
				}
				continue
			}
			seen++
			var r Run
			if err := getJSON(runs, k[len(prefix):], &r); err != nil {
				return fmt.Errorf("run index %x: %w", k, err)
			}
			if slices.ContainsFunc(r.Instances, func(o InstanceOutcome) bool { return o.Name == instance }) {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("runs of %s/%s: %w", repo, instance, err)
	}
	return out, nil
}

// RunSteps returns the step records of run for instance, in order: a read
// of the run's key range only.
func (s *Store) RunSteps(run RunID, instance string) ([]StepRecord, error) {
	recs, err := s.Steps(run)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(recs, func(r StepRecord) bool { return r.Instance != instance }), nil
}

// RunJournal returns the journal entries (write-backs) a run made, of
// every instance or of one, oldest first. The journal keeps settled entries
// only for Retention.Journal, so the scan is over a bounded bucket.
func (s *Store) RunJournal(run RunID, instance string) ([]JournalEntry, error) {
	id := strconv.FormatUint(uint64(run), 10)
	return s.journalWhere(func(e JournalEntry) bool { return e.Run == id && (instance == "" || e.Instance == instance) })
}

// InstanceJournal returns the journal entries of one instance of repo,
// oldest first.
func (s *Store) InstanceJournal(repo, instance string) ([]JournalEntry, error) {
	return s.journalWhere(func(e JournalEntry) bool { return e.Repo == repo && e.Instance == instance })
}

func (s *Store) journalWhere(keep func(JournalEntry) bool) ([]JournalEntry, error) {
	var out []JournalEntry
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = scanJournal(tx, keep)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	slices.SortStableFunc(out, func(a, b JournalEntry) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.ID), []byte(b.ID))
	})
	return out, nil
}
