package syncer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

func TestRescueKeepsHandEditsOnARescueRefAndRestoresTheFiles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options()) // on_dirty: intervene; Rescue acts whatever the policy
	head := r.Head()
	hand := "<instance name=\"a\" version=\"hand\"/>\n"
	if err := os.WriteFile(filepath.Join(f.dir, "instances/a.xml"), []byte(hand), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.dir, "deployer.xml")); err != nil {
		t.Fatal(err)
	}
	res, err := r.Rescue(ctxT(t))
	if err != nil {
		t.Fatalf("rescue: %v", err)
	}
	if !strings.HasPrefix(res.Rescue, syncer.RescuePrefix) {
		t.Fatalf("rescue ref: got %q, want under %s", res.Rescue, syncer.RescuePrefix)
	}
	if want := []string{"deployer.xml", "instances/a.xml"}; !reflect.DeepEqual(res.Files, want) {
		t.Fatalf("files: got %v, want %v", res.Files, want)
	}
	if !strings.Contains(res.Detail, "M instances/a.xml (+1 -1)") || !strings.Contains(res.Detail, "D deployer.xml") {
		t.Fatalf("detail: got %q", res.Detail)
	}
	// the rescue commit holds the hand edit and the deletion, on top of HEAD
	if got := gitRun(t, f.dir, "show", res.Rescue+":instances/a.xml"); got+"\n" != hand {
		t.Fatalf("rescued a.xml: got %q, want %q", got, hand)
	}
	if _, err := gitCmd(f.dir, "cat-file", "-e", res.Rescue+":deployer.xml"); err == nil {
		t.Fatalf("rescue tree still has deployer.xml, want it deleted as in the worktree")
	}
	if got := gitRun(t, f.dir, "rev-parse", res.Rescue+"^"); got != head {
		t.Fatalf("rescue parent: got %s, want HEAD %s", got, head)
	}
	if got := gitRun(t, f.dir, "diff", "--name-only", head, res.Rescue); got != "deployer.xml\ninstances/a.xml" {
		t.Fatalf("rescue commit changes: got %q", got)
	}
	// the files are back as at HEAD, HEAD did not move, and git sees a clean checkout
	checkHealthy(t, f.dir, head)
	if got := readFile(t, filepath.Join(f.dir, "instances/a.xml")); got != "<instance name=\"a\" version=\"1\"/>\n" {
		t.Fatalf("restored a.xml: got %q", got)
	}
	if got := readFile(t, filepath.Join(f.dir, "deployer.xml")); got != "<deployer version=\"1\"/>\n" {
		t.Fatalf("restored deployer.xml: got %q", got)
	}
	if res.Head != head || res.Before != head || r.Head() != head {
		t.Fatalf("HEAD: result %+v, repo %s; want %s", res, r.Head(), head)
	}
	if res, err := r.CheckDirty(); err != nil || res.State != syncer.StateClean {
		t.Fatalf("check dirty after rescue: %+v, %v", res, err)
	}
	// nothing dirty: no rescue ref
	again, err := r.Rescue(ctxT(t))
	if err != nil || again.Rescue != "" || len(again.Files) != 0 {
		t.Fatalf("second rescue: got %+v, %v; want nothing to do", again, err)
	}
	if refs := gitRun(t, f.dir, "for-each-ref", "--format=%(refname)", syncer.RescuePrefix); refs != res.Rescue {
		t.Fatalf("rescue refs: got %q, want only %s", refs, res.Rescue)
	}
}

// divergeForeign makes our checkout hold one commit of ours (Deployer-Change c9) and one
// made by hand, while upstream moves on; it returns the checkout's HEAD.
func divergeForeign(t *testing.T, f *fixture) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "instances/b.xml"), []byte("<instance name=\"b\" version=\"ours\"/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, f.dir, "commit", "-q", "-am", "instance-configure: b: set version\n\nDeployer-Change: c9")
	if err := os.WriteFile(filepath.Join(f.dir, "instances/a.xml"), []byte("<x/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, f.dir, "commit", "-q", "-am", "hand fix")
	f.push("instances/new.xml", "<instance name=\"new\"/>\n", "add new")
	return gitRun(t, f.dir, "rev-parse", "HEAD")
}

func TestAdoptAfterDivergedForeignMovesToUpstreamAndKeepsHEAD(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	known := f.tip()
	local := divergeForeign(t, f)
	if _, err := r.Sync(ctxT(t), known); syncer.KindOf(err) != syncer.KindDiverged {
		t.Fatalf("sync: got %v, want sync-diverged", err)
	}
	res, err := r.Adopt(ctxT(t))
	if err != nil {
		t.Fatalf("adopt: %v", err)
	}
	tip := f.tip()
	if res.Head != tip || res.Upstream != tip || res.Before != local || r.Head() != tip {
		t.Fatalf("adopt: got %+v (repo HEAD %s), want %s → %s", res, r.Head(), local, tip)
	}
	if !reflect.DeepEqual(res.Ours, []string{"c9"}) {
		t.Fatalf("ours: got %v, want [c9]", res.Ours)
	}
	if !strings.HasPrefix(res.Rescue, syncer.RescuePrefix) || gitRun(t, f.dir, "rev-parse", res.Rescue) != local {
		t.Fatalf("rescue ref %q does not keep the old HEAD %s", res.Rescue, local)
	}
	checkHealthy(t, f.dir, tip)
	for name, want := range map[string]string{
		"instances/a.xml":   "<instance name=\"a\" version=\"1\"/>\n",
		"instances/b.xml":   "<instance name=\"b\" version=\"1\"/>\n",
		"instances/new.xml": "<instance name=\"new\"/>\n",
	} {
		if got := readFile(t, filepath.Join(f.dir, name)); got != want {
			t.Fatalf("%s: got %q, want upstream's %q", name, got, want)
		}
	}
	if res, err := r.Sync(ctxT(t), tip); err != nil || res.State != syncer.StateClean {
		t.Fatalf("sync after adopt: %+v, %v", res, err)
	}
	// already at upstream: nothing moves, no new rescue ref
	again, err := r.Adopt(ctxT(t))
	if err != nil || again.Rescue != "" || again.Head != tip || len(again.Ours) != 0 {
		t.Fatalf("second adopt: got %+v, %v", again, err)
	}
}

func TestAdoptFollowsARewrittenUpstream(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "a v2")
	r := f.open(f.options())
	known := f.tip()
	gitRun(t, f.human, "reset", "-q", "--hard", "HEAD~1")
	f.write("instances/b.xml", "<instance name=\"b\" version=\"rewritten\"/>\n")
	f.commit("rewrite")
	gitRun(t, f.human, "push", "-q", "-f", "origin", "main")
	if _, err := r.Sync(ctxT(t), known); syncer.KindOf(err) != syncer.KindRewritten {
		t.Fatalf("sync: got %v, want upstream-rewritten", err)
	}
	res, err := r.Adopt(ctxT(t))
	if err != nil || res.Head != f.tip() || len(res.Ours) != 0 {
		t.Fatalf("adopt: got %+v, %v", res, err)
	}
	if got := gitRun(t, f.dir, "rev-parse", res.Rescue); got != known {
		t.Fatalf("rescue: got %s, want the old HEAD %s", got, known)
	}
	checkHealthy(t, f.dir, f.tip())
}

func TestAdoptRefusesToOverwriteHandEdits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	local := divergeForeign(t, f)
	// a hand edit on a path that upstream's tip changes against our HEAD
	hand := "<instance name=\"a\" version=\"hand\"/>\n"
	if err := os.WriteFile(filepath.Join(f.dir, "instances/a.xml"), []byte(hand), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Adopt(ctxT(t))
	if syncer.KindOf(err) != syncer.KindDirty || !errors.Is(err, syncer.ErrDirty) {
		t.Fatalf("adopt on a dirty checkout: got %+v, %v; want sync-dirty", res, err)
	}
	if r.Head() != local || readFile(t, filepath.Join(f.dir, "instances/a.xml")) != hand {
		t.Fatalf("adopt moved a dirty checkout: HEAD %s (want %s), a.xml %q", r.Head(), local, readFile(t, filepath.Join(f.dir, "instances/a.xml")))
	}
	// once the hand edit is rescued, adopt goes through
	if _, err := r.Rescue(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if res, err = r.Adopt(ctxT(t)); err != nil || res.Head != f.tip() {
		t.Fatalf("adopt after rescue: %+v, %v", res, err)
	}
	checkHealthy(t, f.dir, f.tip())
}

// commitAs commits the human's change to name with the given author; it returns the commit.
func (f *fixture) commitAs(author, name, content, msg string) string {
	f.tb.Helper()
	f.write(name, content)
	gitRun(f.tb, f.human, "add", "-A")
	gitRun(f.tb, f.human, "commit", "-q", "--author", author, "-m", msg)
	return gitRun(f.tb, f.human, "rev-parse", "HEAD")
}

func TestCommitsListsUpstreamCommitsTouchingAPathNewestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	base := f.tip()
	c1 := f.commitAs("Alice <alice@example.com>", "instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "alice: a v2")
	f.commitAs("Bob <bob@example.com>", "instances/b.xml", "<instance name=\"b\" version=\"2\"/>\n", "bob: b v2")
	c3 := f.commitAs("Carol <carol@example.com>", "instances/a.xml", "<instance name=\"a\" version=\"3\"/>\n\nsecond line", "carol: a v3\n\nwith a body")
	gitRun(t, f.human, "rm", "-q", "instances/a.xml")
	gitRun(t, f.human, "commit", "-q", "--author", "Dave <dave@example.com>", "-m", "dave: remove a")
	c4 := gitRun(t, f.human, "rev-parse", "HEAD")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	tip := f.tip()
	if _, err := r.Sync(ctxT(t), base); err != nil {
		t.Fatal(err)
	}
	type row struct{ Hash, Author, Subject string }
	rows := func(cs []syncer.CommitInfo) []row {
		out := make([]row, len(cs))
		for i, c := range cs {
			out[i] = row{c.Hash, c.Author, c.Subject}
			if c.When.IsZero() {
				t.Fatalf("commit %s has no time", c.Hash)
			}
		}
		return out
	}
	dave := row{c4, "Dave <dave@example.com>", "dave: remove a"}
	carol := row{c3, "Carol <carol@example.com>", "carol: a v3"}
	alice := row{c1, "Alice <alice@example.com>", "alice: a v2"}
	for _, tc := range []struct {
		name       string
		from, path string
		limit      int
		want       []row
	}{
		{"all after base", base, "instances/a.xml", 10, []row{dave, carol, alice}},
		{"bounded by limit", base, "instances/a.xml", 2, []row{dave, carol}},
		{"from is exclusive", c1, "instances/a.xml", 10, []row{dave, carol}},
		{"from the start of history", "", "instances/a.xml", 10, []row{dave, carol, alice, {base, "Human <human@example.com>", "initial"}}},
		{"another path", base, "instances/b.xml", 10, []row{{gitRun(t, f.bare, "rev-parse", "main~2"), "Bob <bob@example.com>", "bob: b v2"}}},
		{"untouched path", base, "deployer.xml", 10, []row{}},
		{"missing path", base, "instances/nope.xml", 10, []row{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Commits(tc.from, tip, tc.path, tc.limit)
			if err != nil {
				t.Fatalf("commits: %v", err)
			}
			if g := rows(got); !reflect.DeepEqual(g, tc.want) {
				t.Fatalf("got %v, want %v", g, tc.want)
			}
		})
	}
	if _, err := r.Commits(base, "not-a-hash", "instances/a.xml", 5); err == nil {
		t.Fatalf("commits to a bad id: got no error")
	}
	if _, err := r.Commits("nope", tip, "instances/a.xml", 5); err == nil {
		t.Fatalf("commits from a bad id: got no error")
	}
}

func TestCommitsVisitsABoundedNumberOfCommits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	base := f.tip()
	// 1,100 upstream commits that all change a.xml, made with fast-import
	var b strings.Builder
	for i := 1; i <= 1100; i++ {
		data := fmt.Sprintf("<instance name=\"a\" version=\"%d\"/>\n", i+1)
		from := ""
		if i == 1 {
			from = "from " + base + "\n"
		}
		fmt.Fprintf(&b, "commit refs/heads/main\ncommitter Human <human@example.com> %d +0000\ndata 4\nc%03d\n%sM 100644 inline instances/a.xml\ndata %d\n%s\n",
			1_700_000_000+i, i%1000, from, len(data), data)
	}
	cmd := exec.Command("git", "fast-import", "--quiet", "--force")
	cmd.Dir = f.bare
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fast-import: %v\n%s", err, out)
	}
	tip := f.tip()
	if _, err := r.Sync(context.Background(), base); err != nil {
		t.Fatal(err)
	}
	got, err := r.Commits(base, tip, "instances/a.xml", 5000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 || got[0].Hash != tip {
		t.Fatalf("got %d commits (first %v), want the newest 1000 from %s", len(got), got[0], tip)
	}
	if got, err := r.Commits(base, tip, "instances/a.xml", 0); err != nil || len(got) != 0 {
		t.Fatalf("limit 0: got %d, %v; want none", len(got), err)
	}
}

func TestOperatorMethodsOnAClosedRepo(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	tip := f.tip()
	_ = r.Close()
	if _, err := r.Rescue(ctxT(t)); !errors.Is(err, syncer.ErrClosed) {
		t.Fatalf("rescue: got %v, want ErrClosed", err)
	}
	if _, err := r.Adopt(ctxT(t)); !errors.Is(err, syncer.ErrClosed) {
		t.Fatalf("adopt: got %v, want ErrClosed", err)
	}
	if _, err := r.Commits(tip, tip, "deployer.xml", 1); !errors.Is(err, syncer.ErrClosed) {
		t.Fatalf("commits: got %v, want ErrClosed", err)
	}
}

// TestRescueReplacesASymlinkedDirectory: a directory of the checkout replaced by a symlink to
// a directory outside it is dirty (every file below it counts as deleted); the rescue
// replaces the link with a directory holding HEAD's files, and writes nothing through it.
func TestRescueReplacesASymlinkedDirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	head := r.Head()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "a.xml"), []byte("outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(f.dir, "instances"), filepath.Join(f.dir, "instances.moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(f.dir, "instances")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(f.dir, "instances.moved")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Rescue(ctxT(t)); err != nil {
		t.Fatalf("rescue with instances/ a symlink: %v", err)
	}
	if got := readFile(t, filepath.Join(outside, "a.xml")); got != "outside\n" {
		t.Fatalf("the file outside the checkout became %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(f.dir, "instances")); err != nil || !fi.IsDir() {
		t.Fatalf("instances after the rescue: %v %v, want a directory", fi, err)
	}
	checkHealthy(t, f.dir, head)
}
