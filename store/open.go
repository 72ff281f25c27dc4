package store

import (
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Open opens (creating if needed) the state file at path, checks its
// integrity, and creates or migrates its buckets.
func Open(path string, opts Options) (*Store, error) {
	s := newStore(path, opts)
	db, err := openBolt(path, s.boltOptions())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := checkDB(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w: %w", path, ErrCorrupt, err)
	}
	var found uint64
	err = db.Update(func(tx *bolt.Tx) error {
		var err error
		found, err = initSchema(tx)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if found != 0 && found != SchemaVersion {
		s.log.Info().Str("path", path).Uint64("from", found).Int("to", SchemaVersion).Msg("state file migrated")
	}
	s.db = db
	return s, nil
}

// checkDB runs bbolt's consistency check and joins the first problems.
func checkDB(db *bolt.DB) error {
	var problems []string
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(problems) < 10 {
				problems = append(problems, err.Error())
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
