package store

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// ivCache keeps the unresolved interventions in memory: the status page,
// the report and `deployer interventions` read them all, often, and
// decoding hundreds of records with their evidence costs milliseconds.
//
// Every write to an intervention bumps gen after its transaction commits.
// A reader uses the cached list only if it was read at the current gen;
// otherwise it reads the index again and tags the list with the gen it saw
// before reading, so a write that races with the read forces one more
// reload and the cache is never older than a completed write.
type ivCache struct {
	gen atomic.Uint64

	mu     sync.Mutex
	loaded bool
	at     uint64
	list   []Intervention // by id
}

// touched records a completed (or failed) write to interventions.
func (c *ivCache) touched() { c.gen.Add(1) }

// unresolved returns copies of the unresolved interventions, by id.
func (s *Store) unresolved() ([]Intervention, error) {
	c := &s.ivs
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gen.Load()
	if !c.loaded || c.at != g {
		var list []Intervention
		err := s.view(func(tx *bolt.Tx) error {
			var err error
			list, err = readUnresolved(tx)
			return err
		})
		if err != nil {
			return nil, err
		}
		c.list, c.at, c.loaded = list, g, true
	}
	out := make([]Intervention, len(c.list))
	for i, iv := range c.list {
		out[i] = iv.clone()
	}
	return out, nil
}

func readUnresolved(tx *bolt.Tx) ([]Intervention, error) {
	var out []Intervention
	all := tx.Bucket(bucketInterventions)
	err := tx.Bucket(indexIvOpen).ForEach(func(k, v []byte) error {
		var iv Intervention
		if err := getJSON(all, v, &iv); err != nil {
			return fmt.Errorf("open index %q: %w", k, err)
		}
		out = append(out, iv)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// clone deep-copies iv so that callers cannot change the cache.
func (iv Intervention) clone() Intervention {
	if iv.Evidence.Values != nil {
		v := *iv.Evidence.Values
		iv.Evidence.Values = &v
	}
	iv.Evidence.Commits = slices.Clone(iv.Evidence.Commits)
	iv.Evidence.Extra = maps.Clone(iv.Evidence.Extra)
	return iv
}
