package syncer_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMoveNeverWritesThroughSwappedDirectory: while a sync moves the checkout (400 changed
// files in data/), something keeps swapping data/ with a symlink to a directory outside the
// checkout (renameat2 RENAME_EXCHANGE, as an attacker's script did). Whatever the sync
// ends with, no file outside the checkout is written, removed or created: the move writes
// relative to the directories it opened, never by path. (The syncer wrote by whole path:
// the attacker had 634-1,804 outside files overwritten per sync.)
func TestMoveNeverWritesThroughSwappedDirectory(t *testing.T) {
	const n = 400
	f := newFixture(t)
	for i := 0; i < n; i++ {
		f.write(fmt.Sprintf("data/f%04d.txt", i), fmt.Sprintf("file %d r0\n", i))
	}
	f.commit("add data")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	r := f.open(f.options())
	defer r.Close()

	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(outside, fmt.Sprintf("f%04d.txt", i)), []byte("ORIGINAL OUTSIDE\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(f.dir, "data.link")
	for round := 1; round <= 4; round++ {
		for i := 0; i < n; i++ {
			f.write(fmt.Sprintf("data/f%04d.txt", i), fmt.Sprintf("file %d r%d\n", i, round))
		}
		f.commit(fmt.Sprintf("round %d", round))
		gitRun(t, f.human, "push", "-q", "origin", "main")
		// What is at the link's name now is the checkout's old data/ (when the move made a new
		// one in the link's place, as git does) or the link itself: either goes.
		if err := os.RemoveAll(link); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, link); err != nil {
			t.Fatal(err)
		}
		// As the attacker's script: wait for the move to start (its marker), then swap data/
		// with the link once, a moment later.
		delay := []time.Duration{0, 200 * time.Microsecond, time.Millisecond, 3 * time.Millisecond}[round-1]
		marker := filepath.Join(f.dir, ".git", "deployer-moving")
		var stop atomic.Bool
		swapped := make(chan bool, 1)
		go func() {
			for !stop.Load() {
				if _, err := os.Lstat(marker); err == nil {
					time.Sleep(delay)
					swapped <- unix.Renameat2(unix.AT_FDCWD, filepath.Join(f.dir, "data"), unix.AT_FDCWD, link, unix.RENAME_EXCHANGE) == nil
					return
				}
			}
			swapped <- false
		}()
		_, err := r.Sync(ctxT(t), r.Head())
		stop.Store(true)
		t.Logf("round %d: swapped %v %v into the move; sync: %v", round, <-swapped, delay, err)
		// Put data/ back in place for the next round (an odd number of swaps left the link there).
		if fi, err := os.Lstat(filepath.Join(f.dir, "data")); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(f.dir, "data"), unix.AT_FDCWD, link, unix.RENAME_EXCHANGE); err != nil {
				t.Fatal(err)
			}
		}
		ents, err := os.ReadDir(outside)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != n {
			t.Fatalf("round %d: %d files outside the checkout, want %d", round, len(ents), n)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(outside, e.Name()))
			if err != nil || string(b) != "ORIGINAL OUTSIDE\n" {
				t.Fatalf("round %d: outside file %s now holds %q (%v): written through the swapped directory", round, e.Name(), b, err)
			}
		}
	}
}
