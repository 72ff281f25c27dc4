// Package localruns is the laptop's record of `deployer step run`: every
// local attempt of a step (its argv, the names of its environment, its
// outputs, exit code and duration), kept in a small bbolt file under the
// user's cache directory and keyed by the checkout's remote URL and
// commit, so that a later step run in any clone of the same repository at
// the same commit finds the outputs of the steps it runs after.
//
// It is not the daemon's state file and never opens it; the file is opened
// for each read or write and closed again, so that several step runs can
// share it.
package localruns

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the state file's name in its directory.
const FileName = "local.db"

var (
	bucketAttempts = []byte("attempts")
	// bucketBySeq maps seq (big endian) to the attempt's key, oldest first:
	// how the oldest attempts go when there are more than MaxAttempts.
	bucketBySeq = []byte("by-seq")
)

// MaxAttempts is how many attempts the file keeps; older ones are removed.
const MaxAttempts = 10000

// Attempt is one local attempt of one step.
type Attempt struct {
	// Seq is assigned by Record (1, 2, ... per file).
	Seq uint64 `json:"seq"`
	// Remote is the checkout's remote URL (credentials removed), or
	// "file://" and the checkout's path when it has none; Commit its HEAD.
	Remote   string `json:"remote"`
	Commit   string `json:"commit"`
	Dir      string `json:"dir"`
	Instance string `json:"instance"`
	Step     string `json:"step"`
	// Scenario is the scenario file the attempt ran, if any;
	// FromScenario is set for every attempt that ran a scenario (from a
	// file or standard input) rather than the manifest's step.
	Scenario     string `json:"scenario,omitempty"`
	FromScenario bool   `json:"from_scenario,omitempty"`
	// InstanceEdited says that the checkout's instance file differed from
	// its content at Commit when the attempt started.
	InstanceEdited bool `json:"instance_edited,omitempty"`
	// InstanceBefore and InstanceAfter are the git blob ids of the
	// instance file when the attempt started and ended ("" unread): a
	// later step on the file a writing step left is on a file it knows.
	InstanceBefore string   `json:"instance_before,omitempty"`
	InstanceAfter  string   `json:"instance_after,omitempty"`
	Argv           []string `json:"argv"`
	// EnvNames are the names of the variables the step got (never values).
	EnvNames   []string          `json:"env_names"`
	Outputs    map[string]string `json:"outputs,omitempty"`
	Status     string            `json:"status"`
	Reason     string            `json:"reason,omitempty"`
	ExitCode   int               `json:"exit_code"`
	Started    time.Time         `json:"started"`
	DurationMS int64             `json:"duration_ms"`
}

// Succeeded reports whether the attempt succeeded.
func (a Attempt) Succeeded() bool { return a.Status == "succeeded" }

// DefaultPath is the state file under the user's cache directory
// (os.UserCacheDir: $XDG_CACHE_HOME or ~/.cache on Linux).
func DefaultPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("local state: %w", err)
	}
	return filepath.Join(dir, "deployer", FileName), nil
}

// Store is the local state file at a path.
type Store struct {
	path string
	// Max is how many attempts are kept (0: MaxAttempts).
	Max int
}

func (s *Store) max() int {
	if s.Max > 0 {
		return s.Max
	}
	return MaxAttempts
}

// prune removes the attempts older than the newest keep: every attempt
// has a seq, so they are those with seq <= last-keep.
func prune(b, idx *bolt.Bucket, last uint64, keep int) error {
	if last <= uint64(keep) {
		return nil
	}
	c := idx.Cursor()
	for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) <= last-uint64(keep); k, v = c.First() {
		if err := b.Delete(v); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// New returns the store at path; the file is created on the first Record.
func New(path string) *Store { return &Store{path: path} }

// Path is the file's path.
func (s *Store) Path() string { return s.path }

// open opens the file, waiting up to 5s for another step run to close it.
func (s *Store) open(readOnly bool) (*bolt.DB, error) {
	if readOnly {
		if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
			return nil, os.ErrNotExist
		}
	} else if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return nil, fmt.Errorf("local state: %w", err)
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("local state %s: %w", s.path, err)
	}
	return db, nil
}

// key is remote NUL commit NUL seq (big endian): one checkout's commit
// sorts together, oldest first.
func key(remote, commit string, seq uint64) []byte {
	k := prefix(remote, commit)
	return binary.BigEndian.AppendUint64(k, seq)
}

func prefix(remote, commit string) []byte {
	return []byte(remote + "\x00" + commit + "\x00")
}

// Record adds an attempt and returns it with its Seq.
func (s *Store) Record(a Attempt) (Attempt, error) {
	db, err := s.open(false)
	if err != nil {
		return a, err
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAttempts)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		a.Seq = seq
		v, err := json.Marshal(a)
		if err != nil {
			return err
		}
		k := key(a.Remote, a.Commit, seq)
		if err := b.Put(k, v); err != nil {
			return err
		}
		idx, err := tx.CreateBucketIfNotExists(bucketBySeq)
		if err != nil {
			return err
		}
		if err := idx.Put(binary.BigEndian.AppendUint64(nil, seq), k); err != nil {
			return err
		}
		return prune(b, idx, seq, s.max())
	})
	if err != nil {
		return a, fmt.Errorf("local state %s: record attempt: %w", s.path, err)
	}
	return a, nil
}

// Filter selects attempts; empty fields select all.
type Filter struct {
	Remote, Commit, Instance, Step string
	// Limit keeps the newest Limit attempts (0: all).
	Limit int
}

func (f Filter) match(a Attempt) bool {
	return (f.Remote == "" || a.Remote == f.Remote) && (f.Commit == "" || a.Commit == f.Commit) &&
		(f.Instance == "" || a.Instance == f.Instance) && (f.Step == "" || a.Step == f.Step)
}

// List returns the attempts f selects, newest first. A missing file has
// none.
func (s *Store) List(f Filter) ([]Attempt, error) {
	db, err := s.open(true)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var out []Attempt
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAttempts)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		var p []byte
		if f.Remote != "" && f.Commit != "" {
			p = prefix(f.Remote, f.Commit)
			k, v = c.Seek(p)
		} else {
			k, v = c.First()
		}
		for ; k != nil && (p == nil || bytes.HasPrefix(k, p)); k, v = c.Next() {
			var a Attempt
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("attempt %q: %w", strings.ReplaceAll(string(k), "\x00", " "), err)
			}
			if f.match(a) {
				out = append(out, a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local state %s: %w", s.path, err)
	}
	slices.SortFunc(out, func(a, b Attempt) int { return -cmpUint(a.Seq, b.Seq) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Counts is whether a later step may take this attempt's outputs as its
// dependency's: the manifest's step ran (not a scenario) on the instance
// file as committed.
func (a Attempt) Counts() bool {
	return !a.FromScenario && a.Scenario == "" && !a.InstanceEdited
}

// LastCounted returns the newest attempt of step for instance at remote
// and commit that Counts, whatever its status (ok false when there is
// none), and how many newer ones did not count.
func (s *Store) LastCounted(remote, commit, instance, step string) (a Attempt, ok bool, ignored int, err error) {
	as, err := s.List(Filter{Remote: remote, Commit: commit, Instance: instance, Step: step})
	if err != nil {
		return Attempt{}, false, 0, err
	}
	for _, a := range as {
		if a.Counts() {
			return a, true, ignored, nil
		}
		ignored++
	}
	return Attempt{}, false, ignored, nil
}
