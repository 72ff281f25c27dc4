package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTakeReturnsUnderAnEventFlood: two directories of 300 files swapped without pause (each
// swap an event whose tree the watcher adds) kept the watcher's reader holding its lock, and
// Take, a sync's dirty check, waited for good. Take now returns, and says events were lost
// (the caller scans in full).
func TestTakeReturnsUnderAnEventFlood(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 300; i++ {
			if err := os.WriteFile(filepath.Join(root, d, fmt.Sprintf("f%03d", i)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	w, err := New(root, ".git")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			_ = unix.Renameat2(unix.AT_FDCWD, filepath.Join(root, "a"), unix.AT_FDCWD, filepath.Join(root, "b"), unix.RENAME_EXCHANGE)
		}
	}()
	defer func() { stop.Store(true); <-done }()
	time.Sleep(200 * time.Millisecond)
	took := make(chan Changes, 1)
	go func() { took <- w.Take() }()
	select {
	case c := <-took:
		if c.Lost == "" && len(c.Paths) == 0 {
			t.Fatalf("Take under a flood of renames: nothing lost and nothing touched")
		}
		t.Logf("Take: lost %q, %d paths", c.Lost, len(c.Paths))
	case <-time.After(20 * time.Second):
		t.Fatal("Take did not return within 20 s while events kept arriving")
	}
}
