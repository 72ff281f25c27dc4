package syncer_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestore: what a step left in the checkout (changed content, a changed
// mode, a symlink or a directory in a file's place, a new file, a deleted
// file) is put back as HEAD has it, and paths that are not the checkout's
// own files are refused without touching anything.
func TestRestore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.write("bin/tool.sh", "#!/bin/sh\necho hi\n")
	if err := os.Chmod(filepath.Join(f.human, "bin/tool.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.commit("tool")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	r := f.open(f.options())
	dir := f.dir
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "instances/a.xml"), []byte("<broken"), 0o644))
	must(os.Chmod(filepath.Join(dir, "bin/tool.sh"), 0o644))
	must(os.Remove(filepath.Join(dir, "instances/b.xml")))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "instances/b.xml")))
	must(os.Remove(filepath.Join(dir, "deployer.xml")))
	must(os.Mkdir(filepath.Join(dir, "deployer.xml"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "deployer.xml", "x"), []byte("x"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "instances/new.xml"), []byte("<instance/>"), 0o644))
	paths := []string{"instances/a.xml", "bin/tool.sh", "instances/b.xml", "deployer.xml", "instances/new.xml", "instances/c.xml"}
	changed, err := r.Restore(paths)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if want := paths[:5]; !slices.Equal(changed, want) {
		t.Fatalf("changed %v, want %v (c.xml is absent at HEAD and in the checkout: nothing to do)", changed, want)
	}
	if _, err := os.Lstat(filepath.Join(dir, "instances/new.xml")); !os.IsNotExist(err) {
		t.Fatalf("a file HEAD does not have is still there: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/tool.sh")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("the executable bit is not back: %v %v", fi.Mode(), err)
	}
	checkHealthy(t, dir, r.Head())
	if st := gitRun(t, dir, "status", "--porcelain"); st != "" {
		t.Fatalf("git status after restore: %q, want clean", st)
	}
	again, err := r.Restore(paths)
	if err != nil || len(again) != 0 {
		t.Fatalf("a second restore changed %v (%v), want nothing", again, err)
	}

	// Refused: outside the checkout, .git, and through a symlinked directory.
	outside := filepath.Join(filepath.Dir(dir), "outside.txt")
	must(os.WriteFile(outside, []byte("keep"), 0o644))
	must(os.Symlink(filepath.Dir(dir), filepath.Join(dir, "up")))
	for _, p := range []string{"../outside.txt", ".git/config", ".git", "up/outside.txt", "/etc/passwd",
		"./.git/config", "a/../.git", ".", "instances/..", "sub/.GIT/config"} {
		if got, err := r.Restore([]string{p}); err == nil || len(got) != 0 {
			t.Errorf("restore %q: changed %v, err %v; want refused", p, got, err)
		} else if !strings.Contains(err.Error(), p) && !strings.Contains(err.Error(), "up") {
			t.Errorf("restore %q: error %q does not name the path", p, err)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "keep" {
		t.Fatalf("a file outside the checkout changed: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git", "config")); err != nil {
		t.Fatalf(".git/config: %v", err)
	}
}

// TestRestoreNeverWritesThroughSwappedDirectory: while Restore puts files back, something
// keeps exchanging the instances/ directory with a symlink to a directory outside the
// checkout holding files of the same names; no file outside changes (the old Restore checked
// for symlinked directories once, then wrote by path).
func TestRestoreNeverWritesThroughSwappedDirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	dir := f.dir
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a.xml", "b.xml"} {
		if err := os.WriteFile(filepath.Join(outside, n), []byte("outside "+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "swap")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		swaps := 0
		for {
			select {
			case <-stop:
				done <- swaps
				return
			default:
			}
			if unix.Renameat2(unix.AT_FDCWD, filepath.Join(dir, "instances"), unix.AT_FDCWD, link, unix.RENAME_EXCHANGE) == nil {
				swaps++
			}
		}
	}()
	for i := 0; i < 300; i++ {
		// Damage the checkout's own a.xml, never through the link: by its directory's
		// descriptor, when instances/ is the directory at this moment.
		if dfd, err := unix.Open(filepath.Join(dir, "instances"), unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY, 0); err == nil {
			if fd, err := unix.Openat(dfd, "a.xml", unix.O_WRONLY|unix.O_TRUNC|unix.O_NOFOLLOW, 0); err == nil {
				_, _ = unix.Write(fd, []byte("<broken"))
				_ = unix.Close(fd)
			}
			_ = unix.Close(dfd)
		}
		_, _ = r.Restore([]string{"instances/a.xml", "instances/b.xml"})
	}
	close(stop)
	swaps := <-done
	for _, n := range []string{"a.xml", "b.xml"} {
		b, err := os.ReadFile(filepath.Join(outside, n))
		if err != nil || string(b) != "outside "+n {
			t.Errorf("outside file %s: %q %v (after %d swaps)", n, b, err, swaps)
		}
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("outside directory holds %v, want a.xml and b.xml only", names)
	}
	if swaps == 0 {
		t.Fatal("the directory was never swapped")
	}
}
