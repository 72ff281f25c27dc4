package store

import (
	"errors"
	"os"
	"syscall"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// lockFile takes the same exclusive flock bbolt takes, waiting up to
// timeout, so that a file in use by another process is never inspected
// half-written or moved aside. It returns bbolt's ErrTimeout when the lock
// stays taken. A missing file returns (nil, nil).
func lockFile(path string, timeout time.Duration) (*os.File, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, berrors.ErrTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unlockFile releases a lock from lockFile.
func unlockFile(f *os.File) {
	if f != nil {
		_ = f.Close() // closing the descriptor releases the flock
	}
}
