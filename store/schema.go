package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout this package writes. Open migrates older
// files forward, one ordered step at a time, in one transaction.
const SchemaVersion = 1

var (
	bucketMeta      = []byte("meta")
	bucketRuns      = []byte("runs")
	bucketSteps     = []byte("steps") // run id -> nested bucket: seq -> StepRecord
	bucketInstances = []byte("instances")
	bucketRepos     = []byte("repos")

	keySchema = []byte("schema")
)

// currentBuckets are the top-level buckets of SchemaVersion.
var currentBuckets = [][]byte{bucketMeta, bucketRuns, bucketSteps, bucketInstances, bucketRepos}

// migration moves a file from version to-1 to version to.
type migration struct {
	to   uint64
	name string
	fn   func(tx *bolt.Tx) error
}

// migrations is ordered by to; migrations[i].to == i+2.
var migrations = []migration{}

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

// initSchema creates the current layout in an empty file, or migrates an
// older one. It returns the version found (0 for a new file).
func initSchema(tx *bolt.Tx) (uint64, error) {
	found := schemaOf(tx)
	switch {
	case found > SchemaVersion:
		return found, fmt.Errorf("schema %d, binary knows %d: %w", found, SchemaVersion, ErrSchemaTooNew)
	case found == 0:
		for _, name := range currentBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return 0, fmt.Errorf("create bucket %s: %w", name, err)
			}
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
	return found, nil
}
