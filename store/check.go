package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sre-tools/deployer/store/internal/salvage"
)

// FileCheck is what CheckFile found in a state file.
type FileCheck struct {
	Path string
	Size int64
	// SchemaVersion is the file's, 0 when it has none (not a state file,
	// or unreadable).
	SchemaVersion uint64
	// Problems are the findings (the first few); none means sound.
	Problems []string
}

// OK reports whether the check found nothing wrong.
func (c FileCheck) OK() bool { return len(c.Problems) == 0 }

// CheckFile checks the bbolt file at path without changing it: the
// plain-read structure checks Open makes before bbolt maps a file (so
// that a truncated or damaged file is reported, not a crash), then, with
// bbolt in read-only mode, a read of every key and value and bbolt's
// consistency check. It is for copies (a backup): the daemon's own file is
// locked while it runs, and CheckFile gives up after DefaultTimeout with
// bbolt's ErrTimeout.
//
// A file with problems returns them in the FileCheck and an error
// wrapping ErrCorrupt that names the first; a file that cannot be read
// (missing, no permission, locked) returns that error.
func CheckFile(path string) (FileCheck, error) {
	c := FileCheck{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return c, fmt.Errorf("check %s: %w", path, err)
	}
	c.Size = fi.Size()
	db, err := openReadOnlyChecked(path, DefaultTimeout)
	var d *salvage.Damage
	if errors.As(err, &d) {
		c.Problems = d.Problems
		return c, fmt.Errorf("check %s: %w: %s", path, ErrCorrupt, strings.Join(d.Problems, "; "))
	}
	if err != nil {
		return c, fmt.Errorf("check %s: %w", path, err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		c.SchemaVersion = schemaOf(tx)
		return nil
	})
	return c, nil
}

// openReadOnlyChecked runs the structure checks under the file lock, opens
// the file read-only and verifies it. Findings come back as
// *salvage.Damage.
func openReadOnlyChecked(path string, timeout time.Duration) (*bolt.DB, error) {
	f, err := lockFile(path, timeout)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, os.ErrNotExist
	}
	err = salvage.Structure(f)
	unlockFile(f)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
		return nil, &salvage.Damage{Problems: []string{"empty file"}}
	}
	db, _, err := openVerified(path, &bolt.Options{ReadOnly: true, Timeout: timeout})
	return db, err
}

// OpenReadOnly opens an existing state file for reading only, for tools
// and tests that inspect a stopped daemon's file: it checks the file as
// CheckFile does, and neither migrates nor salvages it. A file with
// problems is refused (ErrCorrupt), as is one of another schema than
// SchemaVersion (ErrSchemaTooNew when newer; an older one must be
// migrated by Open). Every write returns bbolt's ErrDatabaseReadOnly.
// Options.Timeout bounds the wait while another process holds the file.
func OpenReadOnly(path string, opts Options) (*Store, error) {
	s := newStore(path, opts)
	db, err := openReadOnlyChecked(path, s.opts.Timeout)
	var d *salvage.Damage
	if errors.As(err, &d) {
		return nil, fmt.Errorf("open %s: %w: %s", path, ErrCorrupt, strings.Join(d.Problems, "; "))
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var v uint64
	_ = db.View(func(tx *bolt.Tx) error { v = schemaOf(tx); return nil })
	switch {
	case v > SchemaVersion:
		err = fmt.Errorf("schema %d, binary knows %d: %w", v, SchemaVersion, ErrSchemaTooNew)
	case v != SchemaVersion:
		err = fmt.Errorf("schema %d: the daemon migrates it to %d at its next start; read-only access needs %d", v, SchemaVersion, SchemaVersion)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.db = db
	return s, nil
}
