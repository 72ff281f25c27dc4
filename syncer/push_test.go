package syncer_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/sre-tools/deployer/syncer"
)

// transports serves a fixture's bare repository over file://, git:// and http://.
func transports(t *testing.T, f *fixture) map[string]string {
	t.Helper()
	root := filepath.Dir(f.bare)
	gitRun(t, f.bare, "config", "http.receivepack", "true")
	gitRun(t, f.bare, "config", "receive.denyNonFastForwards", "true")
	d := startGitDaemon(t, root, 0)
	srv := startHTTPBackend(t, root, "", "")
	return map[string]string{
		"file": "file://" + f.bare,
		"git":  d.url("remote.git"),
		"http": srv.URL + "/remote.git",
	}
}

func TestPushOutcomesAgainstRealServers(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"file", "git", "http"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			opts := f.options()
			opts.URL = transports(t, f)[name]
			r := f.open(opts)

			// accepted
			out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3)
			if err != nil {
				t.Fatalf("accepted: %v", err)
			}
			wantStatuses(t, out, syncer.OutcomeLanded)

			// ref-update race: the update hook moves the branch once, under the push
			installHook(t, f.bare, "update", `[ -e race-done ] && exit 0; touch race-done
export GIT_COMMITTER_NAME=racer GIT_COMMITTER_EMAIL=racer@x GIT_AUTHOR_NAME=racer GIT_AUTHOR_EMAIL=racer@x
c=$(git commit-tree "$2^{tree}" -p "$2" -m race) && git update-ref refs/heads/main "$c"`)
			out, err = r.WriteBack(ctxT(t), []syncer.Change{change("c2", "instances/b.xml", "version", "1", "2")}, 1)
			if !errors.Is(err, syncer.ErrRace) || syncer.KindOf(err) != syncer.KindRejected {
				t.Fatalf("race: got %v, want ErrRace", err)
			}
			wantStatuses(t, out, syncer.OutcomePending)
			out, err = r.WriteBack(ctxT(t), []syncer.Change{change("c2", "instances/b.xml", "version", "1", "2")}, 3)
			if err != nil {
				t.Fatalf("after race: %v", err)
			}
			wantStatuses(t, out, syncer.OutcomeLanded)

			// declined by a pre-receive hook, with the server's message
			installHook(t, f.bare, "pre-receive", `echo "main is frozen by the change board" >&2; exit 1`)
			out, err = r.WriteBack(ctxT(t), []syncer.Change{change("c3", "deployer.xml", "version", "1", "2")}, 3)
			var e *syncer.Error
			if !errors.Is(err, syncer.ErrRejected) || !errors.As(err, &e) || e.Kind != syncer.KindRejected {
				t.Fatalf("declined: got %v, want push-rejected", err)
			}
			if !strings.Contains(e.Detail, "frozen by the change board") {
				t.Fatalf("declined detail lacks the server message: %q", e.Detail)
			}
			wantStatuses(t, out, syncer.OutcomeRejected)
			if out[0].Attempts != 1 {
				t.Fatalf("rejected after %d attempts, want 1 (no retry)", out[0].Attempts)
			}
			checkHealthy(t, f.dir, f.tip())
			gitRun(t, f.bare, "fsck", "--strict", "--no-progress")
			checkLinear(t, f.bare, 4) // initial, c1, race, c2
		})
	}
}

func TestHTTPAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	gitRun(t, f.bare, "config", "http.receivepack", "true")
	const secret = "s3cret-Pa55word"
	srv := startHTTPBackend(t, filepath.Dir(f.bare), "deployer", secret)
	opts := f.options()
	opts.URL = srv.URL + "/remote.git"

	// no credentials: 401 on clone
	if _, err := syncer.Open(ctxT(t), opts); syncer.KindOf(err) != syncer.KindAuth {
		t.Fatalf("clone without credentials: got %v (kind %q), want auth-failed", err, syncer.KindOf(err))
	}
	auth := &githttp.BasicAuth{Username: "deployer", Password: secret}
	opts.Auth = auth
	r := f.open(opts)
	if r.Head() != f.tip() {
		t.Fatalf("head %s, want %s", r.Head(), f.tip())
	}
	out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3)
	if err != nil {
		t.Fatalf("write-back with credentials: %v", err)
	}
	wantStatuses(t, out, syncer.OutcomeLanded)

	// the password changes under us: fetch and push both say auth-failed, without the secret
	auth.Password = "wrong-" + secret
	res, err := r.Sync(ctxT(t), f.tip())
	if syncer.KindOf(err) != syncer.KindAuth || res.State != syncer.StateAuth {
		t.Fatalf("sync with a wrong password: %+v, %v", res, err)
	}
	_, perr := r.WriteBack(ctxT(t), []syncer.Change{change("c2", "instances/b.xml", "version", "1", "2")}, 3)
	if syncer.KindOf(perr) != syncer.KindAuth {
		t.Fatalf("push with a wrong password: got %v", perr)
	}
	for _, e := range []error{err, perr} {
		if strings.Contains(e.Error(), secret) {
			t.Fatalf("error leaks the secret: %v", e)
		}
	}
}

func TestURLPasswordIsRedacted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const secret = "url-Secret-42"
	srv := startHTTPBackend(t, filepath.Dir(f.bare), "deployer", "other")
	opts := f.options()
	opts.URL = strings.Replace(srv.URL, "http://", "http://deployer:"+secret+"@", 1) + "/remote.git"
	_, err := syncer.Open(ctxT(t), opts)
	if syncer.KindOf(err) != syncer.KindAuth {
		t.Fatalf("got %v, want auth-failed", err)
	}
	var e *syncer.Error
	errors.As(err, &e)
	if strings.Contains(err.Error(), secret) || strings.Contains(e.Detail, secret) {
		t.Fatalf("error leaks the URL password: %v / %s", err, e.Detail)
	}
	if got := syncer.RedactURL("https://u:" + secret + "@h/x.git"); strings.Contains(got, secret) {
		t.Fatalf("RedactURL: %s", got)
	}
}

func TestServerStoppedThenAheadOursIsPushed(t *testing.T) {
	f := newFixture(t)
	d := startGitDaemon(t, filepath.Dir(f.bare), 0)
	opts := f.options()
	opts.URL = d.url("remote.git")
	r := f.open(opts)
	port := d.port
	d.stop()

	res, err := r.Sync(ctxT(t), f.tip())
	if syncer.KindOf(err) != syncer.KindUnreachable || res.State != syncer.StateUnreachable {
		t.Fatalf("sync with the server stopped: %+v, %v", res, err)
	}
	out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3)
	if syncer.KindOf(err) != syncer.KindUnreachable {
		t.Fatalf("write-back with the server stopped: got %v", err)
	}
	wantStatuses(t, out, syncer.OutcomePending)
	local := r.Head()
	if local == f.tip() {
		t.Fatal("the pending commit is not kept locally")
	}

	startGitDaemon(t, filepath.Dir(f.bare), port)
	res, err = r.Sync(ctxT(t), f.tip())
	if err != nil || res.State != syncer.StateAheadOurs || res.Upstream != local || len(res.Ours) != 1 || res.Ours[0] != "c1" {
		t.Fatalf("sync after restart: %+v, %v; want ahead-ours pushed", res, err)
	}
	if f.tip() != local {
		t.Fatalf("remote: got %s, want %s", f.tip(), local)
	}
	checkHealthy(t, f.dir, local)
}

func TestSyncDivergedOursResetsForReapply(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	known := f.tip()
	if err := os.Rename(f.bare, f.bare+".away"); err != nil {
		t.Fatal(err)
	}
	out, _ := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 1)
	wantStatuses(t, out, syncer.OutcomePending)
	ours := r.Head()
	if err := os.Rename(f.bare+".away", f.bare); err != nil {
		t.Fatal(err)
	}
	f.push("instances/b.xml", "<instance name=\"b\" version=\"5\"/>\n", "human: b")

	res, err := r.Sync(ctxT(t), known)
	if err != nil || res.State != syncer.StateDivergedOurs || res.Head != f.tip() || res.Rescue == "" {
		t.Fatalf("sync: %+v, %v; want diverged-ours reset to upstream", res, err)
	}
	if len(res.Ours) != 1 || res.Ours[0] != "c1" {
		t.Fatalf("ours: got %v, want [c1]", res.Ours)
	}
	if got := gitRun(t, f.dir, "rev-parse", res.Rescue); got != ours {
		t.Fatalf("rescue: got %s, want %s", got, ours)
	}
	checkHealthy(t, f.dir, f.tip())
	out, err = r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, out, syncer.OutcomeLanded)
	checkLinear(t, f.bare, 3)
}

func TestSyncAheadWithForeignCommitIsDiverged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	opts := f.options()
	opts.IsOurs = func(id string) bool { return id == "journaled" }
	r := f.open(opts)
	// a commit that carries a trailer the journal does not know is not ours
	if err := os.WriteFile(filepath.Join(f.dir, "instances/a.xml"), []byte("<x/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, f.dir, "commit", "-q", "-am", "copied\n\nDeployer-Change: unknown")
	res, err := r.Sync(ctxT(t), f.tip())
	if syncer.KindOf(err) != syncer.KindDiverged || res.State != syncer.StateDivergedForeign {
		t.Fatalf("got %+v, %v; want sync-diverged", res, err)
	}
}
