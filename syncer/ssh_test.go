package syncer_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/rs/zerolog"
	"github.com/sre-tools/deployer/syncer"
	"github.com/sre-tools/deployer/syncer/sshtest"
)

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// noNewSession fails when sshd started a session since it counted n: a refused connection
// must never get as far as running git on the server.
func noNewSession(t *testing.T, s *sshtest.Server, n int) {
	t.Helper()
	if got := s.Sessions(); got != n {
		t.Fatalf("sshd started %d session(s) for a connection that should have been refused:\n%s", got-n, s.Log())
	}
}

// sshAuth builds the credentials the way the daemon does (cmd/deployer repoAuth): a key file and
// a known_hosts file.
func sshAuth(t *testing.T, s *sshtest.Server, keyFile, knownHosts string) *gitssh.PublicKeys {
	t.Helper()
	keys, err := gitssh.NewPublicKeysFromFile(s.User(), keyFile, "")
	if err != nil {
		t.Fatalf("ssh key %s: %v", keyFile, err)
	}
	cb, err := gitssh.NewKnownHostsCallback(knownHosts)
	if err != nil {
		t.Fatalf("known hosts %s: %v", knownHosts, err)
	}
	keys.HostKeyCallback = cb
	return keys
}

// gitSSH runs the git CLI in dir over ssh with key and the server's host key pinned.
func gitSSH(t *testing.T, s *sshtest.Server, dir, key string, args ...string) string {
	t.Helper()
	kh := s.KnownHosts(t, s.HostLine(s.HostPub()))
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Human", "GIT_AUTHOR_EMAIL=human@example.com",
		"GIT_COMMITTER_NAME=Human", "GIT_COMMITTER_EMAIL=human@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir(), "GIT_TERMINAL_PROMPT=0",
		fmt.Sprintf("GIT_SSH_COMMAND=ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s", key, kh))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s over ssh: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// sshFixture is a fixture whose remote is served by s, and a logger that records everything.
func sshFixture(t *testing.T, s *sshtest.Server, auth *gitssh.PublicKeys, logs *syncBuffer) (*fixture, syncer.Options) {
	t.Helper()
	f := newFixture(t)
	gitRun(t, f.bare, "config", "receive.denyNonFastForwards", "true")
	opts := f.options()
	opts.URL = s.URL(f.bare)
	opts.Auth = auth
	opts.Logger = zerolog.New(logs)
	return f, opts
}

// snapshot is everything in a checkout that a failed sync must leave alone.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	return gitRun(t, dir, "for-each-ref", "--format=%(refname) %(objectname)") + "\nHEAD " +
		gitRun(t, dir, "rev-parse", "HEAD") + "\n" + gitRun(t, dir, "status", "--porcelain", "--untracked-files=all")
}

// noKeyMaterial fails when any text contains a line of the private key file.
func noKeyMaterial(t *testing.T, keyFile string, texts ...string) {
	t.Helper()
	secret := sshtest.KeyLines(readFile(t, keyFile))
	if len(secret) == 0 {
		t.Fatalf("no key lines read from %s", keyFile)
	}
	for _, text := range texts {
		for _, l := range secret {
			if strings.Contains(text, l) {
				t.Fatalf("private key material %q appears in: %s", l, text)
			}
		}
	}
}

// fingerprint is the SHA256 fingerprint of the public key of keyFile, as sshd logs it.
func fingerprint(t *testing.T, keyFile string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", keyFile+".pub").CombinedOutput()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 || !strings.HasPrefix(f[1], "SHA256:") {
		t.Fatalf("ssh-keygen -l %s: %v\n%s", keyFile, err, out)
	}
	return f[1]
}

// errTexts is the text an operator sees of err: its message and the Detail of its *Error.
func errTexts(err error) []string {
	if err == nil {
		return nil
	}
	texts := []string{err.Error()}
	var e *syncer.Error
	if errors.As(err, &e) {
		texts = append(texts, e.Detail)
	}
	return texts
}

// TestSSHGoodKey clones, syncs and writes back over ssh:// with the daemon's kind of
// credentials (key file and known_hosts file holding the server's host key), against a real
// sshd; the human pushes over ssh with the git CLI.
func TestSSHGoodKey(t *testing.T) {
	t.Parallel()
	s := sshtest.Start(t, sshtest.Options{})
	logs := &syncBuffer{}
	auth := sshAuth(t, s, s.Key(), s.KnownHosts(t, s.HostLine(s.HostPub())))
	f, opts := sshFixture(t, s, auth, logs)

	r := f.open(opts)
	checkHealthy(t, f.dir, f.tip())
	if got := gitRun(t, f.dir, "config", "remote.origin.url"); got != s.URL(f.bare) {
		t.Fatalf("checkout remote: got %s, want %s", got, s.URL(f.bare))
	}
	known := f.tip()

	// the human pushes over ssh with the git CLI
	f.write("instances/a.xml", "<instance name=\"a\" version=\"7\"/>\n")
	want := f.commit("human: a v7")
	gitSSH(t, s, f.human, s.Key(), "push", "-q", s.URL(f.bare), "main")
	if f.tip() != want {
		t.Fatalf("human push over ssh: remote at %s, want %s", f.tip(), want)
	}
	res, err := r.Sync(ctxT(t), known)
	if err != nil || res.State != syncer.StateBehind || res.Head != want || res.Upstream != want {
		t.Fatalf("sync over ssh: %+v, %v; want behind → %s", res, err, want)
	}
	checkHealthy(t, f.dir, want)
	if got := readFile(t, filepath.Join(f.dir, "instances/a.xml")); !strings.Contains(got, `version="7"`) {
		t.Fatalf("a.xml after sync: %q", got)
	}

	out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/b.xml", "version", "1", "2")}, 3)
	if err != nil {
		t.Fatalf("write-back over ssh: %v", err)
	}
	wantStatuses(t, out, syncer.OutcomeLanded)
	if out[0].Commit != f.tip() || r.Head() != f.tip() {
		t.Fatalf("write-back: outcome %s, remote %s, head %s", out[0].Commit, f.tip(), r.Head())
	}
	if got := gitRun(t, f.bare, "show", "main:instances/b.xml"); got != `<instance name="b" version="2"/>` {
		t.Fatalf("b.xml on the remote: %q", got)
	}
	// the remote moved on another file between our sync and our push: re-applied, lands
	gitRun(t, f.human, "pull", "-q", "--ff-only", "origin", "main")
	f.push("instances/a.xml", "<instance name=\"a\" version=\"8\"/>\n", "human: a v8")
	out, err = r.WriteBack(ctxT(t), []syncer.Change{change("c2", "deployer.xml", "version", "1", "2")}, 5)
	if err != nil {
		t.Fatalf("write-back after the remote moved: %v", err)
	}
	wantStatuses(t, out, syncer.OutcomeLanded)
	if out[0].Attempts != 2 {
		t.Fatalf("write-back after the remote moved: %d attempts, want 2", out[0].Attempts)
	}
	checkHealthy(t, f.dir, f.tip())
	gitRun(t, f.bare, "fsck", "--strict", "--no-progress")
	checkLinear(t, f.bare, 5) // initial, a v7, c1, a v8, c2
	s.WaitLog(t, regexp.MustCompile(`Accepted publickey for `+regexp.QuoteMeta(s.User())+` from .* `+regexp.QuoteMeta(fingerprint(t, s.Key()))))
	noKeyMaterial(t, s.Key(), logs.String())
}

// TestSSHRefusedIsAuthFailed: a key the server does not know, a host key that differs from the
// pinned one, and an empty known_hosts file each end as auth-failed on clone, on sync and on
// push, never accepted silently, leaving the checkout as it was.
func TestSSHRefusedIsAuthFailed(t *testing.T) {
	t.Parallel()
	s := sshtest.Start(t, sshtest.Options{})
	keys := t.TempDir()
	wrongKey := filepath.Join(keys, "wrong_ed25519")
	sshtest.GenKey(t, wrongKey)
	otherHost := sshtest.GenKey(t, filepath.Join(keys, "other_host_ed25519"))
	good := s.KnownHosts(t, s.HostLine(s.HostPub()))

	for _, tc := range []struct {
		name       string
		key        string
		knownHosts string
		why        string // in the error text
	}{
		{"wrong key", wrongKey, good, "unable to authenticate"},
		{"host key mismatch", s.Key(), s.KnownHosts(t, s.HostLine(otherHost)), "knownhosts: key mismatch"},
		{"empty known_hosts", s.Key(), s.KnownHosts(t), "knownhosts: key is unknown"},
		{"host known on another port", s.Key(), s.KnownHosts(t, fmt.Sprintf("[127.0.0.1]:%d %s", s.Port()+1, s.HostPub())), "knownhosts: key is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			bad := sshAuth(t, s, tc.key, tc.knownHosts)
			f, opts := sshFixture(t, s, bad, logs)
			var seen []string

			// clone
			sessions := s.Sessions()
			_, err := syncer.Open(ctxT(t), opts)
			if syncer.KindOf(err) != syncer.KindAuth || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("clone: got %v (kind %q), want auth-failed with %q", err, syncer.KindOf(err), tc.why)
			}
			seen = append(seen, errTexts(err)...)
			noNewSession(t, s, sessions)
			if ents, _ := os.ReadDir(f.dir); len(ents) != 0 {
				t.Fatalf("a refused clone left %d entries in %s", len(ents), f.dir)
			}

			// sync of a checkout made with good credentials, after an upstream commit
			goodOpts := opts
			goodOpts.Auth = sshAuth(t, s, s.Key(), good)
			first := f.open(goodOpts)
			known := first.Head()
			_ = first.Close()
			r := f.open(opts)
			upstream := f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "human: a v2")
			before := snapshot(t, f.dir)
			sessions = s.Sessions()
			res, err := r.Sync(ctxT(t), known)
			if syncer.KindOf(err) != syncer.KindAuth || res.State != syncer.StateAuth || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("sync: %+v, %v (kind %q); want auth-failed with %q", res, err, syncer.KindOf(err), tc.why)
			}
			seen = append(seen, errTexts(err)...)
			noNewSession(t, s, sessions)
			if after := snapshot(t, f.dir); after != before {
				t.Fatalf("a refused sync changed the checkout:\nbefore %s\nafter  %s", before, after)
			}
			checkHealthy(t, f.dir, known)

			// push
			sessions = s.Sessions()
			out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/b.xml", "version", "1", "2")}, 3)
			if syncer.KindOf(err) != syncer.KindAuth || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("push: got %v (kind %q), want auth-failed with %q", err, syncer.KindOf(err), tc.why)
			}
			wantStatuses(t, out, syncer.OutcomePending)
			if out[0].Attempts != 1 {
				t.Fatalf("push: %d attempts, want 1 (retrying does not fix keys)", out[0].Attempts)
			}
			seen = append(seen, errTexts(err)...)
			noNewSession(t, s, sessions)
			if f.tip() != upstream {
				t.Fatalf("a refused push moved the remote to %s, want %s", f.tip(), upstream)
			}
			gitRun(t, f.dir, "fsck", "--strict", "--no-progress")
			gitRun(t, f.bare, "fsck", "--strict", "--no-progress")
			if tc.key == wrongKey {
				fp := regexp.QuoteMeta(fingerprint(t, wrongKey))
				log := s.WaitLog(t, regexp.MustCompile(`Failed publickey for \S+ from .* `+fp))
				if regexp.MustCompile(`Accepted publickey for \S+ from .* ` + fp).MatchString(log) {
					t.Fatalf("sshd accepted the wrong key:\n%s", log)
				}
			}
			noKeyMaterial(t, tc.key, append(seen, logs.String())...)
			noKeyMaterial(t, s.Key(), append(seen, logs.String())...)
		})
	}
}

// TestSSHPushDeclinedByHook: a pre-receive hook that declines a push over ssh is push-rejected
// with the server's message, without retry, and the checkout returns to upstream.
func TestSSHPushDeclinedByHook(t *testing.T) {
	t.Parallel()
	s := sshtest.Start(t, sshtest.Options{})
	logs := &syncBuffer{}
	f, opts := sshFixture(t, s, sshAuth(t, s, s.Key(), s.KnownHosts(t, s.HostLine(s.HostPub()))), logs)
	r := f.open(opts)
	installHook(t, f.bare, "pre-receive", `echo "main is frozen by the change board" >&2; exit 1`)
	tip := f.tip()

	out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3)
	var e *syncer.Error
	if !errors.Is(err, syncer.ErrRejected) || !errors.As(err, &e) || e.Kind != syncer.KindRejected {
		t.Fatalf("declined over ssh: got %v (kind %q), want push-rejected", err, syncer.KindOf(err))
	}
	if !strings.Contains(e.Detail, "frozen by the change board") {
		t.Fatalf("declined detail lacks the server message: %q", e.Detail)
	}
	wantStatuses(t, out, syncer.OutcomeRejected)
	if out[0].Attempts != 1 || !errors.Is(out[0].Err, syncer.ErrRejected) {
		t.Fatalf("rejected outcome: %+v, want 1 attempt and ErrRejected", out[0])
	}
	if f.tip() != tip {
		t.Fatalf("remote moved to %s", f.tip())
	}
	checkHealthy(t, f.dir, tip)
	gitRun(t, f.bare, "fsck", "--strict", "--no-progress")
	noKeyMaterial(t, s.Key(), append(errTexts(err), logs.String())...)
}

// TestSSHServerOverloadedIsUnreachable: an sshd past its MaxStartups drops new connections
// before the key exchange ("ssh: handshake failed: EOF"). That is a busy server, not refused
// credentials: remote-unreachable (retried), not auth-failed; once the server has room the
// next sync works.
func TestSSHServerOverloadedIsUnreachable(t *testing.T) {
	t.Parallel()
	s := sshtest.Start(t, sshtest.Options{Config: []string{"MaxStartups 1"}})
	logs := &syncBuffer{}
	f, opts := sshFixture(t, s, sshAuth(t, s, s.Key(), s.KnownHosts(t, s.HostLine(s.HostPub()))), logs)
	r := f.open(opts)
	known := r.Head()
	upstream := f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "human: a v2")

	// one unauthenticated connection that never finishes its handshake fills MaxStartups
	hold, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := hold.Read(make([]byte, 64)); err != nil { // sshd's banner: it counts us now
		t.Fatal(err)
	}
	before := snapshot(t, f.dir)
	res, err := r.Sync(ctxT(t), known)
	if syncer.KindOf(err) != syncer.KindUnreachable || res.State != syncer.StateUnreachable {
		t.Fatalf("sync against a full sshd: %+v, %v (kind %q); want remote-unreachable", res, err, syncer.KindOf(err))
	}
	s.WaitLog(t, regexp.MustCompile(`past MaxStartups`))
	if after := snapshot(t, f.dir); after != before {
		t.Fatalf("a failed sync changed the checkout:\nbefore %s\nafter  %s", before, after)
	}
	clone := opts
	clone.Dir = filepath.Join(t.TempDir(), "clone")
	if _, err := syncer.Open(ctxT(t), clone); syncer.KindOf(err) != syncer.KindUnreachable {
		t.Fatalf("clone from a full sshd: got %v (kind %q), want remote-unreachable", err, syncer.KindOf(err))
	}

	hold.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err = r.Sync(ctxT(t), known)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // sshd notices the closed connection
	}
	if err != nil || res.State != syncer.StateBehind || res.Head != upstream {
		t.Fatalf("sync once sshd has room: %+v, %v; want behind → %s", res, err, upstream)
	}
	checkHealthy(t, f.dir, upstream)
}

// With no known_hosts file configured and none in the default places, the host key cannot be
// checked: that is auth-failed (fix the config), never internal and never accepted.
func TestSSHNoKnownHostsIsAuthFailed(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	for _, f := range []string{"/etc/ssh/ssh_known_hosts"} {
		if _, err := os.Stat(f); err == nil {
			t.Skipf("%s exists on this machine: go-git would use it", f)
		}
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_KNOWN_HOSTS", "")
	keys, err := gitssh.NewPublicKeysFromFile(s.User(), s.Key(), "")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	f, opts := sshFixture(t, s, keys, logs)
	sessions := s.Sessions()
	_, err = syncer.Open(ctxT(t), opts)
	if syncer.KindOf(err) != syncer.KindAuth || !strings.Contains(err.Error(), "known_hosts") {
		t.Fatalf("clone without any known_hosts: got %v (kind %q), want auth-failed naming known_hosts", err, syncer.KindOf(err))
	}
	noNewSession(t, s, sessions)
	if ents, _ := os.ReadDir(f.dir); len(ents) != 0 {
		t.Fatalf("a refused clone left %d entries in %s", len(ents), f.dir)
	}
	noKeyMaterial(t, s.Key(), append(errTexts(err), logs.String())...)
}
