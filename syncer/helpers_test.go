package syncer_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/syncer"
)

// gitRun runs git in dir and returns its trimmed stdout, failing the test on error.
func gitRun(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	out, err := gitCmd(dir, args...)
	if err != nil {
		tb.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(out)
}

func gitCmd(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Human", "GIT_AUTHOR_EMAIL=human@example.com",
		"GIT_COMMITTER_NAME=Human", "GIT_COMMITTER_EMAIL=human@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir(), "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// fixture is a bare remote, a human's clone of it, and a place for our checkout.
type fixture struct {
	tb     testing.TB
	bare   string
	human  string
	dir    string
	remote string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	root := tb.TempDir()
	f := &fixture{tb: tb, bare: filepath.Join(root, "remote.git"), human: filepath.Join(root, "human"), dir: filepath.Join(root, "checkout")}
	gitRun(tb, root, "init", "-q", "--bare", "-b", "main", f.bare)
	gitRun(tb, root, "init", "-q", "-b", "main", f.human)
	f.write("deployer.xml", "<deployer version=\"1\"/>\n")
	f.write("instances/a.xml", "<instance name=\"a\" version=\"1\"/>\n")
	f.write("instances/b.xml", "<instance name=\"b\" version=\"1\"/>\n")
	f.commit("initial")
	gitRun(tb, f.human, "remote", "add", "origin", f.bare)
	gitRun(tb, f.human, "push", "-q", "origin", "main")
	f.remote = f.bare
	return f
}

func (f *fixture) write(name, content string) {
	f.tb.Helper()
	p := filepath.Join(f.human, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.tb.Fatal(err)
	}
}

func (f *fixture) commit(msg string) string {
	f.tb.Helper()
	gitRun(f.tb, f.human, "add", "-A")
	gitRun(f.tb, f.human, "commit", "-q", "-m", msg)
	return gitRun(f.tb, f.human, "rev-parse", "HEAD")
}

// push commits the human's change and pushes it; it returns the new tip.
func (f *fixture) push(name, content, msg string) string {
	f.tb.Helper()
	f.write(name, content)
	h := f.commit(msg)
	gitRun(f.tb, f.human, "push", "-q", "origin", "main")
	return h
}

func (f *fixture) tip() string { return gitRun(f.tb, f.bare, "rev-parse", "main") }

func (f *fixture) options() syncer.Options {
	return syncer.Options{
		Name: "test", URL: f.remote, Dir: f.dir,
		Author: syncer.Author{Name: "deployer", Email: "deployer@test"},
		Now:    func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) },
	}
}

func (f *fixture) open(opts syncer.Options) *syncer.Repo {
	f.tb.Helper()
	r, err := syncer.Open(context.Background(), opts)
	if err != nil {
		f.tb.Fatalf("open: %v", err)
	}
	f.tb.Cleanup(func() { _ = r.Close() })
	return r
}

// checkHealthy asserts that git accepts the checkout: fsck passes, status is clean, HEAD is want.
func checkHealthy(tb testing.TB, dir, want string) {
	tb.Helper()
	gitRun(tb, dir, "fsck", "--no-progress", "--strict")
	if st := gitRun(tb, dir, "status", "--porcelain", "--untracked-files=no"); st != "" {
		tb.Fatalf("git status in checkout: got %q, want clean", st)
	}
	if want != "" {
		if got := gitRun(tb, dir, "rev-parse", "HEAD"); got != want {
			tb.Fatalf("HEAD: got %s, want %s", got, want)
		}
	}
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func writeExec(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		tb.Fatal(err)
	}
}
