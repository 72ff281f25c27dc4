package store

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout this package writes. Open migrates older
// files forward, one ordered step at a time, in one transaction.
//
// Version 1: meta, runs, steps, instances, repos.
// Version 2: adds interventions, the edit journal, deployments and the
// notification outbox, and the indexes run_repo, run_active, iv_open,
// journal_open and outbox_pending; step records move from one nested
// bucket per run (at least a page per run) to one flat bucket keyed by run
// id and seq.
// Version 3: adds inflight, the steps that may write their instance file
// while they run (repo NUL instance NUL step -> InflightStep).
// Version 4: adds schedules (repo NUL schedule -> ScheduleState); the
// last fire times move there out of the repo records (RepoState.Schedules),
// so that saving a repo's state cannot overwrite them.
// Version 5: adds the index instance_file (repo NUL file -> instance name),
// so that the instance of a file is found by key, not by a scan of the
// repo's instances. Step records may be compact (see StepRecord): older
// records read as they are.
const SchemaVersion = 5

// Primary buckets hold records; index buckets can be rebuilt from them.
var (
	bucketMeta          = []byte("meta")
	bucketRuns          = []byte("runs")  // run id -> Run
	bucketSteps         = []byte("steps") // run id ‖ seq -> StepRecord (schema 1: run id -> bucket of seq -> StepRecord)
	bucketInstances     = []byte("instances")
	bucketRepos         = []byte("repos")
	bucketInterventions = []byte("interventions") // id -> Intervention
	bucketJournal       = []byte("journal")       // id -> JournalEntry
	bucketDeployments   = []byte("deployments")   // id -> Deployment (its summary)
	// deployment id NUL instance -> status NUL details
	bucketDeploymentInstances = []byte("deployment_instances")
	bucketOutbox              = []byte("outbox")    // seq -> Message
	bucketInflight            = []byte("inflight")  // repo NUL instance NUL step -> InflightStep
	bucketSchedules           = []byte("schedules") // repo NUL schedule -> ScheduleState
	// bucketRollouts (id -> Rollout) is made by the first rollout a
	// coordinator stores, not by the schema: see store/rollouts.go.
	bucketRollouts = []byte("rollouts")

	indexRunRepo       = []byte("run_repo")       // repo NUL run id -> nil
	indexRunActive     = []byte("run_active")     // run id -> nil, while running
	indexIvOpen        = []byte("iv_open")        // kind NUL repo NUL instance -> id, while not resolved
	indexJournalOpen   = []byte("journal_open")   // repo NUL id -> nil, while pending, committed or in conflict
	indexOutboxPending = []byte("outbox_pending") // seq -> nil, until sent
	indexInstanceFile  = []byte("instance_file")  // repo NUL file -> instance name

	keySchema         = []byte("schema")
	keyDeliveryPrefix = []byte("delivery_prefix")
)

// primaryBuckets in salvage priority order: what cannot be rebuilt from the
// remote comes first.
var primaryBuckets = [][]byte{
	bucketJournal, bucketInterventions, bucketRuns, bucketSteps, bucketDeployments, bucketDeploymentInstances,
	bucketInflight, bucketOutbox, bucketSchedules, bucketRepos, bucketInstances,
}

var indexBuckets = [][]byte{indexRunRepo, indexRunActive, indexIvOpen, indexJournalOpen, indexOutboxPending, indexInstanceFile}

// migration moves a file from version to-1 to version to.
type migration struct {
	to   uint64
	name string
	fn   func(tx *bolt.Tx) error
}

// migrations is ordered by to.
var migrations = []migration{
	{to: 2, name: "interventions, journal, deployments, outbox and indexes", fn: migrateTo2},
	{to: 3, name: "in-flight steps", fn: createBuckets},
	{to: 4, name: "schedule state out of the repo records", fn: migrateSchedules},
	{to: 5, name: "instance by file index", fn: migrateTo5},
}

func migrateTo5(tx *bolt.Tx) error {
	if err := createBuckets(tx); err != nil {
		return err
	}
	return indexInstances(tx)
}

func migrateTo2(tx *bolt.Tx) error {
	if err := flattenSteps(tx); err != nil {
		return fmt.Errorf("flatten steps: %w", err)
	}
	if err := createBuckets(tx); err != nil {
		return err
	}
	return rebuildIndexes(tx)
}

// flattenSteps rewrites schema 1's steps/<run id>/<seq> as steps/<run id ‖ seq>.
func flattenSteps(tx *bolt.Tx) error {
	old := tx.Bucket(bucketSteps)
	if old == nil {
		return nil
	}
	var keys, values [][]byte
	err := old.ForEachBucket(func(run []byte) error {
		return old.Bucket(run).ForEach(func(seq, v []byte) error {
			keys = append(keys, append(bytes.Clone(run), seq...))
			values = append(values, bytes.Clone(v))
			return nil
		})
	})
	if err != nil {
		return err
	}
	if err := tx.DeleteBucket(bucketSteps); err != nil {
		return err
	}
	flat, err := tx.CreateBucket(bucketSteps)
	if err != nil {
		return err
	}
	for i := range keys {
		if err := flat.Put(keys[i], values[i]); err != nil {
			return err
		}
	}
	return nil
}

// schemaOf returns the file's schema version, 0 for a file never initialised.
func schemaOf(tx *bolt.Tx) uint64 {
	m := tx.Bucket(bucketMeta)
	if m == nil {
		return 0
	}
	return keyU64(m.Get(keySchema))
}

func setSchema(tx *bolt.Tx, v uint64) error {
	m, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	return m.Put(keySchema, u64key(v))
}

func createBuckets(tx *bolt.Tx) error {
	all := append(append([][]byte{bucketMeta}, primaryBuckets...), indexBuckets...)
	for _, name := range all {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	m := tx.Bucket(bucketMeta)
	if m.Get(keyDeliveryPrefix) == nil {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		return m.Put(keyDeliveryPrefix, []byte(hex.EncodeToString(b[:])))
	}
	return nil
}

// initSchema creates the current layout in an empty file, or migrates an
// older one. It returns the version found (0 for a new file).
func initSchema(tx *bolt.Tx) (uint64, error) {
	found := schemaOf(tx)
	switch {
	case found > SchemaVersion:
		return found, fmt.Errorf("schema %d, binary knows %d: %w", found, SchemaVersion, ErrSchemaTooNew)
	case found == 0:
		if err := createBuckets(tx); err != nil {
			return 0, err
		}
		return 0, setSchema(tx, SchemaVersion)
	}
	for _, m := range migrations {
		if m.to <= found {
			continue
		}
		if err := m.fn(tx); err != nil {
			return found, fmt.Errorf("migrate to schema %d (%s): %w", m.to, m.name, err)
		}
		if err := setSchema(tx, m.to); err != nil {
			return found, fmt.Errorf("migrate to schema %d: %w", m.to, err)
		}
	}
	return found, restoreBuckets(tx)
}

// restoreBuckets recreates buckets missing from a file that says it is of
// a known schema (damage that renamed a bucket's key passes bbolt's
// check) and, when an index was among them, rebuilds every index from
// the primary buckets; without it the first write to the missing bucket
// panics inside bbolt.
func restoreBuckets(tx *bolt.Tx) error {
	missing := tx.Bucket(bucketMeta) == nil
	for _, name := range primaryBuckets {
		missing = missing || tx.Bucket(name) == nil
	}
	index := false
	for _, name := range indexBuckets {
		index = index || tx.Bucket(name) == nil
	}
	if !missing && !index {
		return nil
	}
	if err := createBuckets(tx); err != nil {
		return err
	}
	if index {
		return rebuildIndexes(tx)
	}
	return nil
}

// rebuildIndexes empties every index bucket and refills it from the
// primary buckets. Migrations and salvage use it.
func rebuildIndexes(tx *bolt.Tx) error {
	for _, name := range indexBuckets {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("reset index %s: %w", name, err)
			}
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create index %s: %w", name, err)
		}
	}
	for _, fn := range []func(*bolt.Tx) error{indexRuns, indexInterventions, indexJournal, indexOutbox, indexInstances} {
		if err := fn(tx); err != nil {
			return fmt.Errorf("rebuild indexes: %w", err)
		}
	}
	return nil
}

func indexRuns(tx *bolt.Tx) error {
	return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
		var r Run
		if err := decode(k, v, &r); err != nil {
			return err
		}
		return indexRun(tx, r, nil)
	})
}

// indexInterventions fills iv_open. Should two unresolved interventions
// share a scope (possible after a salvage), the newer one stays open and
// the older is resolved as its duplicate.
func indexInterventions(tx *bolt.Tx) error {
	var all []Intervention
	err := tx.Bucket(bucketInterventions).ForEach(func(k, v []byte) error {
		var iv Intervention
		if err := decode(k, v, &iv); err != nil {
			return err
		}
		all = append(all, iv)
		return nil
	})
	if err != nil {
		return err
	}
	newest := map[string]uint64{}
	for _, iv := range all { // id order
		if !iv.Resolved() {
			newest[string(scopeKey(iv.Kind, iv.Repo, iv.Instance))] = iv.ID
		}
	}
	for _, iv := range all {
		if n := newest[string(scopeKey(iv.Kind, iv.Repo, iv.Instance))]; !iv.Resolved() && n != iv.ID {
			iv.State, iv.ResolvedBy = StateResolved, ResolvedAutomatically
			iv.ResolvedHow = fmt.Sprintf("duplicate of intervention %d found while rebuilding indexes", n)
			iv.ResolvedAt = iv.LastSeen
			if err := putJSON(tx.Bucket(bucketInterventions), u64key(iv.ID), iv); err != nil {
				return err
			}
		}
		if err := indexIntervention(tx, iv); err != nil {
			return err
		}
	}
	return nil
}

func indexJournal(tx *bolt.Tx) error {
	return tx.Bucket(bucketJournal).ForEach(func(k, v []byte) error {
		var e JournalEntry
		if err := decode(k, v, &e); err != nil {
			return err
		}
		return indexJournalEntry(tx, e)
	})
}

func indexOutbox(tx *bolt.Tx) error {
	return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
		var m Message
		if err := decode(k, v, &m); err != nil {
			return err
		}
		return indexMessage(tx, m)
	})
}

// indexInstances fills instance_file: in name order, so that of two
// instances naming one file (a renamed key) the last one wins, as it
// would have when they were written.
func indexInstances(tx *bolt.Tx) error {
	return tx.Bucket(bucketInstances).ForEach(func(k, v []byte) error {
		var st InstanceState
		if err := decode(k, v, &st); err != nil {
			return err
		}
		return indexInstance(tx, st, nil)
	})
}
