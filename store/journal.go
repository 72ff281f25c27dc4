package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Journal entry states.
const (
	JournalPending   = "pending"   // accepted, not yet committed
	JournalCommitted = "committed" // committed locally, not yet on the remote
	JournalPushed    = "pushed"    // on the remote branch
	JournalDropped   = "dropped"   // already upstream (empty commit) or abandoned by an operator
	JournalConflict  = "conflict"  // held in a push-conflict intervention
)

// openJournalStates are the states in which an edit is not settled; the
// journal_open index lists exactly those entries.
var openJournalStates = []string{JournalPending, JournalCommitted, JournalConflict}

// JournalEntry is one accepted edit of one instance file, recorded before
// the file is touched. Edits is opaque to the store. Only settled entries
// (pushed, dropped) are ever pruned (Retention.Journal).
type JournalEntry struct {
	ID         string          `json:"id"`
	Repo       string          `json:"repo"`
	Instance   string          `json:"instance"`
	File       string          `json:"file"`
	BaseBlob   string          `json:"base_blob,omitempty"`
	Edits      json.RawMessage `json:"edits,omitempty"`
	Author     string          `json:"author,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Run        string          `json:"run,omitempty"`
	Deployment string          `json:"deployment,omitempty"`
	// Trailers are commit trailers the entry's commit carries besides the
	// host's and the run's (Deployer-Deployment and Deployer-Ticket of an
	// edit made inside a deployment, a step's write-back included).
	Trailers map[string]string `json:"trailers,omitempty"`
	// TakeOurs: an operator took ours over a conflict; re-applying it lets
	// ours win values both sides changed (manifest.MergeTakeOurs).
	TakeOurs bool `json:"take_ours,omitempty"`
	// Supersedes lists older entries this one replaces: entries of an
	// earlier attempt of the same step on the same instance file that was
	// rolled back before its edit was committed, and redone. Putting the
	// new entry drops each of them that is still pending and uncommitted,
	// in the same transaction, with a Note naming this entry.
	Supersedes []string `json:"supersedes,omitempty"`
	// Note says why a settled entry was settled without landing.
	Note    string    `json:"note,omitempty"`
	State   string    `json:"state"`
	Commit  string    `json:"commit,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// SupersededNote is the Note of an entry dropped because the step attempt
// that made it was rolled back and redone.
const SupersededNote = "superseded: the step was redone"

func journalOpenKey(repo, id string) []byte {
	return append(append([]byte(repo), 0), id...)
}

// indexJournalEntry keeps journal_open in step with e.
func indexJournalEntry(tx *bolt.Tx, e JournalEntry) error {
	b := tx.Bucket(indexJournalOpen)
	if slices.Contains(openJournalStates, e.State) {
		return b.Put(journalOpenKey(e.Repo, e.ID), nil)
	}
	return b.Delete(journalOpenKey(e.Repo, e.ID))
}

// PutJournal stores e, assigning an ID (ordered by creation) when empty,
// State pending when empty, and Created/Updated from Now. Putting an
// existing ID replaces that entry but keeps its Created time.
func (s *Store) PutJournal(e JournalEntry) (JournalEntry, error) {
	out, err := s.PutJournals([]JournalEntry{e})
	if err != nil {
		return JournalEntry{}, err
	}
	return out[0], nil
}

// PutJournals stores entries as PutJournal does, all in one transaction
// (a deployment journals a bucket's edits at once): every entry is stored,
// or none. It returns them with their IDs and times.
func (s *Store) PutJournals(entries []JournalEntry) ([]JournalEntry, error) {
	now := s.now()
	for _, e := range entries {
		if e.Repo == "" || e.File == "" {
			return nil, fmt.Errorf("journal: repo and file: %w", ErrInvalid)
		}
	}
	var out []JournalEntry
	failed := -1 // the entry whose put failed
	err := s.update(func(tx *bolt.Tx) error {
		out, failed = make([]JournalEntry, 0, len(entries)), -1
		for i, e := range entries {
			e, err := putJournalEntry(tx, e, now)
			if err != nil {
				failed = i
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	switch {
	case err == nil:
		return out, nil
	case failed < 0 && len(entries) != 1:
		return nil, fmt.Errorf("journal %d entries: %w", len(entries), err)
	}
	e := entries[max(failed, 0)]
	return nil, fmt.Errorf("journal %s %s: %w", e.Repo, e.File, err)
}

func putJournalEntry(tx *bolt.Tx, e JournalEntry, now time.Time) (JournalEntry, error) {
	if e.State == "" {
		e.State = JournalPending
	}
	e.Updated = now
	b := tx.Bucket(bucketJournal)
	if e.ID == "" {
		seq, err := b.NextSequence()
		if err != nil {
			return e, err
		}
		e.ID = fmt.Sprintf("j%015d", seq)
	}
	var old JournalEntry
	switch err := getJSON(b, []byte(e.ID), &old); {
	case err == nil:
		e.Created = old.Created
		if old.Repo != e.Repo {
			if err := tx.Bucket(indexJournalOpen).Delete(journalOpenKey(old.Repo, old.ID)); err != nil {
				return e, err
			}
		}
	case !errors.Is(err, ErrNotFound):
		return e, err
	}
	if e.Created.IsZero() {
		e.Created = now
	}
	if err := putJournal(tx, e); err != nil {
		return e, err
	}
	return e, supersede(tx, e, now)
}

// supersede drops the entries e.Supersedes names that are still pending
// and were never committed (an entry with a commit is below e's base, not
// replaced by it); others are left as they are.
func supersede(tx *bolt.Tx, e JournalEntry, now time.Time) error {
	for _, id := range e.Supersedes {
		if id == e.ID {
			continue
		}
		var old JournalEntry
		err := getJSON(tx.Bucket(bucketJournal), []byte(id), &old)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if old.Repo != e.Repo || old.State != JournalPending || old.Commit != "" {
			continue
		}
		old.State, old.Updated = JournalDropped, now
		old.Note = fmt.Sprintf("%s (journal %s)", SupersededNote, e.ID)
		if err := putJournal(tx, old); err != nil {
			return err
		}
	}
	return nil
}

// DropJournal settles entry id as dropped with note (why it will never
// land); an entry that is no longer open is left as it is and returned.
func (s *Store) DropJournal(id, note string) (JournalEntry, error) {
	var e JournalEntry
	now := s.now()
	err := s.update(func(tx *bolt.Tx) error {
		if err := getJSON(tx.Bucket(bucketJournal), []byte(id), &e); err != nil {
			return err
		}
		if !slices.Contains(openJournalStates, e.State) {
			return nil
		}
		e.State, e.Updated, e.Note = JournalDropped, now, note
		return putJournal(tx, e)
	})
	if err != nil {
		return JournalEntry{}, fmt.Errorf("drop journal entry %s: %w", id, err)
	}
	return e, nil
}

func putJournal(tx *bolt.Tx, e JournalEntry) error {
	b := tx.Bucket(bucketJournal)
	b.FillPercent = appendFill
	if err := putJSON(b, []byte(e.ID), e); err != nil {
		return err
	}
	return indexJournalEntry(tx, e)
}

// JournalEntry returns one entry; ErrNotFound if it does not exist.
func (s *Store) JournalEntry(id string) (JournalEntry, error) {
	var e JournalEntry
	err := s.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketJournal), []byte(id), &e)
	})
	if err != nil {
		return JournalEntry{}, fmt.Errorf("journal entry %s: %w", id, err)
	}
	return e, nil
}

// SetJournalState moves entry id to state, recording commit when given.
func (s *Store) SetJournalState(id, state, commit string) (JournalEntry, error) {
	var e JournalEntry
	now := s.now()
	err := s.update(func(tx *bolt.Tx) error {
		if err := getJSON(tx.Bucket(bucketJournal), []byte(id), &e); err != nil {
			return err
		}
		e.State, e.Updated = state, now
		if commit != "" {
			e.Commit = commit
		}
		return putJournal(tx, e)
	})
	if err != nil {
		return JournalEntry{}, fmt.Errorf("journal entry %s to %s: %w", id, state, err)
	}
	return e, nil
}

// PendingJournal returns repo's entries that are not yet on the remote
// (pending or committed), in creation order: what the write-back loop must
// still push or re-apply.
func (s *Store) PendingJournal(repo string) ([]JournalEntry, error) {
	return s.Journal(repo, JournalPending, JournalCommitted)
}

// Journal returns repo's entries (every repo's when repo is "") in one of
// states (any state when none is given), ordered by Created then ID.
// Unsettled states are served from an index; settled ones scan the journal.
func (s *Store) Journal(repo string, states ...string) ([]JournalEntry, error) {
	var out []JournalEntry
	err := s.view(func(tx *bolt.Tx) error {
		keep := func(e JournalEntry) bool {
			return (repo == "" || e.Repo == repo) && (len(states) == 0 || slices.Contains(states, e.State))
		}
		var err error
		if len(states) > 0 && allOpen(states) {
			out, err = openJournal(tx, repo, keep)
		} else {
			out, err = scanJournal(tx, keep)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("journal of %q: %w", repo, err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func allOpen(states []string) bool {
	for _, st := range states {
		if !slices.Contains(openJournalStates, st) {
			return false
		}
	}
	return true
}

func openJournal(tx *bolt.Tx, repo string, keep func(JournalEntry) bool) ([]JournalEntry, error) {
	var out []JournalEntry
	var prefix []byte
	if repo != "" {
		prefix = append([]byte(repo), 0)
	}
	entries := tx.Bucket(bucketJournal)
	c := tx.Bucket(indexJournalOpen).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := k[bytes.IndexByte(k, 0)+1:]
		var e JournalEntry
		if err := getJSON(entries, id, &e); err != nil {
			return nil, fmt.Errorf("journal index %q: %w", k, err)
		}
		if keep(e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func scanJournal(tx *bolt.Tx, keep func(JournalEntry) bool) ([]JournalEntry, error) {
	var out []JournalEntry
	err := tx.Bucket(bucketJournal).ForEach(func(k, v []byte) error {
		var e JournalEntry
		if err := decode(k, v, &e); err != nil {
			return err
		}
		if keep(e) {
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
