package syncer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

func TestBlobIDMatchesGitHashObject(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, content := range []string{"", "x", "<instance name=\"a\"/>\n", strings.Repeat("\x00\xff line\n", 1000)} {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		want := gitRun(t, dir, "hash-object", p)
		if got := syncer.BlobID([]byte(content)); got != want {
			t.Errorf("BlobID(%q): got %s, want %s (git hash-object)", content[:min(len(content), 20)], got, want)
		}
	}
}

// TestLocalHead reads HEAD from checkouts the git CLI made: a branch as a loose ref and
// packed, a detached HEAD, and a linked worktree on a branch and detached.
func TestLocalHead(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "main")
	gitRun(t, root, "init", "-q", "-b", "main", dir)
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, dir, "add", "a")
	gitRun(t, dir, "commit", "-q", "-m", "one")
	first := gitRun(t, dir, "rev-parse", "HEAD")
	gitRun(t, dir, "commit", "-q", "--allow-empty", "-m", "two")
	head := gitRun(t, dir, "rev-parse", "HEAD")

	want := func(dir, want, what string) {
		t.Helper()
		got, err := syncer.LocalHead(dir)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %s (git rev-parse HEAD)", what, got, err, want)
		}
	}
	want(dir, head, "loose ref")
	gitRun(t, dir, "pack-refs", "--all")
	if _, err := os.Stat(filepath.Join(dir, ".git", "refs", "heads", "main")); !os.IsNotExist(err) {
		t.Fatalf("pack-refs left refs/heads/main loose (%v): the packed case tests nothing", err)
	}
	want(dir, head, "packed ref")

	wt := filepath.Join(root, "wt")
	gitRun(t, dir, "worktree", "add", "-q", "--detach", wt, first)
	want(wt, first, "linked worktree, detached")
	gitRun(t, wt, "checkout", "-q", "-b", "topic")
	want(wt, first, "linked worktree, branch (loose in the common directory)")
	gitRun(t, wt, "commit", "-q", "--allow-empty", "-m", "three")
	want(wt, gitRun(t, wt, "rev-parse", "HEAD"), "linked worktree, new commit")
	gitRun(t, dir, "pack-refs", "--all")
	want(wt, gitRun(t, wt, "rev-parse", "HEAD"), "linked worktree, packed branch")
	want(dir, head, "main checkout beside a worktree")

	gitRun(t, dir, "checkout", "-q", "--detach", first)
	want(dir, first, "detached")

	for name, d := range map[string]string{
		"no checkout": t.TempDir(),
		"empty branch": func() string {
			d := filepath.Join(root, "empty")
			gitRun(t, root, "init", "-q", "-b", "main", d)
			return d
		}(),
	} {
		if got, err := syncer.LocalHead(d); err == nil {
			t.Errorf("%s: got %q, want an error", name, got)
		} else if !strings.Contains(err.Error(), d) {
			t.Errorf("%s: error %q does not name the directory", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := syncer.LocalHead(dir); err == nil || !strings.Contains(err.Error(), "HEAD") {
		t.Errorf("garbled HEAD: got %q, %v; want an error naming HEAD", got, err)
	}
}
