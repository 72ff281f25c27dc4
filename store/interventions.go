package store

import (
	"fmt"
	"maps"
	"strings"
	"time"

	deployer "github.com/sre-tools/deployer"

	bolt "go.etcd.io/bbolt"
)

// Intervention states. Open and acknowledged interventions are both "not
// resolved": they block their scope and deduplicate repeats.
const (
	StateOpen         = deployer.InterventionOpen
	StateAcknowledged = deployer.InterventionAcknowledged
	StateResolved     = deployer.InterventionResolved
)

// ResolvedAutomatically is the ResolvedBy of interventions closed by
// ResolveWhere, when the condition that raised them cleared.
const ResolvedAutomatically = "deployer"

// Intervention is a recorded case that needs a human. Instance "" means
// the scope is the whole repo.
type Intervention struct {
	ID         uint64   `json:"id"`
	Kind       string   `json:"kind"`
	Repo       string   `json:"repo"`
	Instance   string   `json:"instance,omitempty"`
	Summary    string   `json:"summary"`
	NextAction string   `json:"next_action,omitempty"`
	Evidence   Evidence `json:"evidence,omitzero"`

	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`

	State       string    `json:"state"`
	AckBy       string    `json:"ack_by,omitempty"`
	AckNote     string    `json:"ack_note,omitempty"`
	AckAt       time.Time `json:"ack_at,omitzero"`
	ResolvedBy  string    `json:"resolved_by,omitempty"`
	ResolvedHow string    `json:"resolved_how,omitempty"`
	ResolvedAt  time.Time `json:"resolved_at,omitzero"`
	// Notified is when a notification about it was last sent (SetNotified).
	Notified time.Time `json:"notified,omitzero"`
}

// Evidence is what an intervention shows on-call.
type Evidence struct {
	Output  string          `json:"output,omitempty"` // command output, server message
	Values  *ConflictValues `json:"values,omitempty"`
	Commits []CommitRef     `json:"commits,omitempty"`
	File    string          `json:"file,omitempty"`
	Element string          `json:"element,omitempty"`
	// Extra holds kind-specific facts (rescue ref, file list, run id...).
	Extra map[string]string `json:"extra,omitempty"`
}

// ConflictValues are the three sides of a push conflict.
type ConflictValues struct {
	Base   string `json:"base"`
	Ours   string `json:"ours"`
	Theirs string `json:"theirs"`
}

// CommitRef names a commit and who made it.
type CommitRef struct {
	Hash    string    `json:"hash"`
	Author  string    `json:"author,omitempty"`
	Subject string    `json:"subject,omitempty"`
	When    time.Time `json:"when,omitzero"`
}

// Resolved reports whether iv is closed.
func (iv Intervention) Resolved() bool { return iv.State == StateResolved }

// InterventionFilter selects interventions. Empty fields match everything.
type InterventionFilter struct {
	Kind     string
	Repo     string
	Instance string
	// IncludeResolved adds resolved interventions after the unresolved ones.
	IncludeResolved bool
	// Limit bounds the result; <= 0 means no limit.
	Limit int
}

func (f InterventionFilter) match(iv Intervention) bool {
	return (f.Kind == "" || iv.Kind == f.Kind) &&
		(f.Repo == "" || iv.Repo == f.Repo) &&
		(f.Instance == "" || iv.Instance == f.Instance)
}

func scopeKey(kind, repo, instance string) []byte {
	k := append([]byte(kind), 0)
	k = append(append(k, repo...), 0)
	return append(k, instance...)
}

// indexIntervention keeps iv_open in step with iv.
func indexIntervention(tx *bolt.Tx, iv Intervention) error {
	b := tx.Bucket(indexIvOpen)
	key := scopeKey(iv.Kind, iv.Repo, iv.Instance)
	if iv.Resolved() {
		if keyU64(b.Get(key)) == iv.ID {
			return b.Delete(key)
		}
		return nil
	}
	return b.Put(key, u64key(iv.ID))
}

func putIntervention(tx *bolt.Tx, iv Intervention) error {
	if err := putJSON(tx.Bucket(bucketInterventions), u64key(iv.ID), iv); err != nil {
		return err
	}
	return indexIntervention(tx, iv)
}

// Raise records iv. When an unresolved intervention of the same kind and
// scope exists, it is a repeat: its Count grows by one, LastSeen moves to
// iv.LastSeen (default Now), and Summary, NextAction and Evidence are
// replaced by iv's when given; isNew is false. Otherwise a new open
// intervention is stored with Count 1. The stored intervention is returned.
func (s *Store) Raise(iv Intervention) (Intervention, bool, error) {
	if iv.Kind == "" || iv.Repo == "" {
		return Intervention{}, false, fmt.Errorf("raise: kind and repo: %w", ErrInvalid)
	}
	seen := iv.LastSeen
	if seen.IsZero() {
		seen = s.now()
	}
	var out Intervention
	var isNew bool
	defer s.ivs.touched()
	err := s.update(func(tx *bolt.Tx) error {
		id := keyU64(tx.Bucket(indexIvOpen).Get(scopeKey(iv.Kind, iv.Repo, iv.Instance)))
		if id != 0 {
			var err error
			out, err = repeat(tx, id, iv, seen)
			return err
		}
		isNew = true
		var err error
		out, err = raiseNew(tx, iv, seen)
		return err
	})
	if err != nil {
		return Intervention{}, false, fmt.Errorf("raise %s %s: %w", iv.Kind, scopeName(iv.Repo, iv.Instance), err)
	}
	return out, isNew, nil
}

func repeat(tx *bolt.Tx, id uint64, iv Intervention, seen time.Time) (Intervention, error) {
	var cur Intervention
	if err := getJSON(tx.Bucket(bucketInterventions), u64key(id), &cur); err != nil {
		return cur, fmt.Errorf("open index points at %d: %w", id, err)
	}
	cur.Count++
	if seen.After(cur.LastSeen) {
		cur.LastSeen = seen
	}
	if iv.Summary != "" {
		cur.Summary = iv.Summary
	}
	if iv.NextAction != "" {
		cur.NextAction = iv.NextAction
	}
	if !iv.Evidence.isZero() {
		cur.Evidence = keepRefs(iv.Evidence, cur.Evidence)
	}
	return cur, putIntervention(tx, cur)
}

func raiseNew(tx *bolt.Tx, iv Intervention, seen time.Time) (Intervention, error) {
	seq, err := tx.Bucket(bucketInterventions).NextSequence()
	if err != nil {
		return iv, err
	}
	iv.ID = seq
	iv.Count = 1
	iv.State = StateOpen
	iv.LastSeen = seen
	if iv.FirstSeen.IsZero() {
		iv.FirstSeen = seen
	}
	iv.AckBy, iv.AckNote, iv.AckAt = "", "", time.Time{}
	iv.ResolvedBy, iv.ResolvedHow, iv.ResolvedAt = "", "", time.Time{}
	iv.Notified = time.Time{}
	return iv, putIntervention(tx, iv)
}

// IssueRefPrefix starts the Evidence.Extra keys that hold a reference a
// notifier created for an intervention ("issue:<channel>" -> a Jira key):
// a repeat that replaces the evidence keeps them, so the next
// notification updates the same issue.
const IssueRefPrefix = "issue:"

// IssueRefKey is the Evidence.Extra key of the issue channel created.
func IssueRefKey(channel string) string { return IssueRefPrefix + channel }

// keepRefs returns next with the notification references of prev that
// next does not set itself.
func keepRefs(next, prev Evidence) Evidence {
	for k, v := range prev.Extra {
		if !strings.HasPrefix(k, IssueRefPrefix) {
			continue
		}
		if _, ok := next.Extra[k]; ok {
			continue
		}
		next.Extra = maps.Clone(next.Extra)
		if next.Extra == nil {
			next.Extra = map[string]string{}
		}
		next.Extra[k] = v
	}
	return next
}

func (e Evidence) isZero() bool {
	return e.Output == "" && e.Values == nil && len(e.Commits) == 0 && e.File == "" && e.Element == "" && len(e.Extra) == 0
}

func scopeName(repo, instance string) string {
	if instance == "" {
		return repo
	}
	return repo + "/" + instance
}

// Intervention returns one intervention; ErrNotFound if it does not exist.
func (s *Store) Intervention(id uint64) (Intervention, error) {
	var iv Intervention
	err := s.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketInterventions), u64key(id), &iv)
	})
	if err != nil {
		return Intervention{}, fmt.Errorf("intervention %d: %w", id, err)
	}
	return iv, nil
}

// modify applies fn to intervention id in one transaction and returns the
// stored result.
func (s *Store) modify(op string, id uint64, fn func(*Intervention) error) (Intervention, error) {
	var iv Intervention
	defer s.ivs.touched()
	err := s.update(func(tx *bolt.Tx) error {
		if err := getJSON(tx.Bucket(bucketInterventions), u64key(id), &iv); err != nil {
			return err
		}
		if err := fn(&iv); err != nil {
			return err
		}
		open := keyU64(tx.Bucket(indexIvOpen).Get(scopeKey(iv.Kind, iv.Repo, iv.Instance)))
		if !iv.Resolved() && open != 0 && open != iv.ID {
			return fmt.Errorf("intervention %d is open for the same scope: %w", open, ErrInvalid)
		}
		return putIntervention(tx, iv)
	})
	if err != nil {
		return Intervention{}, fmt.Errorf("%s intervention %d: %w", op, id, err)
	}
	return iv, nil
}

// UpdateIntervention reads intervention id, calls fn on it and stores the
// result with its index, all in one write transaction, so that a
// concurrent writer's change (a notifier's issue key, an acknowledgement,
// a repeat) is never lost. fn cannot change the ID, kind or scope, nor
// reopen an intervention whose scope has another one open (ErrInvalid). An
// error from fn stores nothing and is returned; ErrNotFound if there is no
// such intervention. fn runs inside the transaction: it must be quick and
// must not call the Store.
func (s *Store) UpdateIntervention(id uint64, fn func(*Intervention) error) (Intervention, error) {
	return s.modify("update", id, func(iv *Intervention) error {
		before := *iv
		if err := fn(iv); err != nil {
			return err
		}
		if iv.ID != before.ID || iv.Kind != before.Kind || iv.Repo != before.Repo || iv.Instance != before.Instance {
			return fmt.Errorf("the update changed the id, kind or scope: %w", ErrInvalid)
		}
		return nil
	})
}

// Acknowledge records that who is on it. ErrResolved if it is resolved.
func (s *Store) Acknowledge(id uint64, who, note string) (Intervention, error) {
	now := s.now()
	return s.modify("acknowledge", id, func(iv *Intervention) error {
		if iv.Resolved() {
			return ErrResolved
		}
		iv.State, iv.AckBy, iv.AckNote, iv.AckAt = StateAcknowledged, who, note, now
		return nil
	})
}

// Resolve closes the intervention. ErrResolved if it already is.
func (s *Store) Resolve(id uint64, who, how string) (Intervention, error) {
	now := s.now()
	return s.modify("resolve", id, func(iv *Intervention) error {
		if iv.Resolved() {
			return ErrResolved
		}
		iv.State, iv.ResolvedBy, iv.ResolvedHow, iv.ResolvedAt = StateResolved, who, how, now
		return nil
	})
}

// SetNotified records when a notification about intervention id was sent.
func (s *Store) SetNotified(id uint64, at time.Time) error {
	_, err := s.modify("mark notified", id, func(iv *Intervention) error {
		iv.Notified = at
		return nil
	})
	return err
}

// ResolveWhere resolves the unresolved intervention of this kind and exact
// scope (instance "" is the repo scope), if any, as ResolvedAutomatically.
// It returns the resolved intervention and true, or false when none was
// open.
func (s *Store) ResolveWhere(kind, repo, instance, how string) (Intervention, bool, error) {
	var iv Intervention
	var found bool
	now := s.now()
	defer s.ivs.touched()
	err := s.update(func(tx *bolt.Tx) error {
		id := keyU64(tx.Bucket(indexIvOpen).Get(scopeKey(kind, repo, instance)))
		if id == 0 {
			return nil
		}
		if err := getJSON(tx.Bucket(bucketInterventions), u64key(id), &iv); err != nil {
			return err
		}
		found = true
		iv.State, iv.ResolvedBy, iv.ResolvedHow, iv.ResolvedAt = StateResolved, ResolvedAutomatically, how, now
		return putIntervention(tx, iv)
	})
	if err != nil {
		return Intervention{}, false, fmt.Errorf("resolve %s %s: %w", kind, scopeName(repo, instance), err)
	}
	return iv, found, nil
}

// Interventions returns the interventions matching f: the unresolved ones
// oldest first (by id), then, with f.IncludeResolved, resolved ones newest
// first. Ordering by severity is the caller's. Unresolved interventions
// are served from memory (see ivCache).
func (s *Store) Interventions(f InterventionFilter) ([]Intervention, error) {
	open, err := s.unresolved()
	if err != nil {
		return nil, fmt.Errorf("list interventions: %w", err)
	}
	out := open[:0]
	for _, iv := range open {
		if f.match(iv) && (f.Limit <= 0 || len(out) < f.Limit) {
			out = append(out, iv)
		}
	}
	if !f.IncludeResolved || (f.Limit > 0 && len(out) >= f.Limit) {
		return out, nil
	}
	err = s.view(func(tx *bolt.Tx) error { return resolvedInterventions(tx, f, &out) })
	if err != nil {
		return nil, fmt.Errorf("list interventions: %w", err)
	}
	return out, nil
}

func resolvedInterventions(tx *bolt.Tx, f InterventionFilter, out *[]Intervention) error {
	c := tx.Bucket(bucketInterventions).Cursor()
	for k, v := c.Last(); k != nil && (f.Limit <= 0 || len(*out) < f.Limit); k, v = c.Prev() {
		var iv Intervention
		if err := decode(k, v, &iv); err != nil {
			return err
		}
		if iv.Resolved() && f.match(iv) {
			*out = append(*out, iv)
		}
	}
	return nil
}

// SetEvidenceExtra records one kind-specific fact on an intervention (for
// example the Jira issue key a notifier created for it, under IssueRefKey,
// which a repeat keeps).
func (s *Store) SetEvidenceExtra(id uint64, key, value string) (Intervention, error) {
	return s.modify("annotate", id, func(iv *Intervention) error {
		if iv.Evidence.Extra == nil {
			iv.Evidence.Extra = map[string]string{}
		}
		iv.Evidence.Extra[key] = value
		return nil
	})
}
