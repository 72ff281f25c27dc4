package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/sre-tools/deployer/store/internal/salvage"
)

// compactTxSize bounds each copy transaction of Compact; compactAllocSize
// is the step in which the copy's file grows (bbolt's default, 16 MiB,
// would round a small file up).
const (
	compactTxSize    = 64 << 20
	compactAllocSize = 1 << 20
)

// CompactStats reports the file size before and after Compact.
type CompactStats struct {
	Before, After int64
}

// compactTemp is where Compact builds the new file; Open removes a stale
// one left by a crash (the original is then still intact).
func compactTemp(path string) string { return path + ".compact" }

// Compact rewrites the state into a fresh file next to it, without the
// free pages that retention left, and swaps it in with an atomic rename.
// It holds the Store's write lock throughout: every other call waits until
// the swap is done. If the process dies before the rename, the original
// file is untouched; after it, the new file is complete.
func (s *Store) Compact() (CompactStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return CompactStats{}, ErrClosed
	}
	var st CompactStats
	st.Before = fileSize(s.path)
	tmp := compactTemp(s.path)
	if err := s.compactInto(tmp); err != nil {
		_ = os.Remove(tmp)
		return st, fmt.Errorf("compact %s: %w", s.path, err)
	}
	if s.opts.Failpoint != nil {
		s.opts.Failpoint("mid-compaction")
	}
	if err := s.db.Close(); err != nil {
		s.db = nil
		return st, fmt.Errorf("compact %s: close: %w", s.path, err)
	}
	s.db = nil
	swapErr := replaceFile(tmp, s.path)
	db, err := openBolt(s.path, s.boltOptions())
	if err != nil {
		return st, fmt.Errorf("compact %s: reopen: %w", s.path, errors.Join(swapErr, err))
	}
	s.db = db
	if swapErr != nil {
		_ = os.Remove(tmp)
		return st, fmt.Errorf("compact %s: %w", s.path, swapErr)
	}
	st.After = fileSize(s.path)
	s.log.Info().Str("path", s.path).Int64("before", st.Before).Int64("after", st.After).Msg("state file compacted")
	return st, nil
}

func (s *Store) compactInto(tmp string) error {
	_ = os.Remove(tmp)
	dst, err := openBolt(tmp, s.boltOptions())
	if err != nil {
		return err
	}
	dst.AllocSize = compactAllocSize
	if err := bolt.Compact(dst, s.db, compactTxSize); err != nil {
		_ = dst.Close()
		return err
	}
	if err := salvage.Check(dst); err != nil {
		_ = dst.Close()
		return fmt.Errorf("check compacted copy: %w", err)
	}
	return dst.Close()
}

// replaceFile renames src over dst and syncs the directory so the rename
// survives a crash.
func replaceFile(src, dst string) error {
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Backup writes a consistent copy of the whole state file to w from one
// read transaction; writers keep working meanwhile. It returns the bytes
// written.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}
