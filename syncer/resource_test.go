package syncer_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/syncer"
)

// mountTmpfs mounts a tmpfs of size at a new directory and unmounts it at cleanup. It skips
// (visibly) when mounting is impossible, unless CI_REQUIRE_MOUNT=1, where it fails.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := "cannot mount a tmpfs for the disk-full test (needs root or CAP_SYS_ADMIN): " + strings.TrimSpace(string(out)) + ": " + err.Error()
		if os.Getenv("CI_REQUIRE_MOUNT") == "1" {
			t.Fatal(msg + " (CI_REQUIRE_MOUNT=1)")
		}
		t.Skip("SKIPPED: " + msg)
	}
	t.Cleanup(func() {
		// go-git leaves the file of a failed pack write open until the garbage collector
		// closes it: collect, so that the tmpfs is not busy.
		var out []byte
		var err error
		for i := 0; i < 50; i++ {
			runtime.GC()
			if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = exec.Command("umount", "-l", dir).Run()
		t.Errorf("umount %s: %v\n%s", dir, err, out)
	})
	return dir
}

func remountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s: %v\n%s", dir, err, out)
	}
}

func wantResource(t *testing.T, what string, err error) {
	t.Helper()
	if syncer.KindOf(err) != syncer.KindResource {
		t.Fatalf("%s on a full filesystem: got %v (kind %q), want %s", what, err, syncer.KindOf(err), syncer.KindResource)
	}
	var e *syncer.Error
	errors.As(err, &e)
	if !strings.Contains(e.Detail, "no space left on device") || !strings.Contains(e.Detail, "/") {
		t.Fatalf("%s: detail %q does not name the path and \"no space left on device\"", what, e.Detail)
	}
	if !errors.Is(err, syncer.ErrResource) {
		t.Fatalf("%s: %v is not ErrResource", what, err)
	}
	t.Logf("%s: %s", what, e.Detail)
}

// TestDiskFullIsHostResource puts the checkout on a 2 MiB tmpfs. A 3 MB commit upstream
// makes the fetch fail with ENOSPC: Sync is host-resource (not remote-unreachable) naming the
// path and "no space left on device", twice in a row; nothing is re-cloned or moved aside and
// the checkout stays at its HEAD. With space back (the tmpfs grown) the same Sync
// fast-forwards. A clone onto the full filesystem is host-resource too and leaves no half
// repository.
func TestDiskFullIsHostResource(t *testing.T) {
	t.Parallel()
	small := mountTmpfs(t, "2m")
	f := gitDaemonFixture(t)
	f.dir = filepath.Join(small, "checkouts", "test")
	r := f.open(f.options())
	known := f.tip()
	tip := f.pushBig("big.bin", 3<<20)
	for i := 0; i < 2; i++ {
		res, err := r.Sync(ctxT(t), known)
		wantResource(t, "sync", err)
		if res.State != syncer.StateResource || r.Head() != known {
			t.Fatalf("sync %d: %+v, HEAD %s; want resource at %s", i, res, r.Head(), known)
		}
		if s := siblings(t, f.dir); len(s) != 1 {
			t.Fatalf("sync %d: checkouts/ holds %v, want only the checkout", i, s)
		}
		if left := tempPacks(t, f.dir); len(left) > 0 {
			t.Fatalf("sync %d left %v", i, left)
		}
	}
	checkHealthy(t, f.dir, known)

	// A clone onto the full filesystem.
	opts := f.options()
	opts.Dir = filepath.Join(small, "checkouts", "other")
	_, err := syncer.Open(ctxT(t), opts)
	wantResource(t, "clone", err)
	if ents, _ := os.ReadDir(opts.Dir); len(ents) != 0 {
		t.Fatalf("the failed clone left %d entries in %s", len(ents), opts.Dir)
	}

	remountTmpfs(t, small, "32m")
	res, err := r.Sync(ctxT(t), known)
	if err != nil || res.State != syncer.StateBehind || res.Head != tip {
		t.Fatalf("sync with space back: %+v, %v; want behind at %s", res, err, tip)
	}
	checkHealthy(t, f.dir, tip)
}

// TestDiskFullWriteBackIsHostResource fills the checkout's filesystem to its last few KB and
// writes back a 1 MB edit: host-resource, the change pending; with space back it lands.
func TestDiskFullWriteBackIsHostResource(t *testing.T) {
	t.Parallel()
	small := mountTmpfs(t, "2m")
	f := gitDaemonFixture(t)
	f.dir = filepath.Join(small, "checkouts", "test")
	r := f.open(f.options())
	fill := filepath.Join(small, "fill")
	fh, err := os.Create(fill)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := fh.Write(buf); err != nil {
			break
		}
	}
	fh.Close()
	big := "<instance name=\"big\" blob=\"" + randomText(t, 1<<20) + "\"/>\n"
	ch := syncer.Change{ID: "c1", Path: "instances/big.xml", Message: "instance-configure: big: add",
		Apply: func([]byte) ([]byte, error) { return []byte(big), nil }}
	out, err := r.WriteBack(ctxT(t), []syncer.Change{ch}, 2)
	wantResource(t, "write-back", err)
	if out[0].Status != syncer.OutcomePending {
		t.Fatalf("outcome %+v, want pending", out[0])
	}
	if s := siblings(t, f.dir); len(s) != 1 {
		t.Fatalf("checkouts/ holds %v, want only the checkout", s)
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	out, err = r.WriteBack(ctxT(t), []syncer.Change{ch}, 2)
	if err != nil || out[0].Status != syncer.OutcomeLanded {
		t.Fatalf("write-back with space back: %+v, %v", out, err)
	}
	checkHealthy(t, f.dir, f.tip())
}

// gitDaemonFixture serves the fixture's remote with git daemon. (go-git's file transport
// hangs when the local side stops reading the pack: its Close waits for git-upload-pack,
// which waits for a reader.)
func gitDaemonFixture(t *testing.T) *fixture {
	f := newFixture(t)
	d := startGitDaemon(t, filepath.Dir(f.bare), 0)
	f.remote = d.url(filepath.Base(f.bare))
	return f
}
