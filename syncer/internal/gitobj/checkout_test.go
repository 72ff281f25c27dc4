package gitobj

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/filemode"
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
			err := writeWorktreeFile(p, []byte("x\n"), tc.mode, mk.umask)
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
