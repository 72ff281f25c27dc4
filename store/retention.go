package store

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Limit bounds one kind of record by age and by count; a zero field means
// no bound on that axis.
type Limit struct {
	MaxAge   time.Duration
	MaxCount int
}

// Retention says what Prune removes. Unsettled journal entries (pending,
// committed, conflict), unresolved interventions, running runs, unfinished
// deployments and undelivered messages are never removed.
type Retention struct {
	Runs          Limit // per repo; a run's step records go with it
	Interventions Limit // resolved ones, by resolution time
	Deployments   Limit // finished ones, by finish time
	Messages      Limit // delivered ones, by delivery time
	// Journal bounds the settled edits (pushed: the commit on the remote,
	// with its Deployer-Change trailer, is the record from then on; or
	// dropped), by their last update. An unsettled edit is never removed.
	Journal Limit
}

// DefaultRetention keeps 90 days and at most 2,000 runs per repo, 180
// days / 1,000 resolved interventions, 90 days / 500 finished deployments,
// 14 days / 5,000 delivered messages and 365 days / 200,000 settled
// journal entries.
func DefaultRetention() Retention {
	const day = 24 * time.Hour
	return Retention{
		Runs:          Limit{MaxAge: 90 * day, MaxCount: 2000},
		Interventions: Limit{MaxAge: 180 * day, MaxCount: 1000},
		Deployments:   Limit{MaxAge: 90 * day, MaxCount: 500},
		Messages:      Limit{MaxAge: 14 * day, MaxCount: 5000},
		Journal:       Limit{MaxAge: 365 * day, MaxCount: 200000},
	}
}

// PruneStats counts what Prune removed.
type PruneStats struct {
	Runs, Interventions, Deployments, Messages, Journal int
}

// pruneBatch bounds the records removed per write transaction, so that
// readers and writers are not held up for long.
const pruneBatch = 5000

// Prune removes records beyond r, in bounded transactions. Freed pages are
// reused by later writes; Compact returns them to the file system.
func (s *Store) Prune(r Retention) (PruneStats, error) {
	var st PruneStats
	now := s.now()
	steps := []struct {
		name string
		n    *int
		fn   func(tx *bolt.Tx) (int, error)
	}{
		{"runs", &st.Runs, func(tx *bolt.Tx) (int, error) { return pruneRuns(tx, r.Runs, now) }},
		{"interventions", &st.Interventions, func(tx *bolt.Tx) (int, error) { return pruneInterventions(tx, r.Interventions, now) }},
		{"deployments", &st.Deployments, func(tx *bolt.Tx) (int, error) { return pruneDeployments(tx, r.Deployments, now) }},
		{"messages", &st.Messages, func(tx *bolt.Tx) (int, error) { return pruneMessages(tx, r.Messages, now) }},
		{"journal", &st.Journal, func(tx *bolt.Tx) (int, error) { return pruneJournal(tx, r.Journal, now) }},
	}
	for _, step := range steps {
		for {
			var n int
			err := s.update(func(tx *bolt.Tx) error {
				var err error
				n, err = step.fn(tx)
				return err
			})
			if err != nil {
				return st, fmt.Errorf("prune %s: %w", step.name, err)
			}
			*step.n += n
			if n < pruneBatch {
				break
			}
		}
	}
	return st, nil
}

// candidate is a record that retention may remove.
type candidate struct {
	key []byte
	at  time.Time
}

// victims returns the candidates beyond l: the oldest ones past MaxCount,
// and any older than MaxAge; at most pruneBatch.
func victims(cands []candidate, l Limit, now time.Time) []candidate {
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].at.After(cands[j].at) })
	var out []candidate
	for i, c := range cands {
		old := l.MaxAge > 0 && now.Sub(c.at) > l.MaxAge
		over := l.MaxCount > 0 && i >= l.MaxCount
		if old || over {
			out = append(out, c)
		}
		if len(out) == pruneBatch {
			break
		}
	}
	return out
}

func pruneRuns(tx *bolt.Tx, l Limit, now time.Time) (int, error) {
	if l == (Limit{}) {
		return 0, nil
	}
	var doomed []Run
	runs := tx.Bucket(bucketRuns)
	active := tx.Bucket(indexRunActive)
	var repo []byte
	var seen int
	c := tx.Bucket(indexRunRepo).Cursor()
	for k, _ := c.Last(); k != nil && len(doomed) < pruneBatch; k, _ = c.Prev() {
		if len(k) < 9 {
			continue
		}
		id := k[len(k)-8:]
		if r := k[:len(k)-9]; !bytes.Equal(r, repo) {
			repo, seen = bytes.Clone(r), 0
		}
		seen++
		if active.Get(id) != nil {
			continue
		}
		over := l.MaxCount > 0 && seen > l.MaxCount
		if !over && l.MaxAge <= 0 {
			continue
		}
		var r Run
		if err := getJSON(runs, id, &r); err != nil {
			return 0, fmt.Errorf("run index %x: %w", k, err)
		}
		if over || now.Sub(r.Started) > l.MaxAge {
			doomed = append(doomed, r)
		}
	}
	for _, r := range doomed {
		if err := deleteRun(tx, r); err != nil {
			return 0, err
		}
	}
	return len(doomed), nil
}

func pruneInterventions(tx *bolt.Tx, l Limit, now time.Time) (int, error) {
	return pruneWhere(tx, bucketInterventions, l, now, func(k, v []byte) (time.Time, bool, error) {
		var iv Intervention
		err := decode(k, v, &iv)
		return iv.ResolvedAt, iv.Resolved(), err
	}, nil)
}

func pruneDeployments(tx *bolt.Tx, l Limit, now time.Time) (int, error) {
	return pruneWhere(tx, bucketDeployments, l, now, func(k, v []byte) (time.Time, bool, error) {
		var d Deployment
		err := decodeDeployment(k, v, &d)
		return d.Finished, !d.Finished.IsZero(), err
	}, func(id []byte) error { return deleteInstances(tx, string(id), nil) })
}

func pruneMessages(tx *bolt.Tx, l Limit, now time.Time) (int, error) {
	pending := tx.Bucket(indexOutboxPending)
	return pruneWhere(tx, bucketOutbox, l, now, func(k, v []byte) (time.Time, bool, error) {
		var m Message
		err := decode(k, v, &m)
		return m.SentAt, m.Sent(), err
	}, func(key []byte) error { return pending.Delete(key) })
}

func pruneJournal(tx *bolt.Tx, l Limit, now time.Time) (int, error) {
	return pruneWhere(tx, bucketJournal, l, now, func(k, v []byte) (time.Time, bool, error) {
		var e JournalEntry
		err := decode(k, v, &e)
		return e.Updated, e.State == JournalPushed || e.State == JournalDropped, err
	}, nil)
}

// pruneWhere removes from bucket the records that eligible accepts and
// that lie beyond l; also runs unindex on each removed key when given.
func pruneWhere(tx *bolt.Tx, bucket []byte, l Limit, now time.Time,
	eligible func(k, v []byte) (time.Time, bool, error), unindex func([]byte) error) (int, error) {
	if l == (Limit{}) {
		return 0, nil
	}
	b := tx.Bucket(bucket)
	var cands []candidate
	err := b.ForEach(func(k, v []byte) error {
		at, ok, err := eligible(k, v)
		if ok && err == nil {
			cands = append(cands, candidate{key: bytes.Clone(k), at: at})
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	doomed := victims(cands, l, now)
	for _, c := range doomed {
		if err := b.Delete(c.key); err != nil {
			return 0, err
		}
		if unindex != nil {
			if err := unindex(c.key); err != nil {
				return 0, err
			}
		}
	}
	return len(doomed), nil
}
