package syncer_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// Commits made in the same second (a daemon writing back, then a person
// pushing on top) tie on committer date: the previous upstream tip is still
// an ancestor, not a rewrite.
func TestSyncSameSecondCommitsAreNotARewrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bare := filepath.Join(dir, "remote.git")
	work := filepath.Join(dir, "work")
	env := append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir,
		"GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@x", "GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@x",
		"GIT_AUTHOR_DATE=1795616227 +0000", "GIT_COMMITTER_DATE=1795616227 +0000")
	git := func(d string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = d, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git(dir, "init", "-q", "--bare", "-b", "main", bare)
	git(dir, "init", "-q", "-b", "main", work)
	commit := func(name string) string {
		if err := os.WriteFile(filepath.Join(work, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		git(work, "add", name)
		git(work, "commit", "-q", "-m", name)
		git(work, "push", "-q", bare, "HEAD:refs/heads/main")
		return git(work, "rev-parse", "HEAD")
	}
	commit("a")
	commit("b")
	ctx := context.Background()
	r, err := syncer.Open(ctx, syncer.Options{Name: "t", URL: bare, Dir: filepath.Join(dir, "co")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	known := commit("c")
	if _, err := r.Sync(ctx, ""); err != nil {
		t.Fatal(err)
	}
	commit("d")
	res, err := r.Sync(ctx, known)
	if err != nil {
		t.Fatalf("sync after a same-second commit on top of %s: got %v (%s), want a fast-forward", known[:10], err, res.Detail)
	}
	if res.State != syncer.StateBehind {
		t.Fatalf("got state %s, want behind", res.State)
	}
}
