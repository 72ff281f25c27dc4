package salvage

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"runtime/debug"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// MaxProblems bounds the findings kept in a Damage or a Report.
const MaxProblems = 10

// Damage is a file that failed a check: what was found (the first
// MaxProblems findings).
type Damage struct{ Problems []string }

func (d *Damage) Error() string { return strings.Join(d.Problems, "; ") }

func damaged(problems ...string) *Damage { return &Damage{Problems: problems} }

// ErrPanicked marks a panic or memory fault caught while reading a
// damaged file.
var ErrPanicked = errors.New("panic reading state file")

// Protect runs fn, turning panics and memory faults (bad pages in the
// memory map) into errors wrapping ErrPanicked.
func Protect(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanicked, r)
		}
	}()
	return fn()
}

// Structure runs the plain-read checks on the file f (open for reading,
// and locked by the caller so that nobody writes it meanwhile): a valid
// meta page, a file as long as the meta says, a sane freelist, and every
// page of every bucket tree in bounds and well formed. nil means bbolt can
// map the file without meeting a bad offset; an empty file passes.
// Findings come back as *Damage, I/O errors as they are.
func Structure(f *os.File) error {
	m, err := preflight(f)
	if err != nil || m == nil {
		return err
	}
	return validate(f, m)
}

// Verify reads every key and value of db under Protect, so that damage a
// cursor can meet shows up here and not later in a goroutine that cannot
// recover, then runs bbolt's consistency check. It returns a checksum of
// the contents; findings come back as *Damage.
func Verify(db *bolt.DB) (uint32, error) {
	var sum uint32
	err := Protect(func() error {
		return db.View(func(tx *bolt.Tx) error {
			var err error
			sum, err = walkAll(tx)
			return err
		})
	})
	if err != nil {
		return 0, damaged(err.Error())
	}
	return sum, Check(db)
}

// Check runs bbolt's consistency check on db; findings come back as
// *Damage.
func Check(db *bolt.DB) error {
	var problems []string
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(problems) < MaxProblems {
				problems = append(problems, err.Error())
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return damaged(problems...)
	}
	return nil
}

// walkAll reads every key and value of every bucket and returns a
// checksum of them.
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
