package syncer_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
