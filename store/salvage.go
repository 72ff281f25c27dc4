package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	deployer "github.com/sre-tools/deployer"

	bolt "go.etcd.io/bbolt"

	"github.com/sre-tools/deployer/store/internal/salvage"
)

// KindStateCorrupt is the intervention kind a SalvageReport suggests: a
// repo-scope (or host-wide) case saying the state file was replaced.
const KindStateCorrupt = string(deployer.KindStateCorrupt)

// SalvageReport describes a corrupt state file found by Open, moved aside
// and replaced by a fresh file holding whatever could be read from it.
type SalvageReport struct {
	Kind        string    `json:"kind"` // KindStateCorrupt
	Path        string    `json:"path"`
	CorruptPath string    `json:"corrupt_path"` // the damaged file, kept
	At          time.Time `json:"at"`
	// Problems is what the integrity check found (the first few).
	Problems []string `json:"problems"`
	// SchemaVersion of the damaged file, 0 when unreadable.
	SchemaVersion uint64 `json:"schema_version,omitempty"`
	// Recovered counts the records copied per bucket, Dropped the records
	// found but unreadable; Incomplete lists buckets that could not be read
	// to the end (records in the damaged pages are lost).
	Recovered  map[string]int `json:"recovered"`
	Dropped    map[string]int `json:"dropped,omitempty"`
	Incomplete []string       `json:"incomplete,omitempty"`
	// RawRecovered counts the records (included in Recovered) found by
	// scanning pages directly, where the bucket tree was broken.
	RawRecovered int `json:"raw_recovered,omitempty"`
}

// Summary is a one-line description for an intervention.
func (r *SalvageReport) Summary() string {
	return fmt.Sprintf("state file was corrupt (%s); moved to %s; salvaged %d journal entries, %d interventions, %d runs%s",
		firstOr(r.Problems, "unknown damage"), r.CorruptPath, r.Recovered[string(bucketJournal)],
		r.Recovered[string(bucketInterventions)], r.Recovered[string(bucketRuns)], incompleteNote(r.Incomplete))
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

func incompleteNote(b []string) string {
	if len(b) == 0 {
		return ""
	}
	return "; partly lost: " + strings.Join(b, ", ")
}

// Salvaged returns the report of the salvage Open performed, or nil when
// the file was sound.
func (s *Store) Salvaged() *SalvageReport { return s.salvaged }

// salvageLayout tells package salvage the buckets of a state file, in
// salvage priority order (primaryBuckets: what cannot be rebuilt from the
// remote comes first), and how to recognise each record by its fields.
var salvageLayout = salvage.Layout{
	Meta: bucketMeta, SchemaKey: keySchema,
	Buckets: []salvage.Bucket{
		{Name: bucketJournal, Valid: validJSON[JournalEntry]},
		{Name: bucketInterventions, Seq: true, Valid: validSeq[Intervention]},
		{Name: bucketRuns, Seq: true, Valid: validSeq[Run]},
		{Name: bucketSteps, Nested: true, Valid: func(k, v []byte) bool { return len(k) == 16 && validJSON[StepRecord](k, v) }},
		{Name: bucketDeployments, Valid: func(k, v []byte) bool { var d Deployment; return decodeDeployment(k, v, &d) == nil }},
		{Name: bucketDeploymentInstances, Valid: validInstanceRecord},
		{Name: bucketInflight, Valid: validJSON[InflightStep]},
		{Name: bucketOutbox, Seq: true, Valid: validSeq[Message]},
		{Name: bucketSchedules, Valid: validJSON[ScheduleState]},
		{Name: bucketRepos, Valid: validJSON[RepoState]},
		{Name: bucketInstances, Valid: validJSON[InstanceState]},
		// not a primary bucket: made by a coordinator's first rollout
		// (store/rollouts.go); the salvaged file always has it
		{Name: bucketRollouts, Valid: func(k, v []byte) bool { var r Rollout; return json.Unmarshal(v, &r) == nil && r.ID == string(k) }},
	},
	Shapes: recordShapes,
}

func validJSON[T any](k, v []byte) bool {
	var x T
	return json.Unmarshal(v, &x) == nil
}

func validSeq[T any](k, v []byte) bool {
	return len(k) == 8 && validJSON[T](k, v)
}

// shape builds a salvage.Shape for records of type T; at derives the
// bucket, key and freshness of a decoded record.
func shape[T any](need, not []string, at func(T) ([]byte, []byte, time.Time)) salvage.Shape {
	return salvage.Shape{Need: need, Not: not, Read: func(v []byte) ([]byte, []byte, time.Time, bool) {
		var x T
		if json.Unmarshal(v, &x) != nil {
			return nil, nil, time.Time{}, false
		}
		b, k, fresh := at(x)
		return b, k, fresh, true
	}}
}

// recordShapes tell the records apart by their JSON fields; the first
// that fits wins.
var recordShapes = []salvage.Shape{
	shape([]string{"id", "kind", "first_seen", "state"}, nil, func(iv Intervention) ([]byte, []byte, time.Time) {
		return bucketInterventions, u64key(iv.ID), latest(iv.LastSeen, iv.AckAt, iv.ResolvedAt, iv.Notified)
	}),
	shape([]string{"run", "seq", "step"}, nil, func(st StepRecord) ([]byte, []byte, time.Time) {
		return bucketSteps, stepKey(st.Run, uint64(st.Seq)), latest(st.Started, st.Ended)
	}),
	shape([]string{"id", "file", "state", "created"}, nil, func(e JournalEntry) ([]byte, []byte, time.Time) {
		return bucketJournal, []byte(e.ID), e.Updated
	}),
	shape([]string{"id", "repo", "status", "started"}, []string{"kind", "step"}, func(r Run) ([]byte, []byte, time.Time) {
		return bucketRuns, u64key(uint64(r.ID)), latest(r.Started, r.Ended)
	}),
	shape([]string{"seq", "delivery_id", "channel"}, nil, func(m Message) ([]byte, []byte, time.Time) {
		return bucketOutbox, u64key(m.Seq), latest(m.Created, m.NextAttempt, m.SentAt)
	}),
	shape([]string{"id", "repo", "state", "created", "updated"}, []string{"file", "kind"}, func(d Deployment) ([]byte, []byte, time.Time) {
		return bucketDeployments, []byte(d.ID), d.Updated
	}),
	shape([]string{"repo", "name", "updated"}, []string{"id"}, func(st InstanceState) ([]byte, []byte, time.Time) {
		return bucketInstances, instanceKey(st.Repo, st.Name), st.Updated
	}),
	shape([]string{"repo", "schedule", "last_fired"}, nil, func(st ScheduleState) ([]byte, []byte, time.Time) {
		return bucketSchedules, scheduleKey(st.Repo, st.Schedule), latest(st.Updated, st.LastFired)
	}),
	shape([]string{"id", "state", "spec", "created", "updated"}, []string{"repo", "file", "kind"}, func(r Rollout) ([]byte, []byte, time.Time) {
		return bucketRollouts, []byte(r.ID), r.Updated
	}),
	shape([]string{"name"}, []string{"repo", "id", "run"}, func(st RepoState) ([]byte, []byte, time.Time) {
		return bucketRepos, []byte(st.Name), latest(st.LastSync, st.LastSyncOK)
	}),
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// salvageInto copies what can be read from the damaged file src into a
// new state file at dst, with the current schema, migrated records and
// rebuilt indexes.
func (s *Store) salvageInto(src, dst string, rep *SalvageReport) error {
	out, err := openBolt(dst, s.boltOptions())
	if err != nil {
		return err
	}
	defer out.Close()
	err = out.Update(func(tx *bolt.Tx) error {
		if _, err := initSchema(tx); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketRollouts) // the salvage copies rollouts too
		return err
	})
	if err != nil {
		return err
	}
	got, err := salvage.Into(src, out, salvageLayout)
	if got != nil {
		rep.Problems = append(rep.Problems, got.Problems...)
		rep.SchemaVersion, rep.Incomplete, rep.RawRecovered = got.SchemaVersion, got.Incomplete, got.RawRecovered
		rep.Recovered, rep.Dropped = got.Recovered, got.Dropped
	}
	if err != nil {
		return err
	}
	return out.Update(func(tx *bolt.Tx) error {
		if err := dropOrphanSteps(tx, rep); err != nil {
			return err
		}
		if err := migrateSchedules(tx); err != nil { // repo records of a schema 3 file
			return err
		}
		return rebuildIndexes(tx)
	})
}

// dropOrphanSteps removes the step records of runs that were not salvaged.
func dropOrphanSteps(tx *bolt.Tx, rep *SalvageReport) error {
	var orphans [][]byte
	runs := tx.Bucket(bucketRuns)
	c := tx.Bucket(bucketSteps).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) != 16 || runs.Get(k[:8]) == nil {
			orphans = append(orphans, bytes.Clone(k))
		}
	}
	for _, k := range orphans {
		rep.Recovered[string(bucketSteps)]--
		rep.Dropped[string(bucketSteps)]++
		if err := tx.Bucket(bucketSteps).Delete(k); err != nil {
			return err
		}
	}
	return nil
}
