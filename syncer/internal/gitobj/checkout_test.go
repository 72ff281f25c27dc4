package gitobj

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"golang.org/x/sys/unix"
)

// TestWorktreeFileModeWhateverTheUmask: a worktree file gets git's mode (0644, or 0755 for an
// executable) under any umask: the open gives it when the umask clears none of its bits, a
// chmod otherwise. Not parallel: the umask is the process's.
func TestWorktreeFileModeWhateverTheUmask(t *testing.T) {
	for _, mask := range []int{0o022, 0o077, 0o002} {
		old := syscall.Umask(mask)
		dir := t.TempDir()
		mk := NewDirMaker(dir)
		if mk.umask != int64(mask) {
			syscall.Umask(old)
			t.Fatalf("umask read as %o, want %o", mk.umask, mask)
		}
		for _, tc := range []struct {
			mode filemode.FileMode
			want os.FileMode
		}{{filemode.Regular, 0o644}, {filemode.Executable, 0o755}} {
			p := filepath.Join(dir, "f")
			err := writeTestFile(mk, p, []byte("x\n"), tc.mode)
			fi, serr := os.Lstat(p)
			if err != nil || serr != nil {
				syscall.Umask(old)
				t.Fatalf("umask %o: %v %v", mask, err, serr)
			}
			if fi.Mode().Perm() != tc.want {
				syscall.Umask(old)
				t.Fatalf("umask %o: %s written %o, want %o", mask, tc.mode, fi.Mode().Perm(), tc.want)
			}
		}
		syscall.Umask(old)
	}
}

// TestWorktreeFileOverwrite: a regular file of ours with one link is written in place (same
// inode, any length, git's mode); anything else at the path is replaced without being
// written through: the other name of a hard link keeps its content, a symlink's target is
// untouched, a FIFO neither blocks the write nor is written to.
func TestWorktreeFileOverwrite(t *testing.T) {
	dir := t.TempDir()
	mk := NewDirMaker(dir)
	defer mk.Close()
	p := filepath.Join(dir, "f")
	ino := func(p string) uint64 {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	check := func(p, want string, perm os.FileMode) {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want || fi.Mode() != perm {
			t.Fatalf("%s: %q %v (mode %v), want %q mode %v", p, b, err, fi.Mode(), want, perm)
		}
	}
	if err := writeTestFile(mk, p, []byte("a fairly long first content\n"), filemode.Regular); err != nil {
		t.Fatal(err)
	}
	first := ino(p)
	for _, tc := range []struct {
		data string
		mode filemode.FileMode
		perm os.FileMode
	}{{"short\n", filemode.Regular, 0o644}, {"a longer content than the one before it\n", filemode.Executable, 0o755}, {"x", filemode.Regular, 0o644}} {
		// A reader holding the file open sees the new content: it was written in place (and
		// the old inode, still open, cannot be reused for a new file).
		held, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeTestFile(mk, p, []byte(tc.data), tc.mode); err != nil {
			t.Fatal(err)
		}
		check(p, tc.data, tc.perm)
		b, err := io.ReadAll(held)
		held.Close()
		if got := ino(p); got != first || err != nil || string(b) != tc.data {
			t.Fatalf("%q: inode %d (was %d), the open file reads %q %v: not written in place", tc.data, got, first, b, err)
		}
	}

	// A hard link: the other name keeps the old content.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.Link(p, other); err != nil {
		t.Fatal(err)
	}
	if err := writeTestFile(mk, p, []byte("new\n"), filemode.Regular); err != nil {
		t.Fatal(err)
	}
	check(p, "new\n", 0o644)
	check(other, "x", 0o644)

	// A symlink to a file outside: replaced, the target untouched.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, p); err != nil {
		t.Fatal(err)
	}
	if err := writeTestFile(mk, p, []byte("via link?\n"), filemode.Regular); err != nil {
		t.Fatal(err)
	}
	check(p, "via link?\n", 0o644)
	check(other, "x", 0o644)

	// A FIFO with nobody reading it: replaced without blocking.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- writeTestFile(mk, p, []byte("after fifo\n"), filemode.Regular) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writing over a FIFO blocked")
	}
	check(p, "after fifo\n", 0o644)
}

// writeTestFile writes data as the file full, directly in mk's root, as a checkout move does.
func writeTestFile(mk *DirMaker, full string, data []byte, mode filemode.FileMode) error {
	d, err := mk.acquire(".", true)
	if err != nil {
		return err
	}
	defer mk.release(d)
	_, err = writeAt(d, filepath.Base(full), full, data, mode, mk.umask)
	return err
}

// TestDirMakerRefusesAMountedDirectory: a directory bind-mounted over a directory of the
// checkout is not the checkout's: nothing is written into it (an attacker's bind mount of an
// outside directory over data/ had its 1,999 files overwritten). Needs the right to mount.
func TestDirMakerRefusesAMountedDirectory(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "f"), []byte("outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(outside, filepath.Join(root, "data"), "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount here: %v", err)
	}
	defer unix.Unmount(filepath.Join(root, "data"), 0)
	mk := NewDirMaker(root)
	defer mk.Close()
	if _, err := mk.acquire("data", true); err == nil || !strings.Contains(err.Error(), "mounted") {
		t.Fatalf("acquire of a bind-mounted directory: %v, want refused", err)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "f")); err != nil || string(b) != "outside\n" {
		t.Fatalf("outside file: %q %v", b, err)
	}
}
