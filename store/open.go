package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/sre-tools/deployer/store/internal/salvage"
)

// Open opens (creating if needed) the state file at path, checks its
// integrity, and creates or migrates its buckets.
//
// A file that fails the check (bad meta pages, truncation, bad pages,
// anything that makes bbolt panic) is never deleted or written to: it is
// renamed to "<path>.corrupt-<UTC time>", what can be read
// from it (journal first, then interventions, runs...) is copied into a
// fresh file at path, and Open succeeds; Salvaged then returns the report.
// Open does not panic on a damaged file.
func Open(path string, opts Options) (*Store, error) {
	s := newStore(path, opts)
	if err := s.finishInterrupted(); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db, err := s.openChecked()
	var d *salvage.Damage
	if errors.As(err, &d) {
		db, err = s.replaceDamaged(d)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
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

// finishInterrupted completes a salvage interrupted by a crash after the
// damaged file was moved aside: the salvaged copy is complete, and is
// moved into place. (Leftovers next to an existing file are removed under
// its lock, in preflight.)
func (s *Store) finishInterrupted() error {
	tmp := salvageTemp(s.path)
	if _, err := os.Stat(tmp); err != nil {
		return nil
	}
	if _, err := os.Stat(s.path); !os.IsNotExist(err) {
		return nil
	}
	s.log.Warn().Str("path", s.path).Msg("completing a salvage interrupted by a crash")
	if err := replaceFile(tmp, s.path); err != nil {
		return err
	}
	s.salvaged = s.interruptedReport()
	return nil
}

// removeLeftovers drops a compaction copy (the original is intact until
// the rename) and a salvage copy (the salvage will be redone) left by a
// crash. The caller holds the file lock.
func (s *Store) removeLeftovers() error {
	if err := removeIfExists(compactTemp(s.path)); err != nil {
		return err
	}
	return removeIfExists(salvageTemp(s.path))
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// openChecked opens path and verifies it. Damage comes back as
// *salvage.Damage; any other error (lock timeout, permissions) as itself.
func (s *Store) openChecked() (*bolt.DB, error) {
	if err := s.preflight(); err != nil {
		return nil, err
	}
	db, sum, err := openVerified(s.path, s.boltOptions())
	if err != nil {
		return nil, err
	}
	s.log.Debug().Str("path", s.path).Uint32("crc32", sum).Msg("state file read in full")
	return db, nil
}

// openVerified opens path with bbolt, which must not panic on a damaged
// file (the plain-read checks come first), then reads it in full and runs
// bbolt's check (salvage.Verify). Damage comes back as *salvage.Damage.
func openVerified(path string, opts *bolt.Options) (*bolt.DB, uint32, error) {
	var file *os.File
	opts.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, mode)
		file = f
		return f, err
	}
	var db *bolt.DB
	err := salvage.Protect(func() error {
		var err error
		db, err = openBolt(path, opts)
		return err
	})
	switch {
	case errors.Is(err, salvage.ErrPanicked):
		if file != nil {
			_ = file.Close() // releases the flock bbolt took before panicking
		}
		return nil, 0, &salvage.Damage{Problems: []string{err.Error()}}
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, 0, &salvage.Damage{Problems: []string{err.Error()}}
	case err != nil:
		return nil, 0, err
	}
	sum, err := salvage.Verify(db)
	if err != nil {
		_ = salvage.Protect(db.Close)
		return nil, 0, err
	}
	return db, sum, nil
}

// preflight runs the plain-read checks while holding the file lock.
func (s *Store) preflight() error {
	f, err := lockFile(s.path, s.opts.Timeout)
	if err != nil {
		return err
	}
	defer unlockFile(f)
	if f == nil {
		return nil
	}
	if err := s.removeLeftovers(); err != nil {
		return err
	}
	return salvage.Structure(f)
}

func salvageTemp(path string) string { return path + ".salvage" }

// replaceDamaged salvages the damaged file into a fresh one, moves the
// damaged file aside and the fresh one into place, and opens it.
func (s *Store) replaceDamaged(d *salvage.Damage) (*bolt.DB, error) {
	now := s.now().UTC()
	rep := &SalvageReport{
		Kind: KindStateCorrupt, Path: s.path, At: now, Problems: d.Problems,
		Recovered: map[string]int{}, Dropped: map[string]int{},
	}
	s.log.Error().Str("path", s.path).Strs("problems", d.Problems).Msg("state file is corrupt; salvaging")
	tmp := salvageTemp(s.path)
	if err := removeIfExists(tmp); err != nil {
		return nil, err
	}
	if err := s.salvageInto(s.path, tmp, rep); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("%w: %v; salvage failed: %w", ErrCorrupt, d, err)
	}
	rep.CorruptPath = asideName(s.path, now.Format("20060102T150405Z"))
	if err := s.moveAside(rep.CorruptPath); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("%w: move aside: %w", ErrCorrupt, err)
	}
	if err := replaceFile(tmp, s.path); err != nil {
		return nil, fmt.Errorf("%w: put salvaged copy in place: %w", ErrCorrupt, err)
	}
	db, err := openBolt(s.path, s.boltOptions())
	if err != nil {
		return nil, fmt.Errorf("%w: open salvaged copy: %w", ErrCorrupt, err)
	}
	s.salvaged = rep
	s.log.Warn().Str("corrupt_path", rep.CorruptPath).Interface("recovered", rep.Recovered).
		Strs("incomplete", rep.Incomplete).Msg("state file salvaged")
	return db, nil
}

// moveAside renames the damaged file while holding its lock, so a file
// another process holds is never moved.
func (s *Store) moveAside(to string) error {
	f, err := lockFile(s.path, s.opts.Timeout)
	if err != nil {
		return err
	}
	defer unlockFile(f)
	return os.Rename(s.path, to)
}

// asideName returns "<path>.corrupt-<stamp>", with a counter if taken.
func asideName(path, stamp string) string {
	name := path + ".corrupt-" + stamp
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			return name
		}
		name = fmt.Sprintf("%s.corrupt-%s-%d", path, stamp, i)
	}
}

// interruptedReport stands in for the report lost when a salvage was
// interrupted after the damaged file had been moved aside.
func (s *Store) interruptedReport() *SalvageReport {
	aside, _ := filepath.Glob(s.path + ".corrupt-*")
	sort.Strings(aside)
	rep := &SalvageReport{
		Kind: KindStateCorrupt, Path: s.path, At: s.now().UTC(),
		Problems:  []string{"a salvage interrupted by a crash was completed at start-up; its counts were lost"},
		Recovered: map[string]int{},
	}
	if len(aside) > 0 {
		rep.CorruptPath = aside[len(aside)-1]
	}
	return rep
}
