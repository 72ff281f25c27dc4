package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// KindStateCorrupt is the intervention kind a SalvageReport suggests: a
// repo-scope (or host-wide) case saying the state file was replaced.
const KindStateCorrupt = "state-corrupt"

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

// errPanicked marks a panic or memory fault caught while reading a
// damaged file.
var errPanicked = errors.New("panic reading state file")

// protect runs fn, turning panics and memory faults (bad pages in the
// memory map) into errors.
func protect(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errPanicked, r)
		}
	}()
	return fn()
}

// walkAll reads every key and value of every bucket, so that damage a
// cursor can meet shows up here, under protect, and not later in a
// goroutine that cannot recover. It returns a checksum of the contents.
func walkAll(tx *bolt.Tx) (uint32, error) {
	var sum uint32
	err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if err := walkBucket(b, &sum); err != nil {
			return fmt.Errorf("bucket %q: %w", name, err)
		}
		return nil
	})
	return sum, err
}

func walkBucket(b *bolt.Bucket, sum *uint32) error {
	c := b.Cursor()
	var prev []byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if prev != nil && bytes.Compare(k, prev) <= 0 {
			return fmt.Errorf("key %x after %x: keys out of order", k, prev)
		}
		prev = k
		*sum = crc32.Update(crc32.Update(*sum, crc32.IEEETable, k), crc32.IEEETable, v)
		if v != nil {
			continue
		}
		nb := b.Bucket(k)
		if nb == nil {
			return fmt.Errorf("key %x: nested bucket unreadable", k)
		}
		if err := walkBucket(nb, sum); err != nil {
			return fmt.Errorf("%x: %w", k, err)
		}
	}
	return nil
}

// pair is a key and value read from a damaged file.
type pair struct {
	k, v []byte
}

// salvageSpec says how one primary bucket is salvaged.
type salvageSpec struct {
	name  []byte
	seq   bool                                 // keys are big-endian sequence numbers
	valid func(k, v []byte, dst *bolt.Tx) bool // record check
}

func validJSON[T any](k, v []byte, _ *bolt.Tx) bool {
	var x T
	return json.Unmarshal(v, &x) == nil
}

func validSeq[T any](k, v []byte, dst *bolt.Tx) bool {
	return len(k) == 8 && validJSON[T](k, v, dst)
}

// salvageSpecs follow primaryBuckets: journal first.
var salvageSpecs = []salvageSpec{
	{name: bucketJournal, valid: validJSON[JournalEntry]},
	{name: bucketInterventions, seq: true, valid: validSeq[Intervention]},
	{name: bucketRuns, seq: true, valid: validSeq[Run]},
	{name: bucketSteps, valid: func(k, v []byte, dst *bolt.Tx) bool { return len(k) == 16 && validJSON[StepRecord](k, v, dst) }},
	{name: bucketDeployments, valid: validJSON[Deployment]},
	{name: bucketInflight, valid: validJSON[InflightStep]},
	{name: bucketOutbox, seq: true, valid: validSeq[Message]},
	{name: bucketSchedules, valid: validJSON[ScheduleState]},
	{name: bucketRepos, valid: validJSON[RepoState]},
	{name: bucketInstances, valid: validJSON[InstanceState]},
}

// salvageInto copies what can be read from the damaged file src into a
// new state file at dst, with the current schema and rebuilt indexes:
// first by walking the bucket trees with plain reads (skipping damaged
// subtrees), then, for the buckets that walk could not read in full, by
// scanning all leaf pages.
func (s *Store) salvageInto(src, dst string, rep *SalvageReport) error {
	out, err := openBolt(dst, s.boltOptions())
	if err != nil {
		return err
	}
	defer out.Close()
	err = out.Update(func(tx *bolt.Tx) error {
		_, err := initSchema(tx)
		return err
	})
	if err != nil {
		return err
	}
	var rawBuckets []string
	for _, b := range primaryBuckets {
		rawBuckets = append(rawBuckets, string(b))
	}
	root, err := readDamaged(src)
	if err != nil {
		rep.Problems = append(rep.Problems, "salvage: "+err.Error())
		rep.Incomplete = rawBuckets
	} else if err := copyTree(out, root, rep); err != nil {
		return err
	}
	if err := s.salvageRaw(src, out, rawBuckets, rep); err != nil {
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

// readDamaged reads the bucket tree of src as far as it goes.
func readDamaged(src string) (*rawBucket, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m, err := bestMeta(f, fi.Size())
	if err != nil {
		return nil, err
	}
	return newRawDB(f, m, true).readRoot(m.root), nil
}

// copyTree copies the primary buckets of root into out, journal first,
// one write transaction per bucket.
func copyTree(out *bolt.DB, root *rawBucket, rep *SalvageReport) error {
	if meta := root.subs[string(bucketMeta)]; meta != nil {
		for _, p := range meta.pairs {
			if string(p.k) == string(keySchema) {
				rep.SchemaVersion = keyU64(p.v)
			}
		}
	}
	for _, spec := range salvageSpecs {
		name := string(spec.name)
		b := root.subs[name]
		if b == nil {
			if root.damaged {
				rep.Incomplete = append(rep.Incomplete, name)
			}
			continue
		}
		if bytes.Equal(spec.name, bucketSteps) {
			flattenRawSteps(b)
		}
		err := out.Update(func(tx *bolt.Tx) error {
			n, err := copyPairs(tx, b, tx.Bucket(spec.name), spec, rep, name)
			rep.Recovered[name] += n
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// flattenRawSteps turns schema 1's steps/<run id>/<seq> sub-buckets into
// schema 2's steps/<run id ‖ seq> pairs.
func flattenRawSteps(b *rawBucket) {
	for run, sub := range b.subs {
		for _, p := range sub.pairs {
			b.pairs = append(b.pairs, pair{k: append([]byte(run), p.k...), v: p.v})
		}
		b.damaged = b.damaged || sub.damaged
	}
	b.subs = nil
}

// copyPairs writes the valid pairs of src into dst and moves dst's
// sequence past every copied key.
func copyPairs(tx *bolt.Tx, src *rawBucket, dst *bolt.Bucket, spec salvageSpec, rep *SalvageReport, name string) (int, error) {
	if src.damaged && !containsString(rep.Incomplete, name) {
		rep.Incomplete = append(rep.Incomplete, name)
	}
	rep.Dropped[name] += len(src.subs)
	n, seq := 0, src.seq
	for _, p := range src.pairs {
		if !spec.valid(p.k, p.v, tx) {
			rep.Dropped[name]++
			continue
		}
		if spec.seq && keyU64(p.k) > seq {
			seq = keyU64(p.k)
		}
		if err := dst.Put(bytes.Clone(p.k), bytes.Clone(p.v)); err != nil {
			return n, err
		}
		n++
	}
	if spec.seq && dst.Sequence() < seq {
		return n, dst.SetSequence(seq)
	}
	return n, nil
}

// salvageRaw scans pages directly for records of the incomplete buckets
// among rawBuckets.
func (s *Store) salvageRaw(src string, out *bolt.DB, rawBuckets []string, rep *SalvageReport) error {
	var todo []string
	for _, b := range rawBuckets {
		if containsString(rep.Incomplete, b) {
			todo = append(todo, b)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	pageSize := 0
	if f, err := os.Open(src); err == nil {
		if fi, err := f.Stat(); err == nil {
			if m, err := bestMeta(f, fi.Size()); err == nil {
				pageSize = int(m.pageSize)
			}
		}
		f.Close()
	}
	recs, err := rawScan(src, pageSize)
	if err != nil {
		rep.Problems = append(rep.Problems, "raw scan: "+err.Error())
		return nil
	}
	return mergeRaw(out, recs, todo, rep)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
