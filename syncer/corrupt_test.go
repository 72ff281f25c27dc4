package syncer_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/sre-tools/deployer/syncer"
)

// These tests break checkouts for real (packs cut short, HEAD removed, loose objects
// deleted) and check that the checkout is re-cloned and swapped in (fsck-clean, the old one
// moved aside), or that a re-clone that cannot run is repo-corrupt and says why.

// cutPacks shortens every pack of the checkout in dir with cut(size) and returns how many.
func cutPacks(tb testing.TB, dir string, cut func(int64) int64) int {
	tb.Helper()
	packs, err := filepath.Glob(filepath.Join(dir, ".git", "objects", "pack", "*.pack"))
	if err != nil || len(packs) == 0 {
		tb.Fatalf("no packs in %s: %v", dir, err)
	}
	for _, p := range packs {
		st, err := os.Stat(p)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.Truncate(p, cut(st.Size())); err != nil {
			tb.Fatal(err)
		}
	}
	return len(packs)
}

// removeLoose deletes the loose object rev names in the checkout in dir.
func removeLoose(tb testing.TB, dir, rev string) string {
	tb.Helper()
	h := gitRun(tb, dir, "rev-parse", rev)
	p := filepath.Join(dir, ".git", "objects", h[:2], h[2:])
	if err := os.Remove(p); err != nil {
		tb.Fatalf("remove loose object %s (%s): %v", rev, h, err)
	}
	return h
}

func movedAside(tb testing.TB, dir string) []string {
	tb.Helper()
	aside, err := filepath.Glob(dir + ".broken-*")
	if err != nil {
		tb.Fatal(err)
	}
	return aside
}

// humanPush brings the human's clone up to the remote, then pushes a change.
func (f *fixture) humanPush(name, content, msg string) string {
	f.tb.Helper()
	gitRun(f.tb, f.human, "pull", "-q", "--rebase", "origin", "main")
	return f.push(name, content, msg)
}

// The daemon's write-back commit is HEAD (loose) and the previous upstream tip is in a pack;
// the packs are cut short while the daemon is down. Open must see it and re-clone; the next
// Sync is not a rewrite.
func TestOpenReclonesWhenPacksAreCutShort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cut  func(int64) int64
	}{
		{"emptied", func(int64) int64 { return 0 }},
		{"half", func(n int64) int64 { return n / 2 }},
		{"last-byte", func(n int64) int64 { return n - 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "a v2")
			r := f.open(f.options())
			known := f.tip()
			out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/b.xml", "version", "1", "3")}, 3)
			if err != nil {
				t.Fatalf("write-back: %v", err)
			}
			wantStatuses(t, out, syncer.OutcomeLanded)
			_ = r.Close()
			cutPacks(t, f.dir, tc.cut)
			if _, err := gitCmd(f.dir, "fsck", "--no-progress"); err == nil {
				t.Fatal("git fsck accepts the damaged checkout: the test damages nothing")
			}
			tip := f.humanPush("instances/a.xml", "<instance name=\"a\" version=\"3\"/>\n", "a v3")

			r = f.open(f.options())
			if n := len(movedAside(t, f.dir)); n != 1 {
				t.Fatalf("moved-aside checkouts: got %d, want 1 (Open did not re-clone)", n)
			}
			res, err := r.Sync(ctxT(t), known)
			if err != nil || res.State == syncer.StateRewritten || res.Head != tip {
				t.Fatalf("sync: %+v, %v; want at %s, not rewritten", res, err, tip)
			}
			checkHealthy(t, f.dir, tip)
		})
	}
}

// A blob the index names (of the daemon's last write-back, loose) is lost while HEAD's
// commit and trees are intact: Open must see it and re-clone.
func TestOpenReclonesWhenAnIndexedBlobIsLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	if _, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3); err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	removeLoose(t, f.dir, "HEAD:instances/a.xml")
	if _, err := gitCmd(f.dir, "fsck", "--no-progress"); err == nil {
		t.Fatal("git fsck accepts the damaged checkout: the test damages nothing")
	}
	r = f.open(f.options())
	if n := len(movedAside(t, f.dir)); n != 1 {
		t.Fatalf("moved-aside checkouts: got %d, want 1 (Open did not re-clone)", n)
	}
	checkHealthy(t, f.dir, f.tip())
	if r.Head() != f.tip() {
		t.Fatalf("head %s, want %s", r.Head(), f.tip())
	}
}

// The previous upstream tip (the daemon's own pushed commit, loose) is lost while HEAD, its
// child, is readable, so Open's check passes: Sync must re-clone, not call it a rewrite.
func TestSyncReclonesWhenTheKnownTipIsLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	if _, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3); err != nil {
		t.Fatal(err)
	}
	known := r.Head()
	if _, err := r.WriteBack(ctxT(t), []syncer.Change{change("c2", "instances/b.xml", "version", "1", "2")}, 3); err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	removeLoose(t, f.dir, known)
	tip := f.humanPush("deployer.xml", "<deployer version=\"1\"><!-- v2 --></deployer>\n", "manifest v2")

	r = f.open(f.options())
	if n := len(movedAside(t, f.dir)); n != 0 {
		t.Fatalf("Open re-cloned (%d moved aside); this test is for what Open's check cannot see", n)
	}
	res, err := r.Sync(ctxT(t), known)
	if err != nil || res.State != syncer.StateCorrupt || res.Head != tip || res.Upstream != tip {
		t.Fatalf("sync: %+v, %v (kind %q); want corrupt, re-cloned at %s", res, err, syncer.KindOf(err), tip)
	}
	if !strings.Contains(res.Detail, "re-cloned") || len(res.Ours) != 0 {
		t.Fatalf("result: %+v", res)
	}
	if n := len(movedAside(t, f.dir)); n != 1 {
		t.Fatalf("moved-aside checkouts: got %d, want 1", n)
	}
	checkHealthy(t, f.dir, tip)
	if res, err := r.Sync(ctxT(t), res.Upstream); err != nil || res.State != syncer.StateClean {
		t.Fatalf("next sync: %+v, %v; want clean", res, err)
	}
}

// A lost tree that only the fast-forward reads (a subtree of the daemon's last write-back).
func TestSyncReclonesWhenTheFastForwardFindsALostTree(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	if _, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3); err != nil {
		t.Fatal(err)
	}
	known := r.Head()
	_ = r.Close()
	removeLoose(t, f.dir, known+":instances")
	tip := f.humanPush("instances/b.xml", "<instance name=\"b\" version=\"9\"/>\n", "b v9")

	r = f.open(f.options())
	if n := len(movedAside(t, f.dir)); n != 0 {
		t.Fatalf("Open re-cloned (%d moved aside); this test is for what Open's check cannot see", n)
	}
	res, err := r.Sync(ctxT(t), known)
	if err != nil || res.State != syncer.StateCorrupt || res.Head != tip {
		t.Fatalf("sync: %+v, %v (kind %q); want corrupt, re-cloned at %s", res, err, syncer.KindOf(err), tip)
	}
	if n := len(movedAside(t, f.dir)); n != 1 {
		t.Fatalf("moved-aside checkouts: got %d, want 1", n)
	}
	checkHealthy(t, f.dir, tip)
	if got := readFile(t, filepath.Join(f.dir, "instances", "b.xml")); got != "<instance name=\"b\" version=\"9\"/>\n" {
		t.Fatalf("b.xml: %q", got)
	}
}

// An unpushed write-back commit of ours that can still be read is not lost by the re-clone:
// its change id comes back in Result.Ours, WriteBack re-applies it, and it lands once.
func TestSyncRecloneReturnsUnpushedCommitsForReapply(t *testing.T) {
	// Not parallel: it stops a server and starts it again on the port it freed, which a
	// parallel test's server could take in between.
	f := newFixture(t)
	d := startGitDaemon(t, filepath.Dir(f.bare), 0)
	opts := f.options()
	opts.URL = d.url("remote.git")
	r := f.open(opts)
	if _, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3); err != nil {
		t.Fatal(err)
	}
	known := r.Head()
	if _, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1b", "instances/a.xml", "version", "2", "3")}, 3); err != nil {
		t.Fatal(err)
	}
	port := d.port
	d.stop()
	out, _ := r.WriteBack(ctxT(t), []syncer.Change{change("c2", "instances/b.xml", "version", "1", "2")}, 3)
	wantStatuses(t, out, syncer.OutcomePending)
	unpushed := r.Head()
	_ = r.Close()
	startGitDaemon(t, filepath.Dir(f.bare), port)
	removeLoose(t, f.dir, known)
	tip := f.humanPush("deployer.xml", "<deployer version=\"1\"><!-- v2 --></deployer>\n", "manifest v2")

	r = f.open(opts)
	if n := len(movedAside(t, f.dir)); n != 0 {
		t.Fatalf("Open re-cloned (%d moved aside); this test is for Sync's re-clone", n)
	}
	res, err := r.Sync(ctxT(t), known)
	if err != nil || res.State != syncer.StateCorrupt || res.Head != tip || !reflect.DeepEqual(res.Ours, []string{"c2"}) {
		t.Fatalf("sync: %+v, %v (kind %q); want corrupt, re-cloned at %s, Ours [c2]", res, err, syncer.KindOf(err), tip)
	}
	aside := movedAside(t, f.dir)
	if len(aside) != 1 {
		t.Fatalf("moved-aside checkouts: %v", aside)
	}
	gitRun(t, aside[0], "cat-file", "-e", unpushed) // the old checkout keeps it too
	out, err = r.WriteBack(ctxT(t), []syncer.Change{change("c2", "instances/b.xml", "version", "1", "2")}, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, out, syncer.OutcomeLanded)
	checkLinear(t, f.bare, 5) // initial, c1, c1b, manifest v2, c2
	if got := gitRun(t, f.bare, "show", "main:instances/b.xml"); got != `<instance name="b" version="2"/>` {
		t.Fatalf("b.xml on remote: %q", got)
	}
	checkHealthy(t, f.dir, f.tip())
}

// A previous tip that the store never had (upstream rewrote it away before we fetched it) is
// a rewrite, as before: no re-clone.
func TestSyncRewriteOfATipNeverFetchedIsNotCorrupt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	known := f.push("instances/a.xml", "<instance name=\"a\" version=\"lost\"/>\n", "a lost")
	gitRun(t, f.human, "reset", "-q", "--hard", "HEAD~1")
	f.write("instances/b.xml", "<instance name=\"b\" version=\"rewritten\"/>\n")
	f.commit("rewrite")
	gitRun(t, f.human, "push", "-q", "-f", "origin", "main")
	res, err := r.Sync(ctxT(t), known)
	if syncer.KindOf(err) != syncer.KindRewritten || res.State != syncer.StateRewritten {
		t.Fatalf("sync: %+v, %v; want upstream-rewritten", res, err)
	}
	if n := len(movedAside(t, f.dir)); n != 0 {
		t.Fatalf("re-cloned %d time(s) for a rewrite", n)
	}
}

// innerKind returns the kind of the *Error inside the outer one's chain.
func innerKind(t *testing.T, err error) (syncer.Kind, *syncer.Error) {
	t.Helper()
	var outer *syncer.Error
	if !errors.As(err, &outer) {
		t.Fatalf("not an *Error: %v", err)
	}
	return syncer.KindOf(outer.Err), outer
}

// A broken checkout with the server down (or refusing us) is repo-corrupt, and says both that
// the checkout is broken and why the re-clone failed. The checkout is left as it is; with the
// server back, Open re-clones.
func TestRecloneThatCannotRunIsCorrupt(t *testing.T) {
	// Not parallel: it stops a server and starts it again on the port it freed, which a
	// parallel test's server could take in between.
	t.Run("server-down", func(t *testing.T) {
		f := newFixture(t)
		d := startGitDaemon(t, filepath.Dir(f.bare), 0)
		opts := f.options()
		opts.URL = d.url("remote.git")
		r := f.open(opts)
		_ = r.Close()
		if err := os.Remove(filepath.Join(f.dir, ".git", "HEAD")); err != nil {
			t.Fatal(err)
		}
		port := d.port
		d.stop()
		_, err := syncer.Open(ctxT(t), opts)
		if syncer.KindOf(err) != syncer.KindCorrupt || !errors.Is(err, syncer.ErrCorrupt) {
			t.Fatalf("open: got %v (kind %q), want repo-corrupt", err, syncer.KindOf(err))
		}
		inner, e := innerKind(t, err)
		if inner != syncer.KindUnreachable {
			t.Fatalf("re-clone error in the chain: kind %q, want remote-unreachable: %v", inner, err)
		}
		for _, want := range []string{"broken", "HEAD", "remote-unreachable"} {
			if !strings.Contains(e.Detail, want) {
				t.Fatalf("detail lacks %q: %s", want, e.Detail)
			}
		}
		// The dial's own error: refused, or reset when a child of the stopped git daemon
		// still held its listening socket for a moment (seen once under load).
		if !strings.Contains(e.Detail, "connection refused") && !strings.Contains(e.Detail, "connection reset by peer") {
			t.Fatalf("detail lacks the dial's error (connection refused or reset): %s", e.Detail)
		}
		if n := len(movedAside(t, f.dir)); n != 0 {
			t.Fatalf("moved aside %d without a clone to swap in", n)
		}
		if _, err := os.Stat(filepath.Join(f.dir, ".git", "objects")); err != nil {
			t.Fatalf("the broken checkout is not left in place: %v", err)
		}
		startGitDaemon(t, filepath.Dir(f.bare), port)
		r = f.open(opts)
		if r.Head() != f.tip() || len(movedAside(t, f.dir)) != 1 {
			t.Fatalf("open with the server back: head %s, moved aside %v", r.Head(), movedAside(t, f.dir))
		}
		checkHealthy(t, f.dir, f.tip())
	})
	t.Run("auth-refused", func(t *testing.T) {
		f := newFixture(t)
		const secret = "s3cret-Pa55word"
		srv := startHTTPBackend(t, filepath.Dir(f.bare), "deployer", secret)
		opts := f.options()
		opts.URL = srv.URL + "/remote.git"
		auth := &githttp.BasicAuth{Username: "deployer", Password: secret}
		opts.Auth = auth
		r := f.open(opts)
		_ = r.Close()
		if err := os.Remove(filepath.Join(f.dir, ".git", "HEAD")); err != nil {
			t.Fatal(err)
		}
		opts.Auth = &githttp.BasicAuth{Username: "deployer", Password: "wrong-" + secret}
		_, err := syncer.Open(ctxT(t), opts)
		if syncer.KindOf(err) != syncer.KindCorrupt {
			t.Fatalf("open: got %v (kind %q), want repo-corrupt", err, syncer.KindOf(err))
		}
		inner, e := innerKind(t, err)
		if inner != syncer.KindAuth || !strings.Contains(e.Detail, "broken") || !strings.Contains(e.Detail, "auth-failed") {
			t.Fatalf("got inner kind %q, detail %q", inner, e.Detail)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(e.Detail, secret) {
			t.Fatalf("error leaks the secret: %v / %s", err, e.Detail)
		}
	})
	t.Run("sync-server-down", func(t *testing.T) {
		f := newFixture(t)
		d := startGitDaemon(t, filepath.Dir(f.bare), 0)
		opts := f.options()
		opts.URL = d.url("remote.git")
		r := f.open(opts)
		if err := os.Remove(filepath.Join(f.dir, ".git", "refs", "heads", "main")); err != nil {
			t.Fatal(err)
		}
		port := d.port
		d.stop()
		res, err := r.Sync(ctxT(t), f.tip())
		if syncer.KindOf(err) != syncer.KindCorrupt || res.State != syncer.StateCorrupt {
			t.Fatalf("sync: %+v, %v (kind %q); want repo-corrupt", res, err, syncer.KindOf(err))
		}
		if inner, _ := innerKind(t, err); inner != syncer.KindUnreachable {
			t.Fatalf("re-clone error in the chain: kind %q", inner)
		}
		startGitDaemon(t, filepath.Dir(f.bare), port)
		res, err = r.Sync(ctxT(t), f.tip())
		if err != nil || res.State != syncer.StateCorrupt || res.Head != f.tip() {
			t.Fatalf("sync with the server back: %+v, %v; want re-cloned", res, err)
		}
		checkHealthy(t, f.dir, f.tip())
	})
}

// Adopt (an operator's resolution of a rewrite) over a lost commit of ours re-clones at the
// new upstream; our commit it could still read comes back in Result.Ours, the lost one only
// in the caller's journal.
func TestAdoptReclonesWhenHistoryIsLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	if _, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3); err != nil {
		t.Fatal(err)
	}
	lost := r.Head()
	if _, err := r.WriteBack(ctxT(t), []syncer.Change{change("c2", "instances/b.xml", "version", "1", "2")}, 3); err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	removeLoose(t, f.dir, lost)
	// upstream rewritten back to before our two commits
	gitRun(t, f.human, "fetch", "-q", "origin")
	gitRun(t, f.human, "reset", "-q", "--hard", "origin/main~2")
	f.write("deployer.xml", "<deployer version=\"1\"><!-- rewritten --></deployer>\n")
	tip := f.commit("rewrite")
	gitRun(t, f.human, "push", "-q", "-f", "origin", "main")

	r = f.open(f.options())
	if n := len(movedAside(t, f.dir)); n != 0 {
		t.Fatalf("Open re-cloned (%d moved aside); this test is for Adopt's re-clone", n)
	}
	res, err := r.Adopt(ctxT(t))
	if err != nil || res.State != syncer.StateCorrupt || res.Head != tip || !reflect.DeepEqual(res.Ours, []string{"c2"}) {
		t.Fatalf("adopt: %+v, %v (kind %q); want corrupt, re-cloned at %s, Ours [c2]", res, err, syncer.KindOf(err), tip)
	}
	if n := len(movedAside(t, f.dir)); n != 1 {
		t.Fatalf("moved-aside checkouts: got %d, want 1", n)
	}
	checkHealthy(t, f.dir, tip)
}
