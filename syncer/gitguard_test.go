package syncer_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// TestGitDirSnapshotPutBack: a hook added, the config rewritten, an
// alternates file planted and a guarded file removed are all undone, and
// named; a second PutBack finds nothing.
func TestGitDirSnapshotPutBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	git := filepath.Join(r.Dir(), ".git")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(git, "info"), 0o755))
	must(os.WriteFile(filepath.Join(git, "info", "exclude"), []byte("# kept\n"), 0o644))
	snap, err := syncer.SnapshotGitDir(r.Dir())
	if err != nil {
		t.Fatal(err)
	}
	config, err := os.ReadFile(filepath.Join(git, "config"))
	must(err)
	must(os.WriteFile(filepath.Join(git, "config"), append(config, "[core]\n\tfsmonitor = touch /tmp/pwned\n"...), 0o644))
	must(os.MkdirAll(filepath.Join(git, "hooks"), 0o755))
	must(os.WriteFile(filepath.Join(git, "hooks", "post-checkout"), []byte("#!/bin/sh\ntouch /tmp/pwned\n"), 0o755))
	must(os.MkdirAll(filepath.Join(git, "objects", "info"), 0o755))
	must(os.WriteFile(filepath.Join(git, "objects", "info", "alternates"), []byte("/tmp/evil/objects\n"), 0o644))
	must(os.Remove(filepath.Join(git, "info", "exclude")))

	changed, err := snap.PutBack(r.Dir())
	if err != nil {
		t.Fatalf("put back: %v", err)
	}
	want := []string{".git/config", ".git/hooks/post-checkout", ".git/info/exclude", ".git/objects/info/alternates"}
	if !slices.Equal(changed, want) {
		t.Fatalf("changed %v, want %v", changed, want)
	}
	if got, _ := os.ReadFile(filepath.Join(git, "config")); string(got) != string(config) {
		t.Fatalf("config not put back:\n%s", got)
	}
	for _, gone := range []string{"hooks/post-checkout", "objects/info/alternates"} {
		if _, err := os.Lstat(filepath.Join(git, gone)); !os.IsNotExist(err) {
			t.Fatalf(".git/%s is still there: %v", gone, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(git, "info", "exclude")); string(got) != "# kept\n" {
		t.Fatalf("info/exclude not written again: %q", got)
	}
	if again, err := snap.PutBack(r.Dir()); err != nil || len(again) != 0 {
		t.Fatalf("a second put back found %v (%v), want nothing", again, err)
	}
	checkHealthy(t, r.Dir(), r.Head())
}
