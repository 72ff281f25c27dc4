package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
)

// DefaultTimeout is how long Open waits for the file lock when
// Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Timeout bounds the wait for the exclusive file lock; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Logger receives warnings (migrations, salvage); the zero value discards.
	Logger zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Failpoint, when set, is called with "mid-compaction" once Compact
	// has written the compacted copy and before it replaces the file: the
	// crash tests kill the process there. Nil in production.
	Failpoint func(name string)
}

// Store is the daemon's bbolt state. See the package documentation for
// concurrency rules.
type Store struct {
	path string
	opts Options
	log  zerolog.Logger
	now  func() time.Time

	mu sync.RWMutex // write-locked only to swap db (Compact) and to Close
	db *bolt.DB

	salvaged *SalvageReport
	ivs      ivCache

	baseMu  sync.Mutex
	base    *StepRecord // the first step record of the run last added to (AddStep)
	baseRaw []byte      // base as stored
}

// Path returns the file the Store was opened from.
func (s *Store) Path() string { return s.path }

// Close closes the file. Further calls return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

func newStore(path string, opts Options) *Store {
	s := &Store{path: path, opts: opts, log: opts.Logger, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.Timeout <= 0 {
		s.opts.Timeout = DefaultTimeout
	}
	return s
}

func (s *Store) boltOptions() *bolt.Options {
	return &bolt.Options{Timeout: s.opts.Timeout, FreelistType: bolt.FreelistMapType}
}

// growStep is how much the state file grows by when it needs room: bbolt's
// default (16 MiB, and below that the file doubles with its memory map)
// made a file holding 9 MB of records 16 MB on disk.
const growStep = 1 << 20

// batchDelay is how long a write shared with concurrent ones (Batch) waits
// for them: the steps of a bucket end within milliseconds of each other.
const batchDelay = 2 * time.Millisecond

func openBolt(path string, o *bolt.Options) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, o)
	if err == nil {
		db.AllocSize = growStep
		db.MaxBatchDelay = batchDelay
	}
	return db, err
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(fn)
}

// batch runs fn in a write transaction it may share with concurrent
// callers (bbolt's Batch): fn may run more than once, and must change
// nothing outside the transaction.
func (s *Store) batch(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.Batch(fn)
}

// update runs fn in a write transaction.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.Update(fn)
}

func u64key(v uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, v)
	return k
}

func keyU64(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// appendFill is the fill percent of buckets whose keys mostly grow (steps,
// journal entries; instances written in name order, and their index): bbolt's
// default of one half leaves every page of an append half empty.
const appendFill = 0.9

// putJSON stores v under key in b.
func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return b.Put(key, data)
}

// getJSON decodes the value under key into v; ErrNotFound when absent.
// json.Unmarshal copies everything it keeps, so v never aliases the mmap.
func getJSON(b *bolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %x: %w", key, err)
	}
	return nil
}

func decode(k, v []byte, out any) error {
	if err := json.Unmarshal(v, out); err != nil {
		return fmt.Errorf("decode %x: %w", k, err)
	}
	return nil
}

// keyProbe is where Probe writes.
var keyProbe = []byte("probe")

// Probe writes and syncs a small record, to tell whether the state file
// can be written again (after a full disk).
func (s *Store) Probe() error {
	now := s.now().UTC().Format(time.RFC3339Nano)
	err := s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyProbe, []byte(now))
	})
	if err != nil {
		return fmt.Errorf("probe the state file: %w", err)
	}
	return nil
}
